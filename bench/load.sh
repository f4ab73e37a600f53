#!/usr/bin/env bash
# Load benchmark of `tinct serve` (not a test): starts the server with a model, makes a
# ~1-megapixel B&W JPEG, runs wrk with many concurrent clients POSTing it to /api/colorize,
# probes /healthz twice a second meanwhile, and samples the server's peak RSS (VmHWM).
#
#   bench/load.sh [MODEL] [DURATION_S] [CLIENTS]
#
# MODEL: a shipped name, run folder or .safetensors file (default: the shipped photo model). DURATION_S: 60. CLIENTS: 50.
# Environment: TINCT_BIN (default target/release/tinct; build with cargo build --release),
# WORKERS, QUEUE (passed to tinct serve when set), THREADS (wrk threads, 2).
# Needs wrk (apt-get install -y wrk), curl, and ffmpeg to make the 1 MP image (without it the
# 0.8 MP example photo is used as is). Traffic goes to 127.0.0.1 only.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${TINCT_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tinct}"
MODEL="${1:-photo}"
DURATION="${2:-60}"
CLIENTS="${3:-50}"
THREADS="${THREADS:-2}"

for tool in wrk curl; do
  command -v "$tool" >/dev/null || { echo "load.sh: $tool is not installed (apt-get install -y $tool)" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "load.sh: $BIN not found; run cargo build --release" >&2; exit 1; }

WORK="$(mktemp -d)"
SERVER_PID=""
PROBE_PID=""
cleanup() {
  [ -n "$PROBE_PID" ] && kill "$PROBE_PID" 2>/dev/null || true
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# A ~1 MP gray JPEG (1152x888 = 1.02 MP) from the example photo.
IMG="$WORK/input.jpg"
if command -v ffmpeg >/dev/null; then
  ffmpeg -loglevel error -y -i "$ROOT/examples/migrant_mother.jpg" -vf "scale=1152:888,format=gray" -q:v 3 "$IMG"
else
  echo "load.sh: ffmpeg missing; using the 1024x792 example photo as is" >&2
  cp "$ROOT/examples/migrant_mother.jpg" "$IMG"
fi

# Start the server on a free port and read the address it prints.
SERVE_ARGS=(serve --model "$MODEL" --addr 127.0.0.1:0)
[ -n "${WORKERS:-}" ] && SERVE_ARGS+=(--workers "$WORKERS")
[ -n "${QUEUE:-}" ] && SERVE_ARGS+=(--queue "$QUEUE")
"$BIN" "${SERVE_ARGS[@]}" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
URL=""
for _ in $(seq 1 300); do
  URL="$(grep -o 'http://[0-9.:]*' "$WORK/serve.out" 2>/dev/null | head -1 || true)"
  [ -n "$URL" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.err" >&2; exit 1; }
  sleep 0.2
done
[ -n "$URL" ] || { echo "load.sh: the server did not start" >&2; cat "$WORK/serve.err" >&2; exit 1; }
cat "$WORK/serve.err"

# One request first: checks the set-up and gives the single-request latency.
single=$(curl -s -o "$WORK/one.png" -w '%{http_code} %{time_total}' -X POST --data-binary @"$IMG" "$URL/api/colorize")
echo "single request: status ${single% *}, ${single#* } s; input $(stat -c %s "$IMG") bytes"
[ "${single% *}" = 200 ] || { echo "load.sh: the single request failed" >&2; cat "$WORK/one.png" >&2; exit 1; }

# /healthz probe, twice a second, during the load.
(
  while true; do
    curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}\n' "$URL/healthz" || echo "000 5"
    sleep 0.5
  done
) >"$WORK/health.log" &
PROBE_PID=$!

echo "wrk: $CLIENTS clients, $THREADS threads, ${DURATION} s, POST $URL/api/colorize (model $MODEL)"
BENCH_BODY="$IMG" wrk -t"$THREADS" -c"$CLIENTS" -d"${DURATION}s" --timeout 60s --latency \
  -s "$ROOT/bench/post.lua" "$URL/api/colorize" | tee "$WORK/wrk.out"

kill "$PROBE_PID" 2>/dev/null || true
wait "$PROBE_PID" 2>/dev/null || true
PROBE_PID=""

echo "--- server ---"
grep -E 'VmHWM|VmRSS' "/proc/$SERVER_PID/status" | sed 's/^/server /'
awk '{ n++; if ($1 != 200) bad++; if ($2 > max) max = $2; sum += $2 }
     END { printf "healthz probes %d, not 200: %d, mean %.1f ms, max %.1f ms\n", n, bad + 0, 1000 * sum / n, 1000 * max }' "$WORK/health.log"

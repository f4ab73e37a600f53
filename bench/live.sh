#!/usr/bin/env bash
# Live colour over UDP (not a test): makes a 640x480, 25 frames/s, 8-second H.264 clip from a
# video, starts `tinct video udp://127.0.0.1:PORT -o OUT --stats`, pushes the clip to it at
# real-time rate with `ffmpeg -re` (MPEG-TS over loopback), and prints frames in and out,
# dropped and carried, frames/s and latency, ROUNDS times.
#
#   bench/live.sh [VIDEO] [ROUNDS]
#
# VIDEO: default ../shared/data/video/squirrel_pexels_audio.mp4. ROUNDS: 3.
# Environment: TINCT_BIN (default target/release/tinct), ARGS (extra `tinct video` arguments).
# Pause any background job first: the figures are only meaningful on a quiet machine.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VIDEO="${1:-$ROOT/../shared/data/video/squirrel_pexels_audio.mp4}"
ROUNDS="${2:-3}"
BIN="${TINCT_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tinct}"
read -r -a EXTRA <<<"${ARGS:-}"

command -v ffmpeg >/dev/null || { echo "live.sh: ffmpeg is not installed (apt-get install -y ffmpeg)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "live.sh: $BIN not found; run cargo build --release" >&2; exit 1; }
[ -f "$VIDEO" ] || { echo "live.sh: $VIDEO: no such file" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
ffmpeg -nostdin -v error -y -i "$VIDEO" -vf scale=640:480,fps=25 -an -t 8 \
  -c:v libx264 -tune zerolatency -g 25 -pix_fmt yuv420p "$WORK/clip.mp4"
PORT=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "live.sh: 200 frames of 640x480 at 25 frames/s from $VIDEO, over udp://127.0.0.1:$PORT"

for ((r = 1; r <= ROUNDS; r++)); do
  rm -f "$WORK/out.mp4" "$WORK/stats.json"
  "$BIN" video "udp://127.0.0.1:$PORT" -o "$WORK/out.mp4" --stats "$WORK/stats.json" --timeout 2 -q "${EXTRA[@]}" &
  tinct_pid=$!
  sleep 1.5
  ffmpeg -nostdin -v error -re -i "$WORK/clip.mp4" -c copy -f mpegts "udp://127.0.0.1:$PORT?pkt_size=1316"
  wait "$tinct_pid"
  python3 - "$WORK/stats.json" "$r" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"round {sys.argv[2]}: in {s['frames_in']}, out {s['frames_out']} "
      f"(coloured {s['coloured']}, carried {s['carried']}), dropped {s['dropped']} "
      f"({100 * s['dropped'] / max(s['frames_in'], 1):.1f} %), {s['fps_out']:.1f} frames/s out, "
      f"latency p50 {s['latency_ms_p50']:.0f} ms, p99 {s['latency_ms_p99']:.0f} ms")
EOF
done

#!/usr/bin/env bash
# Throughput of `tinct colorize` over a folder of 1-megapixel B&W JPEGs (not a test): makes N
# images of 1224x816 from a folder of photos, then times each binary given over the whole
# folder, alternating the binaries, ROUNDS times, and prints images/s per run and the median.
#
#   bench/batch.sh [PHOTOS_DIR] [N] [ROUNDS]
#
# PHOTOS_DIR: default ../shared/data/photos/val. N: 60. ROUNDS: 3.
# Environment: BINS (space-separated binaries to compare; default target/release/tinct),
# ARGS (extra colorize arguments, e.g. "--model anime"). Needs ffmpeg to make the images.
# Pause any background job first: the figures are only meaningful on a quiet machine.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PHOTOS="${1:-$ROOT/../shared/data/photos/val}"
N="${2:-60}"
ROUNDS="${3:-3}"
BINS="${BINS:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tinct}"
read -r -a EXTRA <<<"${ARGS:-}"

command -v ffmpeg >/dev/null || { echo "batch.sh: ffmpeg is not installed (apt-get install -y ffmpeg)" >&2; exit 1; }
[ -d "$PHOTOS" ] || { echo "batch.sh: $PHOTOS: no such folder" >&2; exit 1; }
for b in $BINS; do
  [ -x "$b" ] || { echo "batch.sh: $b not found; run cargo build --release" >&2; exit 1; }
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/in"
find "$PHOTOS" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort | head -n "$N" |
  while read -r f; do
    ffmpeg -nostdin -v error -y -i "$f" -vf "scale=1224:816:flags=bicubic,format=gray" -q:v 3 "$WORK/in/$(basename "${f%.*}").jpg"
  done
count=$(find "$WORK/in" -type f | wc -l)
echo "batch.sh: $count images of 1224x816 from $PHOTOS"

declare -A RATES
for ((r = 1; r <= ROUNDS; r++)); do
  for b in $BINS; do
    rm -rf "$WORK/out"
    start=$(date +%s.%N)
    "$b" colorize "$WORK/in" -o "$WORK/out/" -q "${EXTRA[@]}"
    end=$(date +%s.%N)
    rate=$(python3 -c "print(f'{$count / ($end - $start):.2f}')")
    echo "round $r  $b  $rate images/s"
    RATES[$b]="${RATES[$b]:-} $rate"
  done
done
for b in $BINS; do
  median=$(python3 -c "import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))" ${RATES[$b]})
  echo "median  $b  $median images/s  (runs:${RATES[$b]})"
done

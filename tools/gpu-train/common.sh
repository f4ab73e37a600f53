# Sourced by the sweep scripts: arguments, the twin's command and the training cache.
# Usage of a sweep: SCRIPT INPUTS OUT SECONDS, where INPUTS/data holds the training photos
# (photos/train pre-resized to 256x256); SIZE and BATCH (default 256, 32) are smaller for a dry run
# on a CPU. Every 10th file by sorted name is held out for calibration (--holdout-every 10).
set -u
IN=$1
OUT=$2
SECS=${3:-$DEFAULT_SECS}
SIZE=${SIZE:-256}
BATCH=${BATCH:-32}
HERE=$(cd "$(dirname "$0")" && pwd)
T="python3 -u $HERE/train.py"
LOGS=/tmp/logs
rm -rf "$LOGS"  # only this sweep's logs are printed by finish
mkdir -p "$OUT" "$LOGS"
$T --prepare --data "$IN/data" --cache /dev/shm/photos.npy --holdout-every 10 || exit 1

# Waits for the side-by-side runs and prints their logs and what they wrote.
finish() {
    wait
    for f in "$LOGS"/*.txt; do echo "== $f"; grep -v Warn "$f"; done
    ls -la "$OUT"
}

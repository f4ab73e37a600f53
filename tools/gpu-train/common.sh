# Sourced by the sweep scripts: arguments, the twin's command, the training cache and the helpers
# that gather what the runs wrote.
# Usage of a sweep: SCRIPT INPUTS OUT SECONDS, where INPUTS/data holds the training photos
# (photos/train pre-resized to 256x256; domains.sh has other folders and caches its own); SIZE and
# BATCH (default 256, 32) are smaller for a dry run on a CPU. Every 10th file by sorted name is
# held out for calibration (--holdout-every 10).
set -u
IN=$1
OUT=$2
SECS=${3:-$DEFAULT_SECS}
SIZE=${SIZE:-256}
BATCH=${BATCH:-32}
HERE=$(cd "$(dirname "$0")" && pwd)
# The trainer (T=echo prints the commands a sweep would run, for checking it without a GPU).
T=${T:-python3 -u $HERE/train.py}
LOGS=/tmp/logs
SNAPS=/tmp/snaps
# Only this sweep's logs are printed by finish, and only its snapshots averaged by collect.
rm -rf "$LOGS" "$SNAPS"
mkdir -p "$OUT" "$LOGS" "$SNAPS"
if [ -d "$IN/data" ]; then
    $T --prepare --data "$IN/data" --cache /dev/shm/photos.npy --holdout-every 10 || exit 1
fi

# launch NAME SECS PRE "D..." [FLAGS]: one run of the trainer in the background (with $common and
# FLAGS, which may override it), L1 only for its first PRE seconds, a snapshot at
# PRE + (SECS - PRE) / D seconds for each D, its log in $LOGS.
launch() {
    local name=$1 secs=$2 pre=$3 divisors=$4 snaps="" d
    shift 4
    for d in $divisors; do snaps="$snaps${snaps:+,}$((pre + (secs - pre) / d))"; done
    $T $common --name "$name" --seconds "$secs" --pretrain-seconds "$pre" --snapshots "$snaps" "$@" \
        > "$LOGS/$name.txt" 2>&1 &
}

# collect RUN...: waits for the runs, then leaves two files of each in OUT: its final weights and
# the average of its snapshots (at most 8 files come back from a device call).
collect() {
    wait
    for run in "$@"; do
        cp "$SNAPS/$run-final.safetensors" "$OUT/" 2>/dev/null
        # Four digits of seconds: "frozen-[0-9]*" would also take frozen-128's snapshots.
        python3 "$HERE/train.py" --average "$OUT/$run-avg3.safetensors" \
            "$SNAPS/$run"-[0-9][0-9][0-9][0-9]s.safetensors
    done
}

# Waits for the side-by-side runs and prints their logs and what they wrote.
finish() {
    wait
    for f in "$LOGS"/*.txt; do echo "== $f"; grep -v Warn "$f"; done
    ls -la "$OUT"
}

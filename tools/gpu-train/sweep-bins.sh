#!/usr/bin/env bash
# The second GPU call of session 8: heads that classify ab over K x K bins (cross-entropy only,
# no GAN), started from the regression model's encoder and decoder. Usage: sweep-bins.sh INPUTS OUT SECONDS
set -u
IN=$1
OUT=$2
SECS=${3:-150}
SIZE=${SIZE:-256}
BATCH=${BATCH:-32}
HERE=$(cd "$(dirname "$0")" && pwd)
T="python3 -u $HERE/train.py"
LOGS=/tmp/logs
mkdir -p "$LOGS"
$T --prepare --data "$IN/data" --cache /dev/shm/photos.npy --holdout-every 10 || exit 1
common="--cache /dev/shm/photos.npy --size $SIZE --gen-size 256 --batch $BATCH --half --out $OUT --log-seconds 30
  --init-g $IN/g-ema.safetensors --seconds $SECS --pretrain-seconds $((SECS + 1000)) --snapshots $((SECS / 3)),$((SECS * 2 / 3))"
$T $common --name bins13 --ab-bins 13 > "$LOGS/bins13.txt" 2>&1 &
$T $common --name bins9 --ab-bins 9 > "$LOGS/bins9.txt" 2>&1 &
wait
for f in "$LOGS"/*.txt; do echo "== $f"; grep -v Warn "$f"; done
ls -la "$OUT"

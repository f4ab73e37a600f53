#!/usr/bin/env bash
# The second GPU call of the 2026-11-26 H200 run (docs/experiments/2026-11-26-gpu-twin-bins-averaging.md):
# heads that classify ab over K x K bins (cross-entropy only,
# no GAN), started from the regression model's encoder and decoder. Usage: sweep-bins.sh INPUTS OUT SECONDS
DEFAULT_SECS=150
source "$(dirname "$0")/common.sh"
common="--cache /dev/shm/photos.npy --size $SIZE --gen-size 256 --batch $BATCH --half --out $OUT --log-seconds 30
  --init-g $IN/g-ema.safetensors --seconds $SECS --pretrain-seconds $((SECS + 1000)) --snapshots $((SECS / 3)),$((SECS * 2 / 3))"
$T $common --name bins13 --ab-bins 13 > "$LOGS/bins13.txt" 2>&1 &
$T $common --name bins9 --ab-bins 9 > "$LOGS/bins9.txt" 2>&1 &
finish

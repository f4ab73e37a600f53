#!/usr/bin/env bash
# Variations on the `thaw` recipe, which gave the shipped photo (ImageNet encoder frozen while L1
# trains the decoder, then trained in the GAN stage; docs/experiments/2026-11-26-h100-photo-recipes.md):
# four runs side by side, with the 183 calibration files kept out. That run's best weights were the
# earliest it saved (1/8 of the way through the GAN stage, about 7 GAN epochs), and on the
# drawings the best came 0.6 GAN epochs in, so these runs save at 1/32, 1/16 and 1/8.
# Usage: thaw.sh INPUTS OUT SECONDS   (inputs and the steps after the call: as clean.sh's header)
#   OUT: per run its final weights and the average of its three snapshots (8 files, fp16).
#   run: bash tools/gpu-train/thaw.sh .gpu-in $OUT 420   (carry .gpu-in; timeout_s about SECS + 120)
DEFAULT_SECS=420
source "$(dirname "$0")/common.sh"
common="--cache /dev/shm/photos.npy --imagenet $IN/effnet-enc.safetensors --size $SIZE --gen-size 256
  --batch $BATCH --half --out $SNAPS --log-seconds 60 --ema-decay 0.99 --crop-min 1 --lambda-l1 100"
# run NAME PRE [FLAGS]: a thaw run whose L1 stage (encoder frozen) lasts PRE seconds, with
# snapshots 1/32, 1/16 and 1/8 of the way through its GAN stage.
run() {
    local name=$1 pre=$2
    shift 2
    launch "$name" "$SECS" "$pre" "32 16 8" --freeze-encoder-seconds "$pre" "$@"
}
run thaw-s7 $((SECS / 2)) --seed 7               # the shipped photo's run, another seed
run thaw-crop $((SECS / 2)) --crop-min 0.6       # random crops of 0.6-1 of each side
run thaw-long $((SECS * 2 / 3))                  # a longer L1 stage
run thaw-l300 $((SECS / 2)) --lambda-l1 300      # a weaker GAN (the gain supplies the colour)
collect thaw-s7 thaw-crop thaw-long thaw-l300
finish

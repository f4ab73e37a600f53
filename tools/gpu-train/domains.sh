#!/usr/bin/env bash
# The anime and drawn models on one GPU (run on 2026-11-26): each fine-tuned from a photo
# generator, with the "thaw" recipe of the shipped photo (encoder frozen in the L1 stage, trained in the GAN
# stage) beside the recipe they shipped with (encoder frozen throughout). Every 10th training
# file (by sorted name) is held out, to calibrate the chroma gain on afterwards.
# Usage: domains.sh INPUTS OUT SECONDS
#   INPUTS: anime/ and drawn/ (the training folders as they are), photo.safetensors (the start).
#   OUT:    per run, its final weights and the average of three snapshots (1/8, 1/4 and 1/2 of
#           the way through its GAN stage): 8 files in all, fp16.
#   SECONDS: the anime runs' length; the drawn runs (366 images, about 1 epoch a second at
#           256 px) take 3/8 of it. The L1 stage is the first third.
# Before the call, here:
#   mkdir -p .gpu-in && cp -r ../shared/data/anime/train .gpu-in/anime &&
#   cp -r ../shared/data/drawn/train .gpu-in/drawn && cp models/photo.safetensors .gpu-in/
#   run: bash tools/gpu-train/domains.sh .gpu-in $OUT 120   (carry .gpu-in)
DEFAULT_SECS=120
source "$(dirname "$0")/common.sh"
$T --prepare --data "$IN/anime" --store-size 128 --cache /dev/shm/anime.npy --holdout-every 10 || exit 1
$T --prepare --data "$IN/drawn" --store-size 256 --cache /dev/shm/drawn.npy --holdout-every 10 || exit 1
common="--init-g $IN/photo.safetensors --crop-min 1 --batch 32 --lambda-l1 100 --ema-decay 0.99
  --half --out $SNAPS --log-seconds 15"
# run NAME DOMAIN SIZE SECONDS [FLAGS]: one fine-tuning run in the background, L1 for its first
# third, snapshots 1/8, 1/4 and 1/2 of the way through its GAN stage.
run() {
    local name=$1 domain=$2 size=$3 secs=$4
    shift 4
    launch "$name" "$secs" $((secs / 3)) "8 4 2" --cache "/dev/shm/$domain.npy" --size "$size" \
        --gen-size "$size" "$@"
}
D=$((SECS * 3 / 8))
run anime-thaw anime 128 "$SECS" --freeze-encoder-seconds $((SECS / 3))
run anime-frozen anime 128 "$SECS" --freeze-encoder-seconds 1000000
run drawn-thaw drawn 256 "$D" --freeze-encoder-seconds $((D / 3))
run drawn-frozen drawn 256 "$D" --freeze-encoder-seconds 1000000
collect anime-thaw anime-frozen drawn-thaw drawn-frozen
finish

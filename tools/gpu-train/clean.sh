#!/usr/bin/env bash
# The photo model's clean recipes on one GPU (the set run on 2026-11-26): four runs side by side from the
# ImageNet encoder, none of which sees the 183 held-out training files, so that the chroma gain can
# be calibrated honestly on those files afterwards (docs/experiments/2026-11-26-clean-cpu-model.md
# and 2026-11-26-frozen-recipe-holdout.md).
# Usage: clean.sh INPUTS OUT SECONDS
#   INPUTS: data/ (photos/train pre-resized to 256x256), effnet-enc.safetensors (ImageNet encoder).
#   OUT:    at most 8 files come back from a device call, so each run leaves two there (fp16):
#           its final weights and the average of its three snapshots (1/8, 1/4 and 1/2 of the
#           way through the GAN stage).
#   SECONDS: training time of each run (the four share the GPU: about 200 images/s each at 256 px).
# Before the call, here (INPUTS must fit beside the repository in a device call's 64 MiB):
#   python3 tools/gpu-train/train.py --pack .gpu-in --data ../shared/data/photos/train \
#       --imagenet ../shared/weights/efficientnet-lite0.safetensors     # 33.7 MiB
#   echo /.gpu-in/ >> .git/info/exclude
#   run: bash tools/gpu-train/clean.sh .gpu-in $OUT 400   (carry .gpu-in; timeout_s about SECS + 150)
# Then, here: tinct eval --model OUT/X.safetensors /tmp/hold --match-colourfulness 0.92, pick the
# best held-out PSNR at its gain, tinct export --half --saturation G, and score photos/val once.
DEFAULT_SECS=400
source "$(dirname "$0")/common.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
common="--cache /dev/shm/photos.npy --imagenet $IN/effnet-enc.safetensors --size $SIZE --gen-size 256
  --batch $BATCH --half --out $SNAPS --log-seconds 60 --ema-decay 0.99"
pre=$((SECS / 2))
# Snapshots early in the GAN stage (1/8, 1/4 and 1/2 of the way), to average: on the CPU, v1's
# best came 1.5 GAN epochs in, and a GPU run sees about 3 epochs of 1,640 photos per 25 s here.
frozen="--freeze-encoder-seconds 1000000 --crop-min 1 --lambda-l1 100"
# The frozen-recipe study's v1 (the first photo's recipe: encoder frozen, whole images, lambda 100), at
# 256 px and at v1's own 128 px and batch 16. (v1's chroma-term twin, v2, lost 0.7 dB on the CPU.)
launch frozen "$SECS" "$pre" "8 4 2" $frozen
launch frozen-128 "$SECS" "$pre" "8 4 2" $frozen --size 128 --batch 16
# The clean CPU model's recipe (encoder trained, crops, lambda 500 with the colourfulness term).
launch open "$SECS" "$pre" "8 4 2" --pretrain-chroma-weight 4 --lambda-l1 500 --chroma-weight 2000
# Between the two: v1's frozen L1 stage, then a GAN stage that also trains the encoder.
launch thaw "$SECS" "$pre" "8 4 2" --freeze-encoder-seconds "$pre" --crop-min 1 --lambda-l1 100
sleep $((SECS / 4))
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
collect frozen frozen-128 open thaw
finish

#!/usr/bin/env bash
# One GPU job (the 2026-11-26 H200 run, docs/experiments/2026-11-26-gpu-twin-bins-averaging.md):
# the training throughput benchmark, then four photo-model
# variants trained side by side on the one GPU. Usage: sweep.sh INPUTS OUT SECONDS
#   INPUTS: data/ (photos/train pre-resized to 256x256), g-ema.safetensors and d.safetensors (a
#           tinct run's checkpoint to continue), effnet-enc.safetensors (ImageNet encoder).
#   OUT:    where each variant's snapshots go (written there as they are made).
#   SECONDS: training time of each variant.
DEFAULT_SECS=360
source "$(dirname "$0")/common.sh"
SNAPS=$OUT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version())'

# Throughput at 256 px, batch 32, alone on the GPU: fp32 with TF32, then bf16.
$T --bench --imagenet "$IN/effnet-enc.safetensors" --size $SIZE --batch $BATCH --lambda-l1 100 2>&1 | grep -v Warn
$T --bench --bf16 --imagenet "$IN/effnet-enc.safetensors" --size $SIZE --batch $BATCH --lambda-l1 100 2>&1 | grep -v Warn

common="--cache /dev/shm/photos.npy --size $SIZE --gen-size 256 --batch $BATCH --half --out $SNAPS --log-seconds 60"
half=$((SECS / 3))
cont="--init-g $IN/g-ema.safetensors --init-d $IN/d.safetensors"
$T $common $cont --name cont500 --lambda-l1 500 --chroma-weight 2000 --seconds "$SECS" --snapshots "$half" > "$LOGS/cont500.txt" 2>&1 &
$T $common $cont --name cont250 --lambda-l1 250 --chroma-weight 2000 --seconds "$SECS" --snapshots "$half" > "$LOGS/cont250.txt" 2>&1 &
$T $common $cont --name cont150 --lambda-l1 150 --chroma-weight 1000 --seconds "$SECS" --snapshots "$half" > "$LOGS/cont150.txt" 2>&1 &
pre=$((SECS * 2 / 5))
$T $common --imagenet "$IN/effnet-enc.safetensors" --name scratch --pretrain-seconds "$pre" \
    --pretrain-chroma-weight 4 --lambda-l1 250 --chroma-weight 1000 --seconds "$SECS" --snapshots "$pre" \
    > "$LOGS/scratch.txt" 2>&1 &
sleep $((SECS / 6))
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
finish

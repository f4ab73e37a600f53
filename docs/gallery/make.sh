#!/usr/bin/env bash
# Rebuilds the before/after gallery in this folder from ../shared/data with the shipped models:
#   bash docs/gallery/make.sh [photo|anime|drawn|all]   (default: all)
# photo: historical photos (no ground truth) and one photos/val image, as gray | tinct.
# anime, drawn: three validation images each, as gray | tinct | the colour original; drawn
# also three held-out drawings of ../shared/data/extra/drawn (a cartoon frame, creature art
# and an anime illustration).
# PREVIOUS=FILE adds a panel coloured by that model file before tinct's (old beside new).
# TINCT=PATH picks the binary (default: target/release/tinct). Needs ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/../.."
which=${1:-all}
shared=../shared/data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 256-colour PNGs (a third of the size of true-colour ones), dithered.
palette="split[p][q];[p]palettegen=max_colors=256[pal];[q][pal]paletteuse=dither=sierra2_4a"

tinct=${TINCT:-target/release/tinct}

# panel MODEL HEIGHT INPUT OUTPUT [truth]: gray input [| $PREVIOUS] | colourised [| original],
# HEIGHT px high.
panel() {
  local model=$1 height=$2 f=$3 out=$4 truth=${5:-}
  local name
  name=$(basename "${f%.*}")
  local inputs=("$tmp/$name-gray.png")
  ffmpeg -v error -y -i "$f" -vf "format=gray,format=rgb24" "$tmp/$name-gray.png"
  if [ -n "${PREVIOUS:-}" ]; then
    "$tinct" colorize "$tmp/$name-gray.png" -o "$tmp/$name-previous.png" --model "$PREVIOUS" -q
    inputs+=("$tmp/$name-previous.png")
  fi
  "$tinct" colorize "$tmp/$name-gray.png" -o "$tmp/$name-colour.png" --model "$model" -q
  inputs+=("$tmp/$name-colour.png")
  [ -n "$truth" ] && inputs+=("$f")
  local args=() scaled="" i
  for i in "${!inputs[@]}"; do
    args+=(-i "${inputs[$i]}")
    scaled+="[$i]scale=-2:$height[s$i];"
  done
  local stack=""
  for i in "${!inputs[@]}"; do stack+="[s$i]"; done
  ffmpeg -v error -y "${args[@]}" \
    -filter_complex "${scaled}${stack}hstack=${#inputs[@]},$palette" -frames:v 1 "$out"
}

if [ "$which" = all ] || [ "$which" = photo ]; then
  for f in "$shared/historical/migrant_mother.jpg" "$shared/historical/1909Chicago.jpg" \
    "$shared/historical/AppalachianLoggers1901.jpg" "$shared/historical/TitanicGym.jpg" \
    "$shared/photos/val/$(ls "$shared/photos/val" | sed -n 3p)"; do
    panel photo 140 "$f" "docs/gallery/$(basename "${f%.*}").png"
  done
fi
for model in anime drawn; do
  if [ "$which" = all ] || [ "$which" = $model ]; then
    for n in 1 5 9; do
      f="$shared/$model/val/$(ls "$shared/$model/val" | sed -n ${n}p)"
      panel $model 128 "$f" "docs/gallery/$model-$(basename "${f%.*}").png" "$f"
    done
  fi
done
if [ "$which" = all ] || [ "$which" = drawn ]; then
  # Held out of training: every 10th file of extra/drawn, sorted by name; the first of each kind.
  held=$(ls "$shared/extra/drawn" | sort | awk 'NR % 10 == 1')
  for kind in pacscartoon pokemon s2aanime; do
    f=$(grep -m1 "^$kind" <<< "$held")
    panel drawn 128 "$shared/extra/drawn/$f" "docs/gallery/drawn-${f%.*}.png" "$shared/extra/drawn/$f"
  done
fi
du -ch docs/gallery/*.png | tail -1

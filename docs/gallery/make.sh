#!/usr/bin/env bash
# Rebuilds the before/after gallery in this folder from ../shared/data with the shipped models:
#   bash docs/gallery/make.sh [photo|anime|drawn|all]   (default: all)
# photo: historical photos (no ground truth) and one photos/val image, as gray | tinct.
# anime, drawn: three validation images each, as gray | tinct | the colour original.
# Needs ffmpeg (for the side-by-side montage) and a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
which=${1:-all}
shared=../shared/data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 256-colour PNGs (a third of the size of true-colour ones), dithered.
palette="split[p][q];[p]palettegen=max_colors=256[pal];[q][pal]paletteuse=dither=sierra2_4a"

# panel MODEL HEIGHT INPUT OUTPUT [truth]: gray input | colourised [| original], HEIGHT px high.
panel() {
  local model=$1 height=$2 f=$3 out=$4 truth=${5:-}
  local name
  name=$(basename "${f%.*}")
  ffmpeg -v error -y -i "$f" -vf "format=gray,format=rgb24" "$tmp/$name-gray.png"
  target/release/tinct colorize "$tmp/$name-gray.png" -o "$tmp/$name-colour.png" --model "$model" -q
  if [ -n "$truth" ]; then
    ffmpeg -v error -y -i "$tmp/$name-gray.png" -i "$tmp/$name-colour.png" -i "$f" \
      -filter_complex "[0]scale=-2:$height[a];[1]scale=-2:$height[b];[2]scale=-2:$height[c];[a][b][c]hstack=3,$palette" \
      -frames:v 1 "$out"
  else
    ffmpeg -v error -y -i "$tmp/$name-gray.png" -i "$tmp/$name-colour.png" \
      -filter_complex "[0]scale=-2:$height[a];[1]scale=-2:$height[b];[a][b]hstack,$palette" -frames:v 1 "$out"
  fi
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
du -ch docs/gallery/*.png | tail -1

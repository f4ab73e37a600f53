#!/usr/bin/env bash
# Rebuilds the before/after gallery in this folder from ../shared/data with the shipped photo model:
#   bash docs/gallery/make.sh [MODEL]
# Needs ffmpeg (for the side-by-side montage) and a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:-photo}
shared=../shared/data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
inputs=(
  "$shared/historical/migrant_mother.jpg"
  "$shared/historical/1909Chicago.jpg"
  "$shared/historical/AppalachianLoggers1901.jpg"
  "$shared/historical/TitanicGym.jpg"
  "$shared/photos/val/$(ls "$shared/photos/val" | sed -n 3p)"
)
for f in "${inputs[@]}"; do
  name=$(basename "${f%.*}")
  # Before: the input's lightness only (what the model sees); after: tinct's colour.
  ffmpeg -v error -y -i "$f" -vf "format=gray,format=rgb24" "$tmp/$name-gray.png"
  target/release/tinct colorize "$tmp/$name-gray.png" -o "$tmp/$name-colour.png" --model "$model" -q
  ffmpeg -v error -y -i "$tmp/$name-gray.png" -i "$tmp/$name-colour.png" \
    -filter_complex "[0]scale=-2:140[a];[1]scale=-2:140[b];[a][b]hstack" -frames:v 1 "docs/gallery/$name.png"
done
du -ch docs/gallery/*.png | tail -1

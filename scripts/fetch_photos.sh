#!/usr/bin/env bash
# Fetch the training/held-out photographs from Debian's wallpaper packages (no install: apt-get download
# + dpkg-deb -x) and write them, resized, to data/photos/{train,test}/NAME.jpg as listed in scripts/photos.tsv.
#   bash scripts/fetch_photos.sh [DATA_DIR=data/photos]
# Tests never need these files; training scripts and the GPU session do (data/ is git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-data/photos}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
packages=$(awk -F'\t' '!/^#/ {print $4}' scripts/photos.tsv | sort -u)
(cd "$work" && apt-get download $packages >/dev/null)
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
python scripts/prepare_photos.py --root "$work/root" --out "$out"

#!/usr/bin/env bash
# Build the photograph pool listed in scripts/photos.tsv: download its Debian packages (apt-get download +
# dpkg-deb -x; nothing is installed, ~600 MB fetched, ~1 GB unpacked in a temporary folder) and write each photo,
# resized, to DATA_DIR/{train,test,test_dense}/NAME.jpg (~50 MB).
#   bash scripts/fetch_photos.sh [DATA_DIR=data/photos]
# Tests never need these files; training scripts and the GPU run do (data/ is git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-data/photos}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
packages=$(awk -F'\t' '!/^#/ {print $4}' scripts/photos.tsv | sort -u)
# A fresh machine's package index may be empty or old: update it once when a download fails.
(cd "$work" && { apt-get download $packages >/dev/null 2>&1 || { apt-get update -qq && apt-get download $packages >/dev/null; }; })
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
python scripts/prepare_photos.py --root "$work/root" --out "$out"

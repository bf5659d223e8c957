#!/usr/bin/env bash
# Text fonts for the rendered-text training source (train/synth/text.py, source "text:N:DIR"): Debian's Latin
# text faces, unpacked without installing anything (apt-get download + dpkg-deb -x, ~20 MB fetched), into
# DIR/<package>/ beside each package's copyright file (~31 MB, 108 faces).
#   bash scripts/fetch_fonts.sh [DIR=data/fonts]
# Tests never need these files (without fonts the source draws with Pillow's built-in face).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-data/fonts}
packages="fonts-dejavu-core fonts-liberation2 fonts-freefont-ttf fonts-croscore fonts-urw-base35 fonts-open-sans
          fonts-roboto-unhinted"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A fresh machine's package index may be empty or old: update it once when a download fails.
(cd "$work" && { apt-get download $packages >/dev/null 2>&1 || { apt-get update -qq && apt-get download $packages >/dev/null; }; })
for deb in "$work"/*.deb; do
  pkg=$(dpkg-deb -f "$deb" Package)
  dpkg-deb -x "$deb" "$work/$pkg"
  mkdir -p "$out/$pkg"
  cp "$work/$pkg/usr/share/doc/$pkg/copyright" "$out/$pkg/"
  # Symbol and dingbat faces have no letters to learn from.
  find "$work/$pkg/usr/share/fonts" -type f \( -name '*.ttf' -o -name '*.otf' \) \
      ! -name 'D050000L*' ! -name 'StandardSymbols*' -exec cp {} "$out/$pkg/" \;
done
echo "$(find "$out" -type f \( -name '*.ttf' -o -name '*.otf' \) | wc -l) fonts in $out"

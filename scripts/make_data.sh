#!/usr/bin/env bash
# Render the held-out sets every evaluation reports (deterministic: same photos + same seeds = same clips), and
# with --study also the pre-rendered training folders of the first model study (docs/model_study.md). Needs
# data/photos (scripts/fetch_photos.sh, run here when missing). The default model trains on blur synthesised fresh
# for every item (data.kind = "synthetic"), so it needs no rendered training folder.
#   bash scripts/make_data.sh            # ~8 CPU-minutes: data/eval, data/eval_small, data/eval_crf12, data/eval_dense*,
#                                        # data/eval_shutter, data/eval_moving
#   bash scripts/make_data.sh --study    # + data/shake2 and the low-blur folders (~25 more CPU-minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d data/photos/test_dense ] || bash scripts/fetch_photos.sh data/photos
render="python -m vdeblur.train.synth.render_dataset"
# Held out (5 photographs no training clip saw): 24 clips of 8 frames at 320x240, mean blur 5-12 px (~8 px),
# and 12 clips of 8 frames at 64x48 (a small video, 2-4 px of blur).
$render --source data/photos/test --out data/eval --split test --sequences 24 --frames 8 --size 240x320 --seed 12 \
    --scale 0.4 1.0 --blur-px 5 12 --prefix ev
$render --source data/photos/test --out data/eval_small --split test --sequences 12 --frames 8 --size 48x64 --seed 14 \
    --scale 0.1 0.3 --blur-px 2 4 --prefix sm
# The same 24 held-out clips (same seed: same photos, windows and blur) as a phone would save them in good
# light: no sensor noise, every clip H.264 at CRF 12.
$render --source data/photos/test --out data/eval_crf12 --split test --sequences 24 --frames 8 --size 240x320 --seed 12 \
    --scale 0.4 1.0 --blur-px 5 12 --prefix ev --noise none --h264-crf 12
# Dense detail, as real video looks (the 25 test_dense photographs: buildings, foliage, bark, scene text, animals in
# grass): sensor noise, H.264 CRF 12, ~8 px of shake, windows with at least 8 levels of mean luma gradient; 24 clips
# at 320x240 and 12 at 640x360, 8 frames each.
$render --source data/photos/test_dense --out data/eval_dense --split test --sequences 24 --frames 8 --size 240x320 \
    --seed 21 --scale 0.3 0.8 --blur-px 5 12 --prefix dn --h264-crf 12 --min-detail 8
$render --source data/photos/test_dense --out data/eval_dense360 --split test --sequences 12 --frames 8 --size 360x640 \
    --seed 22 --scale 0.5 1.0 --blur-px 5 12 --prefix dw --h264-crf 12 --min-detail 8
# Phone video in daylight, for --adapt (docs/adapt.md): 12 clips of 32 frames at 320x240 whose exposure is 1/4 to
# all of the frame interval, so the 5-12 px of shake a whole interval would gather blurs some frames far less.
$render --source data/photos/test --out data/eval_shutter --split test --sequences 12 --frames 32 --size 240x320 \
    --seed 31 --scale 0.4 1.0 --blur-px 5 12 --shutter 0.25 1 --prefix sh
# What one homography cannot align, for models fed the previous frame aligned by the camera's motion: the held-out
# photographs with 1-3 cut-outs each crossing the view on its own path at 3-20 px per frame (temporal blur only),
# their masks in <clip>/mask/ so that evaluations also score the moving regions alone; 24 clips of 8 frames.
$render --source data/photos/test --out data/eval_moving --split test --sequences 24 --frames 8 --size 240x320 --seed 41 \
    --scale 0.4 1.0 --blur-px 5 12 --prefix mv --objects
# Parallax: the held-out photographs with 1-2 near layers each, regions that move 15-50 % further or less far than
# the background under the camera's motion, their masks in <clip>/mask/; 24 clips of 8 frames.
$render --source data/photos/test --out data/eval_parallax --split test --sequences 24 --frames 8 --size 240x320 \
    --seed 51 --scale 0.4 1.0 --blur-px 5 12 --prefix px --parallax
[[ ${1:-} == --study ]] || exit 0

# The first model study's training data: 2400 clips of the 31 training wallpapers + scikit-image's 6, and 800 of
# dead leaves; 4 frames of 160x160 each (re-cropped to 128 and flipped every epoch), mean blur 3-20 px, photos
# downscaled x0.3-1.0. Only the wallpapers: data/photos/wallpapers links to them.
mkdir -p data/photos/wallpapers
awk -F'\t' '!/^#/ && $2 == "train" && $4 ~ /wallpapers|backgrounds/ {print $1}' scripts/photos.tsv |
    while read -r name; do ln -sfn "../train/$name.jpg" "data/photos/wallpapers/$name.jpg"; done
$render --source data/photos/wallpapers --source skimage --out data/shake2 --split train --sequences 2400 --frames 4 \
    --size 160x160 --seed 11 --scale 0.3 1.0 --blur-px 3 20 --prefix ph
$render --source deadleaves --out data/shake2 --split train --sequences 800 --frames 4 --size 160x160 --seed 13 \
    --scale 0.5 1.0 --blur-px 3 20 --prefix dl
# Validation during training reads <root>/test: the held-out clips.
ln -sfn ../eval/test data/shake2/test
# union DEST CLIP...: a training folder data/DEST/train of links to the given clips (no copies), validated on
# the held-out clips like data/shake2.
union() {
  local dest=data/$1; shift
  mkdir -p "$dest/train"
  for d in "$@"; do ln -sfn "../../${d#data/}" "$dest/train/"; done
  ln -sfn ../eval/test "$dest/test"
}
union shake2_photos data/shake2/train/ph*
# lowblur OUT SEQUENCES SEED MIN_BLUR PREFIX: clips of the training wallpapers with MIN_BLUR-3 px of mean
# blur (nearly sharp frames, which the default model over-sharpens), rendered as the photo clips of shake2.
lowblur() {
  $render --source data/photos/wallpapers --source skimage --out "data/$1" --split train --sequences "$2" --frames 4 \
      --size 160x160 --seed "$3" --scale 0.3 1.0 --blur-px "$4" 3 --prefix "$5"
}
# The low-blur study (docs/model_study.md): ws_lowblur (third stage): 600 clips of 0.5-3 px beside all of
# shake2 (16 % of clips); ws_lowblur2/3/4 (fourth stage): 1400, 2800, 4200 clips of 0.3-3 px (30/47/57 %).
lowblur lowblur 600 15 0.5 lb
union shake2_lowblur data/shake2/train/* data/lowblur/train/*
lowblur lowblur2 1400 16 0.3 lc
union shake2_lowblur2 data/shake2/train/* data/lowblur2/train/*
lowblur lowblur3 1400 17 0.3 ld
union shake2_lowblur3 data/shake2/train/* data/lowblur2/train/* data/lowblur3/train/*
lowblur lowblur4 1400 18 0.3 le
union shake2_lowblur4 data/shake2/train/* data/lowblur2/train/* data/lowblur3/train/* data/lowblur4/train/*

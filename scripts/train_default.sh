#!/usr/bin/env bash
# The default model's training programme: continue from the committed state, then pack it for the commit.
#   bash scripts/train_default.sh [CPU_MINUTES=60] [--set KEY=VALUE ...]   # e.g. --set train.steps=64000 (resumable)
# Run it first in a session, in the background (one torch thread; work on the other core), and before the
# session stops commit train_state/default (the packed state, < 30 MB). A fresh machine renders the data
# first (scripts/make_data.sh, ~25 CPU-minutes, deterministic). The packed state is slim (train/pack.py):
# the resumed run restarts its raw weights from the EMA and Adam from zero moments; the rest is exact.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-60}
shift $(( $# > 0 ? 1 : 0 ))   # the rest goes to vdeblur-train (only RESUMABLE_CHANGES keys resume)
[ -d data/shake2/train ] && [ -d data/eval/test ] || bash scripts/make_data.sh
mkdir -p runs
if [ ! -f runs/default/last.train.pt ]; then
  rm -rf runs/default && cp -rL train_state/default runs/default   # -L: the EMA may be a link to the bundled weights
fi
done_min=$(python -c "import torch; print(torch.load('runs/default/last.train.pt', weights_only=False).get('train_cpu_s', 0) / 60)")
limit=$(python -c "print($done_min + $minutes)")
echo "resuming runs/default at $done_min training CPU-minutes, until $limit"
vdeblur-train --config runs/default/run.toml --out runs/default --resume --threads 1 --cpu-limit "$limit" "$@"
python -m vdeblur.train.pack runs/default train_state/default --link-to vdeblur/models/vdeblur_deep.safetensors

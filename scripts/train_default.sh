#!/usr/bin/env bash
# The default model's training programme: continue from the committed state, then pack it for the commit.
#   bash scripts/train_default.sh [CPU_MINUTES=60] [--set KEY=VALUE ...]   # e.g. --set train.steps=80000 (resumable)
# Start it first, in the background (one torch thread: on a shared 2-core machine two threads wait on each
# other), and commit train_state/default (the packed state, < 10 MB) before the machine goes away. It trains on
# blur synthesised fresh for every item from the photograph pool (scripts/fetch_photos.sh builds data/photos on a
# fresh machine, ~1 minute) and dead leaves. The packed state is slim (train/pack.py): the resumed run restarts
# its raw weights from the EMA and Adam from zero moments; the rest is exact.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-60}
shift $(( $# > 0 ? 1 : 0 ))   # the rest goes to vdeblur-train (only RESUMABLE_CHANGES keys resume)
[ -d data/photos/train ] && [ -d data/photos/test_dense ] || bash scripts/fetch_photos.sh data/photos
mkdir -p runs
if [ ! -f runs/default/last.train.pt ]; then
  rm -rf runs/default && cp -rL train_state/default runs/default   # -L: the EMA may be a link to the bundled weights
fi
done_min=$(python -c "import torch; print(torch.load('runs/default/last.train.pt', weights_only=False).get('train_cpu_s', 0) / 60)")
limit=$(python -c "print($done_min + $minutes)")
echo "resuming runs/default at $done_min training CPU-minutes, until $limit"
vdeblur-train --config runs/default/run.toml --out runs/default --resume --threads 1 --cpu-limit "$limit" "$@"
python -m vdeblur.train.pack runs/default train_state/default --link-to vdeblur/models/vdeblur_deep.safetensors

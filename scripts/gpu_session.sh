#!/usr/bin/env bash
# One time-boxed run on a rented GPU machine: set-up, the CUDA tests, GPU figures, then training on the
# photograph pool, each stage under its own time limit and packed into OUT_DIR before the next starts.
#
#   bash scripts/gpu_session.sh OUT_DIR              # on the GPU machine, in the repo root
#   bash scripts/gpu_session.sh --rehearse OUT_DIR   # the same stages on this CPU, tiny sizes (~4 min on 2 busy cores)
#
# NEVER RUN ON A GPU YET: only the rehearsal has run (tests/test_gpu_session.py runs it).
#
# Made for a runner that gives one command of limited time on a GPU machine without network, uploads the working
# tree with a few carried paths, and brings a few files back. Its limits are settings (environment; defaults in
# brackets): RUN_SECONDS [540] for the whole call, UPLOAD_MIB [64] for the tree and the carried paths together,
# RETURN_FILES [8] files of at most RETURN_FILE_MIB [16], RETURN_MIB [64] in all and at most RETURN_DEPTH [2]
# folders down for what comes back. The stage limits below give training at least 300 of the default 540 s.
# The packages below are those of the image it was prepared for (Python 3.12, torch + CUDA, no PyAV).
#
# What comes back (OUT_DIR):
#   summary.json       machine (GPU, driver, CUDA, torch), each stage's status/time, test counts and
#                      failures, the figures in short, the training's last rows and checkpoint step
#   run.log            everything every stage printed (the end of it, if over 15 MiB)
#   results.tar.gz     results/{setup,tests,figures,eval}/: junit.xml, parity table, vdeblur-bench
#                      JSON/Markdown/plots, multistream.json, the 1080p `vdeblur` run, held-out quality
#   train_state/{run.toml,last.safetensors,last.train.pt,log.csv}   the layout of train_state/default/
#
# Before the call, here, in the repository root (once; .whl/ and data/ are git-ignored):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl av==18.1.0
#   bash scripts/fetch_photos.sh   # data/photos/{train,test,test_dense}, if not there yet
#   python3 scripts/gpu_session.py photos data/photos data/photos_travel . .whl data/photos_travel data/photos/test
# The last line re-encodes the photograph pool as WebP, as large as fits beside the tree and the PyAV wheel
# (measured 2026-12-04: tree 16.2 MiB with train_state/default linked to the bundled weights, av 18.1.0
# 34.1 MiB, data/photos/test 1.7 MiB: the 228 training and dense held-out photographs go at 768 px, WebP
# quality 78, 10.1 MiB; a train_state/default with weights of its own adds 8.1 MiB, and then not even 384 px
# photos fit: docs/gpu_session.md says what to leave out then). The GPU image already has torch, numpy,
# opencv-python-headless, numba, click, safetensors, scikit-image, scipy, onnx, onnxruntime (CPU provider
# only), onnxscript, matplotlib and pytest: only PyAV is missing. onnxruntime-gpu 1.31.1 (243.7 MiB) cannot
# travel: the ONNX Runtime rows run on the image's CPU onnxruntime; pynvvideocodec 2.2.4 (25.6 MiB) fits only
# without the photographs, so the real-NVDEC tests skip in the main call (a rerun can carry it: put its wheel
# in .whl-nvc/, STAGES=setup,tests).
#
# Carry: [".whl", "data/photos_travel", "data/photos/test"]; the held-out clips (data/eval, data/eval_dense) are
# rendered on the GPU machine from the photographs during training. Check before the call (the rehearsal runs it too):
#   python3 scripts/gpu_session.py travel . .whl data/photos_travel data/photos/test
# Command: bash scripts/gpu_session.sh "$OUT"   with a 600 s limit (the script ends itself after
# RUN_SECONDS, 540 by default, so a cut-off is the script's own, with everything packed).
#
# Every setting below can be given in the environment (e.g. STAGES=tests,figures for a rerun).
set -uo pipefail  # no -e: a failed stage is recorded and the next one still runs

TRAIN_STATE=${TRAIN_STATE:-train_state/default}    # run.toml + last.safetensors + last.train.pt + log.csv
TRAIN_FALLBACK_CONFIG=${TRAIN_FALLBACK_CONFIG:-vdeblur_fast}  # preset used when TRAIN_STATE has no run.toml
TRAIN_PHOTOS=${TRAIN_PHOTOS:-data/photos_travel/train}  # training photos; scikit-image's photos when absent
EVAL_DIR=${EVAL_DIR:-data/eval}                    # GoPro layout (uses test/); rendered from PHOTOS_TEST when absent
PHOTOS_TEST=${PHOTOS_TEST:-data/photos/test}       # data/eval's five held-out photographs, as make_data.sh reads them
EVAL_DENSE_DIR=${EVAL_DENSE_DIR:-data/eval_dense}  # dense detail; rendered from PHOTOS_DENSE when absent
PHOTOS_DENSE=${PHOTOS_DENSE:-data/photos_travel/test_dense}  # held-out photographs of dense detail (validation too)
# data/eval and data/eval_dense with the arguments of scripts/make_data.sh (tests/test_gpu_session.py checks they
# agree): a few MiB of photos rendered on the GPU machine during training are cheaper than 40 MiB of PNGs. data/eval
# comes out identical (its JPEGs travel as they are); the dense set is drawn from the re-encoded photographs, so its
# figures are close to, not the same as, data/eval_dense's (every set is evaluated again here on the CPU).
EVAL_RENDER=(--split test --sequences 24 --frames 8 --size 240x320 --seed 12 --scale 0.4 1.0 --blur-px 5 12 --prefix ev)
DENSE_RENDER=(--split test --sequences 24 --frames 8 --size 240x320 --seed 21 --scale 0.3 0.8 --blur-px 5 12 --prefix dn --h264-crf 12 --min-detail 8)
WHEELS=${WHEELS:-.whl}
CARRY=${CARRY:-".whl data/photos_travel data/photos/test"}  # uploaded beside the tree (checked against UPLOAD_MIB)
# The runner's transfer limits (scripts/gpu_session.py TransferLimits reads them; these are its defaults).
export UPLOAD_MIB=${UPLOAD_MIB:-64} RETURN_FILES=${RETURN_FILES:-8} RETURN_FILE_MIB=${RETURN_FILE_MIB:-16} \
    RETURN_MIB=${RETURN_MIB:-64} RETURN_DEPTH=${RETURN_DEPTH:-2}
WHEELS_EXTRA=${WHEELS_EXTRA:-.whl-nvc}             # optional second folder (pynvvideocodec), installed if present
BENCH_MODELS=${BENCH_MODELS:-vdeblur_deep,vdeblur_fast}  # registry names; weights: bundled, or BENCH_CHECKPOINTS
BENCH_CHECKPOINTS=${BENCH_CHECKPOINTS:-}           # space-separated NAME=PATH
STAGES=${STAGES:-setup,tests,figures,train}
RUN_SECONDS=${RUN_SECONDS:-540}                    # the whole call; training takes what is left of it
# Tests and figures share at most 145 s, set-up and the final evaluation 95 s: training gets >= 300 s of 540.
LIMIT_SETUP=${LIMIT_SETUP:-40}
LIMIT_TESTS=${LIMIT_TESTS:-70}
LIMIT_FIGURES=${LIMIT_FIGURES:-75}
TRAIN_RESERVE=${TRAIN_RESERVE:-55}                 # seconds kept after training: evaluation and the last pack
LIMIT_EVAL=${LIMIT_EVAL:-45}
# GPU training: bf16 autocast, large batches, 14 of 16 cores rendering the blur; a checkpoint every
# 200 steps (a 2 M-parameter model saves in milliseconds) so the minute-by-minute copy has a recent one.
GPU_TRAIN_SETS=(train.amp=bf16 train.batch=64 data.workers=14 train.ckpt_every=200 train.val_every=1000
                train.log_every=50 train.steps=20000 optim.warmup_steps=200 data.val_size=128 data.val_sequences=8)
REHEARSE_TRAIN_SETS=(train.steps=4 train.batch=2 train.crop=64 train.window=2 data.length=8 data.val_sequences=1
                     data.val_size=64 data.workers=0 train.val_every=2 train.ckpt_every=2 train.log_every=1
                     optim.warmup_steps=0)
PY=${PYTHON:-python3}
# The procedural dead-leaves source on the GPU (decoded by the data.workers pool at start-up); the
# rehearsal leaves it out (~100 s of CPU to decode its images).
EXTRA_SOURCES=${EXTRA_SOURCES-auto}

usage() { echo "usage: bash scripts/gpu_session.sh [--rehearse] OUT_DIR" >&2; exit 2; }
SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO=$(dirname "$(dirname "$SELF")")
HELPER="$REPO/scripts/gpu_session.py"

in_repo() { if [[ $1 == /* ]]; then echo "$1"; else echo "$REPO/$1"; fi; }  # paths may be given relative to the repo
TRAIN_STATE_DIR=$(in_repo "$TRAIN_STATE") PHOTOS_DIR=$(in_repo "$TRAIN_PHOTOS") EVAL_PATH=$(in_repo "$EVAL_DIR")
PHOTOS_TEST_DIR=$(in_repo "$PHOTOS_TEST") EVAL_DENSE_PATH=$(in_repo "$EVAL_DENSE_DIR") PHOTOS_DENSE_DIR=$(in_repo "$PHOTOS_DENSE")
want() { [[ ",$STAGES," == *",$1,"* ]]; }
log() { echo "[$(date -u +%H:%M:%S) +$((SECONDS - ${RUN_T0:-0}))s] $*" >&2; }
note() { echo "$*" >>"$WORK/stages/$STAGE.notes"; log "$STAGE: $*"; }
skip_stage() { echo "skipped: $*" >"$WORK/stages/$STAGE.status"; note "skipped: $*"; }
# run_step NAME LIMIT OUTFILE|- CMD...: one step of a stage under its own limit (--foreground: the
# stage's own `timeout` then ends the step too); a failure is noted and the stage goes on.
run_step() {
    local name=$1 limit=$(($2 * SLACK)) to=$3 t0=$SECONDS rc; shift 3
    log "$STAGE/$name (limit ${limit}s): $*"
    if [[ $to == - ]]; then timeout --foreground --kill-after=10 "$limit" "$@"
    else timeout --foreground --kill-after=10 "$limit" "$@" >"$to" 2>&1; fi
    rc=$?
    [[ $to == - ]] || cat "$to"
    [[ $rc == 0 ]] || note "$name: exit $rc$([[ $rc == 124 || $rc == 137 ]] && echo " (cut off at ${limit}s)")"
    log "$STAGE/$name: exit $rc after $((SECONDS - t0))s"
    return $rc
}

# ------------------------------------------------------------------------------------------- stages

stage_setup() {
    rm -rf "$SITE" && mkdir -p "$SITE/bin" "$SITE/vdeblur" "$RESULTS/setup"
    local folder
    for folder in "$(in_repo "$WHEELS")" "$(in_repo "$WHEELS_EXTRA")"; do
        if ! ls "$folder"/*.whl >/dev/null 2>&1; then
            [[ $folder == "$(in_repo "$WHEELS")" ]] && note "no $WHEELS/ wheels here: this environment's packages are used"
            continue
        fi
        "$PY" "$HELPER" wheels "$folder" || return 1
        if [[ $MODE == device ]]; then
            "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
                "$folder"/*.whl || return 1
        else
            note "${folder#"$REPO"/}/ wheels checked, not installed: this Python is $("$PY" -c 'import platform; print(platform.python_version())'), they are for 3.12"
        fi
    done
    if [[ $MODE == rehearse ]] && git -C "$REPO" rev-parse 2>/dev/null; then
        # shellcheck disable=SC2086  # CARRY is a list of paths
        "$PY" "$HELPER" travel "$REPO" $CARRY || return 1
    fi
    # The project from the working tree, as an installed package would lay it out (vdeblur.train is
    # train/, ...), by links: nothing is built or written into the tree, and an edit needs no reinstall.
    local entry
    for entry in "$REPO"/vdeblur/*; do ln -s "$entry" "$SITE/vdeblur/"; done
    for entry in train export engine benchmarks; do ln -s "$REPO/$entry" "$SITE/vdeblur/$entry"; done
    local cmd module
    for cmd in vdeblur:engine vdeblur-train:train vdeblur-export:export vdeblur-bench:benchmarks; do
        module=${cmd#*:}
        printf '#!/bin/sh\nexec "%s" -m vdeblur.%s.cli "$@"\n' "$PY" "$module" >"$SITE/bin/${cmd%%:*}"
        chmod +x "$SITE/bin/${cmd%%:*}"
    done
    "$PY" -c "import vdeblur.engine, sys; assert vdeblur.engine.__file__.startswith('$SITE'), vdeblur.engine.__file__" \
        || { note "vdeblur does not import from $SITE"; return 1; }
    local need=(); [[ $MODE == device ]] && need=(--need-cuda)
    "$PY" "$HELPER" machine "$RESULTS/setup/machine.json" "${need[@]}" || return 1
    nvidia-smi >"$RESULTS/setup/nvidia-smi.txt" 2>&1 || note "nvidia-smi: not available here"
}

stage_tests() {
    mkdir -p "$RESULTS/tests"
    [[ $MODE == rehearse ]] && echo "skipped: no CUDA GPU here; the -m cuda selection is collected and skips" \
        >"$WORK/stages/tests.status"
    local rc=0 files
    # Only the files that hold cuda tests are collected: the marker still selects, without importing the rest.
    mapfile -t files < <(grep -l "pytest.mark.cuda" "$REPO"/tests/test_*.py)
    run_step pytest $((LIMIT_TESTS - 25)) - "$PY" -m pytest -m cuda -v -rs -p no:cacheprovider --basetemp "$WORK/pytest" \
        --junitxml "$RESULTS/tests/junit.xml" "${files[@]}" || rc=1
    # The same parity table a user gets, for the docs (the tests above assert on it). The ONNX rows
    # run on the image's CPU onnxruntime; the rehearsal leaves them to the suite's own tests.
    local frames=10 candidates=torch-fp16,cuda-graphs,onnx-fp32,onnx-fp16
    [[ $MODE == rehearse ]] && frames=2 candidates=torch-fp16,cuda-graphs
    run_step parity 25 "$RESULTS/tests/parity.txt" vdeblur-export parity --frames $frames --candidates $candidates \
        || rc=1
    return $rc
}

stage_figures() {
    local out="$RESULTS/figures" rc=0 ckpt=() spec
    mkdir -p "$out"
    for spec in $BENCH_CHECKPOINTS; do ckpt+=(--checkpoint "$spec"); done
    if [[ $MODE == device ]]; then
        local res=360p,720p,1080p e2e=1920x1080 e2e_frames=240 stage_frames=12 ms="--streams 1,2,4,8 --width 640 --height 360 --frames 60 --repeats 2 --threads 4"
        local lat=(--frames 30 --repeats 3) dev=cuda stage_backend=torch-fp16 compiled=(720p 1080p 360p)
    else
        local res=64x64 e2e=64x64 e2e_frames=6 stage_frames=4 ms="--streams 1,2 --width 64 --height 64 --frames 4 --repeats 1 --threads 1"
        local lat=(--frames 3 --repeats 1) dev=cpu stage_backend=torch-fp32 compiled=()
        note "torch-compiled latency left out: inductor compiles on this CPU take minutes (tests/test_parity.py covers it)"
    fi
    run_step latency 30 - vdeblur-bench --parts latency --models "$BENCH_MODELS" "${ckpt[@]}" --resolutions $res \
        --backends torch-fp32,torch-fp16,torch-cudagraphs "${lat[@]}" --out "$out/latency" || rc=1
    run_step stages 25 - vdeblur-bench --parts stages --models "$BENCH_MODELS" "${ckpt[@]}" --resolutions $e2e \
        --backends $stage_backend --frames $stage_frames --out "$out/stages" || rc=1
    run_step e2e-clip 20 - "$PY" "$HELPER" clip "$WORK/e2e.mp4" $e2e $e2e_frames 12 || rc=1
    local fp16=(); [[ $dev == cuda ]] && fp16=(--fp16)
    run_step e2e 20 "$out/e2e-$e2e.txt" vdeblur "$WORK/e2e.mp4" "$WORK/e2e-out.mp4" --device $dev "${fp16[@]}" \
        --overwrite || rc=1
    run_step multistream 25 - "$PY" -m vdeblur.benchmarks.multistream --device $dev $ms --json "$out/multistream.json" \
        || rc=1
    local r
    for r in "${compiled[@]}"; do  # one run per size: a compile cut off by the limit loses only its own row
        (( SECONDS - STAGE_T0 < LIMIT_FIGURES - 40 )) || { note "compiled $r: no time left"; continue; }
        run_step "compiled-$r" $((LIMIT_FIGURES - 5 - (SECONDS - STAGE_T0))) - vdeblur-bench --parts latency \
            --models "$BENCH_MODELS" "${ckpt[@]}" --resolutions "$r" --backends torch-compiled "${lat[@]}" \
            --out "$out/compiled-$r" || rc=1
    done
    return $rc
}

stage_train() {
    mkdir -p "$RESULTS/eval"
    local config=$TRAIN_FALLBACK_CONFIG init=() sets dev=cuda
    if [[ -f $TRAIN_STATE_DIR/run.toml ]]; then config=$TRAIN_STATE_DIR/run.toml
    else note "no $TRAIN_STATE/run.toml: config $TRAIN_FALLBACK_CONFIG"; fi
    local help  # read whole: `| grep -q` would end the pipe early and, with pipefail, read as "not there"
    help=$(vdeblur-train --help 2>&1)
    if [[ -f $TRAIN_STATE_DIR/last.safetensors && $help == *--init-from* ]]; then
        init=(--init-from "$TRAIN_STATE_DIR")
    else
        note "not warm-started (needs $TRAIN_STATE/last.safetensors and vdeblur-train --init-from): trains from scratch"
    fi
    if [[ $MODE == device ]]; then sets=("${GPU_TRAIN_SETS[@]}"); else sets=("${REHEARSE_TRAIN_SETS[@]}"); dev=cpu; fi
    # As given (relative to the repo root, where the stage runs): run.toml then reads the same on the next machine.
    # data.kind=device: the blur is rendered on the training device itself (train/synth/device_render.py;
    # CPU synthesis on 16 cores would leave the GPU idle); the rehearsal renders the same way on the CPU.
    local extra=$EXTRA_SOURCES
    if [[ $extra == auto ]]; then if [[ $MODE == device ]]; then extra=', "deadleaves:96"'; else extra=''; fi; fi
    # The pool listed twice beside the dead leaves: two clips of photographs for one procedural one.
    if [[ -d $PHOTOS_DIR ]]; then sets+=(data.kind=device "data.sources=[\"$TRAIN_PHOTOS\", \"$TRAIN_PHOTOS\"$extra]")
    else note "no $TRAIN_PHOTOS/: trains on scikit-image's photos"; sets+=(data.kind=device "data.sources=[\"skimage\"$extra]"); fi
    # The device renderer draws no moving objects (train/synth/objects.py is CPU synthesis): the run warm-starts
    # from the default programme's weights without them.
    sets+=("data.objects=[0, 0]")
    if [[ -d $PHOTOS_DENSE_DIR ]]; then sets+=("data.val_sources=[\"$PHOTOS_DENSE\"]")
    else note "no $PHOTOS_DENSE/: validation draws from the training sources"; sets+=("data.val_sources=[]"); fi
    local set_args=() s
    for s in "${sets[@]}"; do set_args+=(--set "$s"); done
    local model
    model=$("$PY" "$HELPER" runtoml "$config" "$WORK/run.toml" "${set_args[@]}" | tail -1) || return 1
    # Training takes what is left of the run, less the evaluation and the last pack.
    local left=$((RUN_SECONDS - (SECONDS - RUN_T0) - TRAIN_RESERVE))
    (( left >= 30 )) || { note "only ${left}s left: no training"; return 1; }
    local minutes
    minutes=$(awk "BEGIN {printf \"%.2f\", ($left - 20) * $SLACK / 60}")  # 20 s for start-up and the final save
    # The rehearsal asks for its 4 steps and gets them, however busy this machine is: its time limit is
    # what is left of the whole (scaled) run, there only to catch a hang.
    local eval_dir=$EVAL_PATH dense_dir=$EVAL_DENSE_PATH renderer="" eval_args=(--clips 4 --clip-size 256x256)
    [[ $MODE == rehearse ]] && eval_args=(--clips 1 --clip-size 64x64)
    local renders=()  # "SOURCE OUT ARGS..." per held-out set missing here; rendered on one core while the others train
    local tiny=(--split test --sequences 1 --frames 3 --size 64x64 --prefix ev)
    if [[ ! -d $eval_dir && -d $PHOTOS_TEST_DIR ]]; then
        eval_dir=$WORK/eval
        if [[ $MODE == rehearse ]]; then renders+=("$PHOTOS_TEST_DIR $eval_dir ${tiny[*]} --seed 12")
        else renders+=("$PHOTOS_TEST_DIR $eval_dir ${EVAL_RENDER[*]}"); fi
    fi
    if [[ ! -d $dense_dir && -d $PHOTOS_DENSE_DIR ]]; then
        dense_dir=$WORK/eval_dense
        if [[ $MODE == rehearse ]]; then renders+=("$PHOTOS_DENSE_DIR $dense_dir ${tiny[*]} --seed 21 --h264-crf 12")
        else renders+=("$PHOTOS_DENSE_DIR $dense_dir ${DENSE_RENDER[*]}"); fi
    fi
    if (( ${#renders[@]} )); then
        note "rendering the held-out clips during training: ${renders[*]}"
        ( for r in "${renders[@]}"; do
              read -r -a args <<<"$r"
              "$PY" -m vdeblur.train.synth.render_dataset --source "${args[0]}" --out "${args[1]}" "${args[@]:2}" || exit 1
          done ) >"$WORK/render-eval.log" 2>&1 &
        renderer=$!
    fi
    ( while sleep 60; do "$PY" "$HELPER" pack "$WORK" "$OUT" >/dev/null 2>&1; done ) &  # a checkpoint into OUT every minute
    local copier=$! rc=0  # in the stage's process group: the stage's time limit ends it too
    run_step train "$left" - vdeblur-train --config "$WORK/run.toml" "${init[@]}" --out "$WORK/run" --device $dev \
        --time-limit "$minutes" || rc=1
    kill "$copier" 2>/dev/null; wait "$copier" 2>/dev/null
    if [[ -n $renderer ]] && ! wait "$renderer"; then
        note "rendering the held-out clips failed: $(tail -1 "$WORK/render-eval.log")"
    fi
    [[ -f $WORK/run/last.safetensors ]] || { note "no checkpoint written"; return 1; }
    if [[ -d $eval_dir/test ]]; then eval_args=(--gopro "$eval_dir")
    else note "no $EVAL_DIR/ and no $PHOTOS_TEST/: evaluated on synthetic clips of scikit-image's photos"; fi
    local before=()  # the weights training started from; the bundled default model when not warm-started
    (( ${#init[@]} )) && before=(--checkpoint "$model=${init[1]}/last.safetensors")
    # The trained weights first and alone (the figure that matters), on data/eval and on the dense set; then
    # the starting weights with the classical baselines and the blurred input (Richardson-Lucy and Wiener are
    # slow on large frames). Every held-out set is evaluated again on the CPU when the weights come back.
    run_step eval-trained $((LIMIT_EVAL * 3 / 10)) - vdeblur-bench --parts quality --no-baselines --models "$model" \
        --checkpoint "$model=$WORK/run/last.safetensors" "${eval_args[@]}" --out "$RESULTS/eval/trained" || rc=1
    if [[ -d $dense_dir/test ]]; then
        run_step eval-trained-dense $((LIMIT_EVAL * 3 / 10)) - vdeblur-bench --parts quality --no-baselines \
            --models "$model" --checkpoint "$model=$WORK/run/last.safetensors" --gopro "$dense_dir" \
            --out "$RESULTS/eval/trained-dense" || rc=1
    else note "no $EVAL_DENSE_DIR/ and no $PHOTOS_DENSE/: no dense evaluation"; fi
    run_step eval-before $((LIMIT_EVAL * 2 / 5)) - vdeblur-bench --parts quality --models "$model" \
        "${before[@]}" "${eval_args[@]}" --out "$RESULTS/eval/before" || rc=1
    return $rc
}

# ------------------------------------------------------------------------------------------- main

if [[ ${1:-} == __stage ]]; then  # one stage, in its own process so that `timeout` can end it
    STAGE=$2 STAGE_T0=$SECONDS
    cd "$REPO" && "stage_$STAGE"
    exit $?
fi

MODE=device
[[ ${1:-} == --rehearse ]] && { MODE=rehearse; shift; }
# Every limit times SLACK: the rehearsal checks the plumbing, not the timing, and may share a busy CPU; its
# limits only catch a hang (a stage that needs N steps or frames asks for them and gets them all).
if [[ $MODE == rehearse ]]; then SLACK=${SLACK:-20} RUN_SECONDS=$((RUN_SECONDS * SLACK)); else SLACK=${SLACK:-1}; fi
[[ $# == 1 && -n $1 ]] || usage
for s in ${STAGES//,/ }; do
    [[ $s =~ ^(setup|tests|figures|train)$ ]] || { echo "gpu_session: stage $s unknown; allowed: setup,tests,figures,train" >&2; exit 2; }
done
[[ ! -e $1 || -z $(ls -A "$1" 2>/dev/null) ]] || { echo "gpu_session: OUT_DIR $1 is not empty; give an empty or new folder" >&2; exit 2; }
OUT=$(mkdir -p "$1" && cd "$1" && pwd) || { echo "gpu_session: cannot create OUT_DIR $1" >&2; exit 2; }
made_work=""
if [[ -z ${GPU_RUN_WORK:-} ]]; then GPU_RUN_WORK=$(mktemp -d -t vdeblur-gpu-run.XXXXXX); made_work=1; fi
WORK=$GPU_RUN_WORK
[[ -n $made_work && $MODE == rehearse ]] && trap 'rm -rf "$WORK"' EXIT
SITE=$WORK/site RESULTS=$WORK/results RUN_T0=$SECONDS
mkdir -p "$WORK/stages" "$WORK/tmp" "$RESULTS"
# Everything the stages write goes under WORK: caches and temporary files included (the rehearsal
# test checks that nothing lands in the tree or the home folder).
# PYTHONSAFEPATH: `python -m` must not put the repo root first on sys.path, where vdeblur/ would
# shadow the linked package without its sub-packages.
export MODE SLACK RUN_SECONDS WORK OUT SITE RESULTS RUN_T0 PYTHON=$PY TMPDIR=$WORK/tmp PYTHONUNBUFFERED=1 PYTHONSAFEPATH=1 \
    PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH} PATH=$SITE/bin:$PATH PYTHONPYCACHEPREFIX=$WORK/pycache \
    MPLCONFIGDIR=$WORK/mpl NUMBA_CACHE_DIR=$WORK/numba TORCHINDUCTOR_CACHE_DIR=$WORK/inductor \
    TRITON_CACHE_DIR=$WORK/triton XDG_CACHE_HOME=$WORK/cache
"$PY" - "$WORK/run.json" "$MODE" "$*" "$STAGES" "$RUN_SECONDS" <<'EOF'
import datetime, json, subprocess, sys
path, mode, out, stages, seconds = sys.argv[1:]
try:  # the GPU machine's copy of the tree has no .git, and maybe no git
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
except OSError:
    commit = ""
json.dump({"mode": mode, "out": out, "stages": stages.split(","), "run_seconds": int(seconds),
           "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "commit": commit or None}, open(path, "w"), indent=2)
EOF
say() { log "$@" 2>&1 | tee -a "$WORK/run.log"; }
say "gpu_session ($MODE): out $OUT, work $WORK, stages $STAGES"
declare -A LIMIT=([setup]=$LIMIT_SETUP [tests]=$LIMIT_TESTS [figures]=$LIMIT_FIGURES [train]=$RUN_SECONDS)
status=0
for stage in setup tests figures train; do
    want "$stage" || continue
    limit=$((${LIMIT[$stage]} * SLACK))
    if [[ $stage == train ]]; then limit=$((RUN_SECONDS - (SECONDS - RUN_T0) - 10)); fi
    t0=$SECONDS
    say "=== stage $stage (limit ${limit}s) ==="
    timeout --kill-after=10 "$limit" bash "$SELF" __stage "$stage" 2>&1 | tee -a "$WORK/run.log"
    rc=${PIPESTATUS[0]}
    [[ $rc == 0 ]] || status=1
    "$PY" "$HELPER" record "$WORK" "$stage" "$rc" $((SECONDS - t0)) | tee -a "$WORK/run.log"
    "$PY" "$HELPER" pack "$WORK" "$OUT" 2>&1 | tee -a "$WORK/run.log"
    [[ ${PIPESTATUS[0]} == 0 ]] || status=1
done
say "gpu_session ($MODE): done in $((SECONDS - RUN_T0))s, exit $status; results in $OUT"
"$PY" "$HELPER" pack "$WORK" "$OUT" >/dev/null 2>&1 || status=1  # run.log with the last lines in it
exit $status

#!/usr/bin/env bash
# The model study of docs/model_study.md: candidates trained under one fixed budget of training CPU time
# (vdeblur-train --cpu-limit: CPU seconds of the training process, so runs side by side stay comparable),
# one torch thread each, on one rendered data folder, with held-out PSNR/SSIM logged every 500 steps.
#   bash scripts/model_study.sh CANDIDATE [MINUTES=25]      # runs/study/CANDIDATE/{log.csv,last.*}
# Data (see docs/model_study.md; rendered by `bash scripts/make_data.sh --study`): data/shake2/train (photos +
# dead leaves), data/shake2/test -> data/eval/test.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1
minutes=${2:-25}
root=data/shake2
late=()
INIT=${INIT:-train_state/default}
common=(--threads 1 --cpu-limit "$minutes" --out "runs/study/$name"
  --set data.kind=gopro --set data.val_size=0 --set data.val_sequences=12 --set data.val_frames=8
  --set train.steps=100000 --set train.batch=8 --set train.crop=128 --set train.window=2
  --set train.grad_clip=1.0 --set train.ema_decay=0.999 --set optim.schedule=cosine --set optim.warmup_steps=500
  --set train.val_every=500 --set train.ckpt_every=500 --set train.log_every=50)
new_recipe=(--set loss.content=charbonnier --set loss.fft_weight=0.1 --set optim.lr_g=1e-3 --set 'optim.betas=[0.9, 0.9]')
old_recipe=(--set loss.content=charbonnier --set loss.fft_weight=0.0 --set optim.lr_g=5e-4 --set 'optim.betas=[0.9, 0.99]')
# Fifth stage (the photograph pool): blur synthesised fresh for every item from ~200 real photographs and dead
# leaves (the vdeblur_deep preset, data/photos from scripts/fetch_photos.sh), warm-started from INIT at the default
# run's own learning rate. pool is the default run itself (train_state/default continues it); the two candidates
# change the model: pool_align adds the aligned feedback path (windows of 4 frames, so that it sees more than one
# previous frame; the same frames per batch), pool_grow the 14 residual blocks of ws_grow. Both grow onto INIT.
# The 7 residual blocks vdeblur_deep had until 2026-12-05 (the preset has 14 since): every candidate below
# that ran with them pins them, so that its command still trains what it trained then.
deep7='enc_blocks = [0, 1, 2, 2], dec_blocks = [0, 1, 1]'
pool_sets=(--config vdeblur_deep --set optim.lr_g=6.6e-4 --set train.steps=60000 --set train.amp=bf16
           --set train.channels_last=true --threads 1 --cpu-limit "$minutes" --out "runs/study/$name")
case "$name" in
  # Seventh stage: after the default run finished its schedule (step 60000, lr 0), one more cosine schedule of
  # ~2 CPU-hours (annealed by its end) from its weights, with (restart_grow: the 14 residual blocks of pool_grow,
  # 3.68 M parameters, 1.2x the CPU per step, so 17500 steps) and without (restart: the control, 20000 steps) more
  # capacity.
  # Eighth stage: the aligned feedback path (pool_align: fewer losing clips at the same mean) grown onto the
  # 14-block model (INIT = the bundled restart_grow weights), windows of 4 frames at batch 4, one annealed
  # schedule of ~95 CPU-minutes (77.2 GFLOPs per 720p frame); its control is the default run continued
  # (bash scripts/train_default.sh 125 --set train.steps=38000).
  # Ninth stage: what rendered text (train/synth/text.py: signs, pages, plates) adds. Both warm-start from
  # INIT (the bundled step-38000 weights) with the 14-block preset for one annealed schedule of 12000 steps
  # (~90 CPU-minutes at 0.45 CPU-s per step); text_with draws 1 clip in 7 from 96 text images (photos and
  # dead leaves keep their 2:1), text_control is the same run without it.
  # Tenth stage: the previous frame aligned by the global camera motion (aligned_prev: model.aligned_previous,
  # train/motion.py) grown onto INIT (the bundled step-38000 weights), windows of 4 frames at batch 4 (three of
  # four frames have a previous one; the same frames per batch), one annealed schedule of 4500 steps (~62 CPU-min) at the
  # ninth stage's learning rate; its control is text_control (the same weights continued, ~90 CPU-minutes).
  # aligned_equal: the same with a schedule of 7000 steps, as many CPU-minutes as text_control had (~89).
  # Eleventh stage: the tenth stage's weights (INIT = train_state/default, the bundled aligned model) trained on
  # with 0 to 2 independently moving objects per clip (data.objects = [0, 2]: the aligned frame is wrong on them, and
  # the model must learn to ignore what does not align), one more annealed schedule from lr 3.8e-4 (~110 CPU-minutes).
  # Twelfth stage: the eleventh stage's weights (INIT = train_state/default) trained on as there, with a tenth of
  # the frames given a wrong, missing or cut previous frame (train.alignment_faults, train/faults.py: failed
  # tracking, a bad homography, a scene cut), one more annealed schedule of 11500 steps (~2 CPU-hours; set from
  # 10000 at step 2500, lr 3.40e-4, so that it spans 2 CPU-hours at this CPU time per step).
  # Thirteenth stage: aligned_parallax, the twelfth stage's run with 0 or 1 near layers per clip as well
  # (data.parallax, train/synth/objects.py: regions moving 15-50 % further or less far than the background, as
  # parallax does; 135 CPU-minutes); aligned_faults, the same schedule without them, is its control.
  # Speed probe: where the aligned frame enters. s4only_seedN drops its full-resolution conv (previous_in,
  # model.aligned_first_conv = false: stride 4 only, which spares most of what the aligned input adds to the
  # network's CPU time) from the bundled weights (INIT = train_state/default) and trains 1200 steps of the
  # twelfth stage's recipe at a short schedule (lr 2e-4, warm-up 200); full_seedN, its control, continues
  # the same weights the same way with nothing dropped. Two seeds per arm.
  pool|pool_align|pool_grow|restart|restart_grow|restart_align|text_with|text_control|aligned_prev|aligned_equal|aligned_objects|aligned_faults|aligned_parallax|s4only_seed[0-9]|full_seed[0-9])
    case "$name" in
      pool|restart) pool_sets+=(--set "model.overrides={$deep7}") ;;
      pool_align) pool_sets+=(--set "model.overrides={feedback_align = true, $deep7}" --set train.window=4 --set train.batch=4) ;;
      pool_grow|restart_grow) pool_sets+=(--set 'model.overrides={enc_blocks = [0, 1, 4, 6], dec_blocks = [0, 2, 1]}') ;;
      restart_align) pool_sets+=(--set 'model.overrides={feedback_align = true}' --set train.window=4 --set train.batch=4) ;;
      aligned_prev|aligned_equal) pool_sets+=(--set 'model.overrides={aligned_previous = true}' --set train.window=4 --set train.batch=4) ;;
      aligned_objects) pool_sets+=(--set 'model.overrides={aligned_previous = true}' --set train.window=4 --set train.batch=4
                                   --set 'data.objects=[0, 2]' --set optim.lr_g=3.8e-4) ;;
      aligned_faults|aligned_parallax) pool_sets+=(--set 'model.overrides={aligned_previous = true}' --set train.window=4
                                  --set train.batch=4 --set 'data.objects=[0, 2]' --set optim.lr_g=3.8e-4
                                  --set train.alignment_faults=0.1) ;;
      s4only_seed*|full_seed*)
        first_conv=true; [[ $name == s4only_* ]] && first_conv=false
        pool_sets+=(--set "model.overrides={aligned_previous = true, aligned_first_conv = $first_conv}"
                    --set train.window=4 --set train.batch=4 --set 'data.objects=[0, 2]' --set train.alignment_faults=0.1
                    --set optim.lr_g=2e-4 --set optim.warmup_steps=200 --set train.steps=1200
                    --set train.seed="${name##*_seed}") ;;
      text_with) [ -d data/fonts ] || bash scripts/fetch_fonts.sh data/fonts
                 pool_sets+=(--set 'data.sources=["data/photos/train", "data/photos/train", "deadleaves:96", "data/photos/train", "data/photos/train", "deadleaves:96", "text:96:data/fonts"]') ;;
    esac
    case "$name" in
      restart) pool_sets+=(--set train.steps=20000) ;;
      restart_grow) pool_sets+=(--set train.steps=17500) ;;
      restart_align) pool_sets+=(--set train.steps=14000) ;;
      text_with|text_control) pool_sets+=(--set train.steps=12000) ;;
      aligned_prev) pool_sets+=(--set train.steps=4500) ;;
      aligned_equal) pool_sets+=(--set train.steps=7000) ;;
      aligned_objects) pool_sets+=(--set train.steps=8800) ;;
      aligned_faults) pool_sets+=(--set train.steps=11500) ;;
      aligned_parallax) pool_sets+=(--set train.steps=11500 --set 'data.parallax=[0, 1]') ;;
    esac
    [ -f "runs/study/$name/last.train.pt" ] && exec vdeblur-train "${pool_sets[@]}" --resume
    exec vdeblur-train "${pool_sets[@]}" --init-from "$INIT" ;;
esac
case "$name" in
  fast) args=(--config vdeblur_fast "${new_recipe[@]}") ;;                       # the current default, new recipe
  deep) args=(--config vdeblur_deep "${new_recipe[@]}" --set "model.overrides={$deep7}") ;;                       # the new architecture
  deep_nofeedback) args=(--config vdeblur_deep "${new_recipe[@]}" --set "model.overrides={feedback = 0, $deep7}") ;;
  deep_oldrecipe) args=(--config vdeblur_deep "${old_recipe[@]}" --set "model.overrides={$deep7}") ;;            # no FFT term, lr 5e-4, betas 0.99
  deep_photosonly) args=(--config vdeblur_deep "${new_recipe[@]}" --set "model.overrides={$deep7}"); root=data/shake2_photos ;;  # no dead leaves
  # Second stage (2026-12-02): warm starts from the default model's training state (INIT; the study used
  # train_state/default of commit fb4f912: vdeblur_deep at step 6500, 50 CPU-minutes), each changing one
  # thing against the default run itself, which resumed from the same state (runs/default, the control).
  # bf16 + channels_last as the default run (2.2x cheaper steps on this CPU, gradient cosine 0.999 to FP32).
  ws_flatskip) args=(--config "$INIT/run.toml" --set "model.overrides={$deep7}" --set data.min_detail=2.5); warm=1 ;;   # skip flat windows
  ws_lr2e3) args=(--config "$INIT/run.toml" --set "model.overrides={$deep7}" --set optim.lr_g=2e-3); warm=1 ;;          # twice the learning rate
  ws_betas099) args=(--config "$INIT/run.toml" --set "model.overrides={$deep7}" --set 'optim.betas=[0.9, 0.99]'); warm=1 ;;  # Adam's usual beta2
  # Third stage (2026-12-02, evening): depth added to the trained model instead of more minutes of it. Two
  # runs side by side from INIT (step 40000, 155 CPU-min), identical but for the model: both warm up to
  # lr 3e-4 and anneal it to zero over 12000 steps (the default run had a cosine over 100k and was at 6.6e-4).
  # ws_grow's net (3.68 M params, 74.5 GFLOPs@720p) has 14 more residual blocks, which start as the
  # identity (DeblurModel.load_grown), so it begins exactly where INIT is.
  ws_anneal) args=(--config "$INIT/run.toml" --set "model.overrides={$deep7}"); warm=1; late=(--set train.steps=12000 --set optim.lr_g=3e-4) ;;
  # Same schedule as ws_anneal, on shake2 plus 600 clips of 0.5-3 px blur (scripts/make_data.sh, its first lowblur line).
  ws_lowblur) args=(--config "$INIT/run.toml" --set "model.overrides={$deep7}"); warm=1; late=(--set train.steps=12000 --set optim.lr_g=3e-4)
              root=data/shake2_lowblur ;;
  # 30 % near-sharp clips (0.3-3 px; make_data.sh, its lowblur lines), at the default run's own learning rate
  # (6.6e-4, a cosine over 100k steps: flat at this length), since the restarts at 3e-4 lost. Its control is
  # the default run resumed (scripts/train_default.sh). ws_lowblur3 / ws_lowblur4: the same with 47 / 57 %
  # near-sharp clips (measured 2026-12-03: fewer losing clips, the same mean gain; ws_lowblur4 not run).
  ws_lowblur[234]) args=(--config "$INIT/run.toml" --set "model.overrides={$deep7}"); warm=1; late=(--set optim.lr_g=6.6e-4); root=data/shake2_${name#ws_} ;;
  ws_grow) args=(--config "$INIT/run.toml" --set 'model.overrides={enc_blocks = [0, 1, 4, 6], dec_blocks = [0, 2, 1]}')
           warm=1; late=(--set train.steps=12000 --set optim.lr_g=3e-4) ;;
  # Prepared, not run yet: the previous frame's stride-4 features warped by a learned flow (GridSample) before
  # a second injection at the stride-4 decoder level (feedback_align; grows onto INIT like ws_grow). Training
  # windows of 4 frames so the path sees more than one previous frame. Needs data rendered with >= 4 frames.
  ws_align) args=(--config "$INIT/run.toml" --set "model.overrides={feedback_align = true, $deep7}")
            warm=1; late=(--set train.steps=12000 --set optim.lr_g=3e-4 --set train.window=4 --set train.batch=4) ;;
  *) echo "unknown candidate '$name'; allowed: fast deep deep_nofeedback deep_oldrecipe deep_photosonly ws_flatskip ws_lr2e3 ws_betas099 ws_anneal ws_lowblur ws_lowblur2 ws_lowblur3 ws_lowblur4 ws_grow ws_align pool pool_align pool_grow restart restart_grow restart_align text_with text_control" >&2
     exit 2 ;;
esac
start=()
if [ -f "runs/study/$name/last.train.pt" ]; then
  start=(--resume)                   # continues its own state
elif [ "${warm:-0}" = 1 ]; then
  start=(--init-from "$INIT")
fi
# late: a candidate's settings that must override common's (later --set wins).
exec vdeblur-train "${args[@]}" "${common[@]}" "${late[@]}" --set "data.root=$root" "${start[@]}"

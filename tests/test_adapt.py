"""``--adapt``: the survey, the pairs, the fallback, the CLI and the output it writes."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_clip

from vdeblur.engine.adapt import AdaptConfig, adapt_model
from vdeblur.engine.adapt.adapter import default_budget
from vdeblur.engine.adapt.pairs import plan_pairs, render_pairs
from vdeblur.engine.adapt.survey import survey_frames
from vdeblur.engine.cli import cli
from vdeblur.train.checkpoint import load_checkpoint, read_info
from vdeblur.train.synth.clip import ShakeConfig, render_shake_clip

# Steps, not seconds: what the tests check must not depend on how busy the machine is.
QUICK = AdaptConfig(budget_s=3, crop=32, train_clips=4, check_clips=2, check_frames=2, sources=2, steps=3)


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def shaken(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Twelve frames of one photo, alternately near-sharp and blurred (blur known by construction)."""
    sharp_cfg = ShakeConfig(blur_px=(0.3, 0.3), noise=None, compression=None)
    blur_cfg = ShakeConfig(blur_px=(9.0, 9.0), noise=None, compression=None)
    frames, blur = [], []
    for t in range(12):
        near_sharp = t % 4 == 0
        clip, _ = render_shake_clip(photo, frames=1, height=96, width=128, seed=5, centred=True,
                                    config=sharp_cfg if near_sharp else blur_cfg)
        frames.append(clip[0])
        blur.append(0.3 if near_sharp else 9.0)
    return np.stack(frames), np.asarray(blur)


@pytest.fixture(scope="module")
def sample_clip(tmp_path_factory, photo: np.ndarray, shaken) -> Path:
    """The shaken frames as an H.264 file with audio: something --adapt can learn from."""
    path = tmp_path_factory.mktemp("adapt") / "shaken.mp4"
    frames, _ = shaken
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=24, options={"crf": "12"})
        v.width, v.height, v.pix_fmt = 128, 96, "yuv420p"
        for f in frames:
            c.mux(v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(v.encode(None))
    return path


def test_survey_keeps_the_sharp_frames_of_each_segment(shaken) -> None:
    frames, blur = shaken
    survey = survey_frames(iter(frames), len(frames), segments=3)
    assert survey.frames == 12 and len(survey.candidates) == 3
    assert all(blur[c.index] < 1 for c in survey.candidates)  # each stretch's near-sharp frame, not a blurred one
    assert np.corrcoef(survey.scores, -blur)[0, 1] > 0.9


def test_survey_keeps_each_sharp_frame_with_the_frames_around_it(shaken) -> None:
    frames, _ = shaken
    survey = survey_frames(iter(frames), len(frames), segments=3, neighbours=2)
    for c in survey.candidates:
        start = c.index - c.at
        assert c.at == min(2, c.index) and start >= 0
        assert len(c.window) == min(len(frames), c.index + 3) - start
        assert all(np.array_equal(w, frames[start + i]) for i, w in enumerate(c.window))
        assert c.window[c.at] is c.rgb
    alone = survey_frames(iter(frames), len(frames), segments=3, neighbours=0)
    assert all(len(c.window) == 1 and c.at == 0 for c in alone.candidates)


def _moment(photo: np.ndarray, blur_px: float) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """One moment of a shaken clip: the sharp view and two views shifted from it (the camera moved),
    and those three views blurred by ``blur_px``."""
    shifts = ((0, 0), (3, -2), (-4, 5))
    views = [np.roll(photo, s, axis=(0, 1))[:96, :128].copy() for s in shifts]
    config = ShakeConfig(blur_px=(blur_px, blur_px), noise=None, compression=None)
    blurred = [render_shake_clip(v, frames=1, height=96, width=128, seed=1, centred=True, config=config)[0][0]
               for v in views]
    return views[0], [views[1], views[0], views[2]], [blurred[1], blurred[0], blurred[2]]


def test_the_real_frame_check_rewards_what_brings_the_frames_of_a_moment_together(photo: np.ndarray) -> None:
    """Neighbours that are the sharp frame shifted read as close to it, whatever the shift; weights
    that leave them blurred read far, so deblurring reads as a gain and blurring as a loss."""
    from vdeblur.engine.adapt.realcheck import closeness, real_frames_gain
    from vdeblur.engine.adapt.survey import Candidate

    sharp, views, blurred = _moment(photo, 8.0)
    c = Candidate(0, 1.0, sharp, views, 1)
    restored, left = np.stack(views), np.stack([blurred[0], sharp, blurred[2]])
    assert closeness([restored], [sharp], [c]).min() > 30  # the shift is undone before comparing
    gain = real_frames_gain([left], [restored], [c])
    assert gain > 3 and real_frames_gain([restored], [left], [c]) == pytest.approx(-gain)
    assert real_frames_gain([restored], [restored], [c]) == 0
    assert np.isnan(real_frames_gain([], [], []))


def test_the_real_frame_check_is_not_fooled_by_a_sharpest_frame_that_is_blurred_itself(photo: np.ndarray) -> None:
    """A clip blurred throughout: its sharpest frame carries the blur its neighbours do. Weights that
    restore the moment must read as a gain over weights that leave it as decoded, although their
    output moves away from that frame as decoded (which, taken as the reference, read this as a loss
    and refused real wins)."""
    from vdeblur.engine.adapt.realcheck import real_frames_gain
    from vdeblur.engine.adapt.survey import Candidate

    _, views, decoded = _moment(photo, 3.0)
    c = Candidate(0, 1.0, decoded[1], decoded, 1)
    as_decoded, restored = np.stack(decoded), np.stack(views)
    assert real_frames_gain([as_decoded], [restored], [c]) > 1
    assert real_frames_gain([as_decoded], [restored], [c], reference="decoded") < 0  # what it used to read
    with pytest.raises(ValueError, match="unknown reference 'sharp'; allowed: adapted, decoded, base, each"):
        real_frames_gain([as_decoded], [restored], [c], reference="sharp")


def test_pairs_are_as_blurred_as_the_clip_and_cut_from_the_sharp_frames(shaken) -> None:
    frames, blur = shaken
    survey = survey_frames(iter(frames), len(frames), segments=3)
    plan = plan_pairs(survey, [c.rgb for c in survey.candidates])
    lo, hi = plan.blur_px
    assert lo < 3 and 5 < hi < 14, plan.blur_px  # near-sharp and ~9 px frames: the range spans both
    blurred, sharp = render_pairs(plan, count=3, frames=2, size=32, seed=0)
    assert blurred.shape == sharp.shape == (3, 2, 32, 32, 3) and blurred.dtype == np.uint8
    assert np.abs(blurred.astype(int) - sharp).mean() > 1  # the blurred side is blurred


def test_adaptation_that_does_not_help_keeps_the_base_weights(fast_checkpoint, shaken, one_thread) -> None:
    frames, _ = shaken
    base, _ = load_checkpoint(fast_checkpoint)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    # A margin no adaptation can reach: the check must refuse the adapted copy.
    result = adapt_model(list(frames), base, AdaptConfig(**{**QUICK.__dict__, "keep_margin_db": 100.0}))
    assert not result.adapted and result.model is base and result.steps > 0
    assert result.tuned is not None and result.tuned is not base  # the refused copy, for scoring other checks
    assert "not kept" in result.summary()
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())  # the base is never trained


def test_adaptation_that_helps_is_kept(fast_checkpoint, shaken, one_thread) -> None:
    frames, _ = shaken
    base, _ = load_checkpoint(fast_checkpoint)
    result = adapt_model(list(frames), base, AdaptConfig(**{**QUICK.__dict__, "keep_margin_db": -100.0, "real_check": False}))
    assert result.adapted and result.model is not base and np.isnan(result.real_gain)
    changed = any(not torch.equal(a, b) for a, b in zip(base.state_dict().values(), result.model.state_dict().values()))
    assert changed and result.steps == QUICK.steps  # the steps asked for, however long they took


def test_fine_tuning_stops_at_its_deadline_unless_steps_are_asked_for(fast_checkpoint) -> None:
    from vdeblur.engine.adapt.finetune import finetune

    base, _ = load_checkpoint(fast_checkpoint)
    x = np.zeros((2, 2, 32, 32, 3), np.uint8)  # (N, T, S, S, 3) pairs
    assert finetune(base, x, x, deadline=0.0).steps == 0  # a deadline already past: no step
    assert finetune(base, x, x, deadline=0.0, steps=2).steps == 2  # steps win over the clock


def test_replay_blurs_a_share_of_the_training_pairs_over_the_trained_range(fast_checkpoint, shaken, one_thread,
                                                                           monkeypatch) -> None:
    import vdeblur.engine.adapt.adapter as adapter
    from vdeblur.engine.adapt.finetune import TuneRun

    calls, trained = [], []
    render = adapter.render_pairs

    def spy(plan, *, count, frames, size, seed):
        calls.append((plan.blur_px, count))
        return render(plan, count=count, frames=frames, size=size, seed=seed)

    def fake_finetune(base, blurred, sharp, **kwargs):
        trained.append(len(blurred))
        return TuneRun(base, 0, float("nan"))

    monkeypatch.setattr(adapter, "render_pairs", spy)
    monkeypatch.setattr(adapter, "finetune", fake_finetune)
    frames, _ = shaken
    base, _ = load_checkpoint(fast_checkpoint)
    adapt_model(list(frames), base, AdaptConfig(**{**QUICK.__dict__, "replay": 0.5}))
    (clip_range, n_clip), (wide_range, n_wide), _check = calls
    assert n_clip == QUICK.train_clips and n_wide == QUICK.train_clips // 2 and trained == [QUICK.train_clips]
    assert wide_range[0] == clip_range[0] and wide_range[1] >= 20 > clip_range[1]
    with pytest.raises(ValueError, match="replay must be a share in"):
        AdaptConfig(replay=1.5)


@pytest.mark.parametrize("real_gain", [-0.5, 0.5])
def test_the_clips_own_frames_can_refuse_what_the_synthetic_pairs_accept(fast_checkpoint, shaken, one_thread,
                                                                         monkeypatch, real_gain: float) -> None:
    """The real-frame check runs on the survey's windows and has the last word: a loss there falls back
    however well the synthetic pairs read."""
    import vdeblur.engine.adapt.adapter as adapter

    seen = []

    def fake_gain(base_outputs, adapted_outputs, candidates):
        seen.append([len(c.window) for c in candidates])
        assert all(len(b) == len(a) == len(c.window) for b, a, c in zip(base_outputs, adapted_outputs, candidates))
        return real_gain

    monkeypatch.setattr(adapter, "real_frames_gain", fake_gain)
    frames, _ = shaken
    base, _ = load_checkpoint(fast_checkpoint)
    result = adapt_model(list(frames), base, AdaptConfig(**{**QUICK.__dict__, "keep_margin_db": -100.0}))
    assert seen and all(n > 1 for n in seen[0]) and len(seen[0]) == QUICK.sources
    assert result.real_gain == real_gain and result.adapted == (real_gain >= 0)
    assert (result.model is base) == (real_gain < 0)
    assert f"{real_gain:+.2f} dB on the clip's own frames" in result.summary()


def test_a_clip_blurred_throughout_is_not_adapted(photo: np.ndarray, shaken, one_thread) -> None:
    """No nearly sharp frame: the restored 'sharpest' frames are no target, so no step is spent; the
    same threshold lets a clip with near-sharp frames through. The bundled model restores the targets
    (the estimate is read against them), so the threshold sits between the two clips' readings."""
    from vdeblur.engine.backends import resolve_model

    config = ShakeConfig(blur_px=(14.0, 14.0), noise=None, compression=None)
    blurred = [render_shake_clip(photo, frames=1, height=96, width=128, seed=s, centred=True, config=config)[0][0]
               for s in range(6)]
    base, _ = load_checkpoint(resolve_model("vdeblur_deep"))
    strict = AdaptConfig(**{**QUICK.__dict__, "max_sharpest_blur_px": 2.0})
    result = adapt_model(blurred, base, strict)
    assert result.skipped and not result.adapted and result.model is base and result.steps == 0
    assert result.tuned is None
    assert result.plan.blur_px[0] > strict.max_sharpest_blur_px
    assert result.summary().startswith("not adapted: ") and "base weights" in result.summary()
    frames, _ = shaken
    sharp_too = adapt_model(list(frames), base, strict)
    assert not sharp_too.skipped and sharp_too.steps > 0


def test_default_budget_grows_with_the_video_and_shrinks_on_a_gpu() -> None:
    ten_s_small = default_budget(300, 240, 320)
    minute_720p = default_budget(1800, 720, 1280)
    assert 60 <= ten_s_small < 65 and minute_720p == pytest.approx(240)
    assert default_budget(1800, 720, 1280, "cuda") == pytest.approx(24)


def test_cli_adapts_saves_the_weights_and_writes_a_faithful_file(tmp_path: Path, sample_clip: Path,
                                                                 fast_checkpoint, one_thread) -> None:
    out, weights = tmp_path / "out.mp4", tmp_path / "adapted.safetensors"
    code, text = _run(str(sample_clip), str(out), "--model", str(fast_checkpoint), "--adapt", "2",
                      "--save-adapted", str(weights), "--threads", "1")
    assert code == 0, text
    assert "adapted for" in text and "held-back pairs" in text
    with av.open(str(sample_clip)) as a, av.open(str(out)) as b:
        src = [(f.pts, f.time) for f in a.decode(video=0)]
        dst = [(f.pts, f.time) for f in b.decode(video=0)]
    assert [t for _, t in dst] == pytest.approx([t for _, t in src])  # every frame, at its time
    info = read_info(weights)
    assert info.model == "vdeblur_fast" and "adapt" in info.extra and info.extra["adapt"]["clip"] == str(sample_clip)
    again = tmp_path / "again.mp4"  # the saved checkpoint runs with --model like any other
    code, text = _run(str(sample_clip), str(again), "--model", str(weights), "--quiet")
    assert code == 0 and again.is_file(), text
    code, text = _run(str(sample_clip), str(tmp_path / "third.mp4"), "--model", str(fast_checkpoint), "--adapt", "2",
                      "--save-adapted", str(weights), "--quiet")  # refuses to overwrite the saved weights
    assert code == 1 and "already exists" in text and not (tmp_path / "third.mp4").exists()


@pytest.mark.parametrize("args, expected", [
    (["--adapt", "soon"], "'soon' is not a budget in seconds"),
    (["--adapt", "0"], "is not a budget in seconds"),
    (["--save-adapted", "w.safetensors"], "add --adapt"),
    (["--adapt", "--save-adapted", "w.pt"], "must end in .safetensors"),
    (["--adapt", "--backend", "onnxruntime"], "fine-tunes PyTorch weights"),
])
def test_cli_refuses_what_adaptation_cannot_do_in_one_line(tmp_path: Path, sample_clip: Path, fast_checkpoint,
                                                           args: list[str], expected: str) -> None:
    out = tmp_path / "out.mp4"
    pytest.importorskip("onnxruntime") if "onnxruntime" in args else None
    code, text = _run(str(sample_clip), str(out), "--model", str(fast_checkpoint), *args)
    assert code in (1, 2) and expected in text, text
    assert not out.exists() and not list(tmp_path.glob("*.safetensors"))


def test_live_sources_refuse_adapt(tmp_path: Path, fast_checkpoint) -> None:
    code, text = _run("udp://127.0.0.1:5000", str(tmp_path / "out.mp4"), "--model", str(fast_checkpoint), "--adapt")
    assert code == 1 and "live source has no whole clip" in text, text
    assert len(text.strip().splitlines()) == 1


def test_several_files_adapt_each_but_save_only_one(tmp_path: Path, sample_clip: Path, fast_checkpoint) -> None:
    other = tmp_path / "other.mp4"
    make_clip(other, frames=4, width=64, height=48)
    code, text = _run(str(sample_clip), str(other), str(tmp_path / "outs"), "--model", str(fast_checkpoint),
                      "--adapt", "--save-adapted", str(tmp_path / "w.safetensors"))
    assert code == 1 and "one input" in text and not (tmp_path / "outs").exists()
    code, text = _run(str(sample_clip), str(other), str(tmp_path / "outs2"), "--model", str(fast_checkpoint),
                      "--adapt", "--streams", "2")
    assert code == 1 and "--streams" in text


@pytest.fixture(scope="module")
def graded(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ten frames of one photo shaken by known lengths from 0.3 to 14 px, in shuffled order, noisy and H.264-coded."""
    from vdeblur.train.synth.degrade import NoiseConfig, h264_roundtrip

    blur = np.array([4.0, 0.3, 14.0, 2.0, 8.0, 1.0, 11.0, 3.0, 6.0, 0.6])
    noise = NoiseConfig(probability=1.0, shot=(3e-4, 3e-4), read=(1e-3, 1e-3))
    frames = [render_shake_clip(photo, frames=1, height=120, width=160, seed=t, centred=True,
                                config=ShakeConfig(blur_px=(px, px), noise=noise, compression=None))[0][0]
              for t, px in enumerate(blur)]
    return h264_roundtrip(np.stack(frames), 23), blur


def test_the_chosen_sharpness_ranks_frames_by_their_true_blur(graded) -> None:
    from scipy.stats import spearmanr

    from vdeblur.engine.adapt.sharpness import gray_thumbnail, sharpness

    frames, blur = graded
    scores = [sharpness(gray_thumbnail(f)) for f in frames]
    assert spearmanr(scores, -blur).statistic > 0.9
    assert blur[int(np.argmax(scores))] <= 1.0


def test_blur_lengths_are_read_off_the_clips_own_sharpest_frame(graded) -> None:
    from scipy.stats import spearmanr

    from vdeblur.engine.adapt.sharpness import estimate_blur_px, gray_thumbnail, noise_sigma, sharpness

    frames, blur = graded
    scores = np.array([sharpness(gray_thumbnail(f)) for f in frames])
    best = int(np.argmax(scores))
    estimate = estimate_blur_px(frames[best], scores, min(noise_sigma(gray_thumbnail(f)) for f in frames))
    truth = blur - blur[best]
    assert spearmanr(estimate, truth).statistic > 0.9
    assert np.median(np.abs(estimate - truth)) < 2.0, np.round(estimate, 1)


def test_noise_sigma_measures_added_noise_and_ignores_texture(photo: np.ndarray) -> None:
    from vdeblur.engine.adapt.sharpness import gray_thumbnail, noise_sigma

    clean = gray_thumbnail(photo, max_side=512)
    rng = np.random.default_rng(0)
    for sigma in (2 / 255, 5 / 255):
        noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * sigma
        assert noise_sigma(noisy) == pytest.approx(sigma, rel=0.3)
    assert noise_sigma(clean) < 2 / 255  # a detailed photo's texture alone does not read as noise


def test_a_real_shutter_scales_the_blur_by_the_exposure() -> None:
    from vdeblur.train.synth.clip import draw_shot, shake_config

    assert shake_config() == ShakeConfig()  # the default exposure-normalised blur is unchanged
    short = shake_config(blur_px=(8.0, 8.0), shutter=(0.25, 0.25))
    whole = shake_config(blur_px=(8.0, 8.0), shutter=(1.0, 1.0))
    _, blur_short, duty, _ = draw_shot(np.random.default_rng(0), short, (200, 200), height=64, width=64)
    _, blur_whole, _, _ = draw_shot(np.random.default_rng(0), whole, (200, 200), height=64, width=64)
    assert duty == 0.25 and blur_short == pytest.approx(2.0) and blur_whole == pytest.approx(8.0)


def test_the_benchmark_scores_every_copy_it_trained_and_can_keep_it(tmp_path: Path, photo: np.ndarray,
                                                                   fast_checkpoint, one_thread) -> None:
    """Each clip's fine-tuned copy is scored against the truth whether the checks kept it or not (what
    a perfect check would have chosen from) and, with --keep-weights, written as a loadable checkpoint."""
    import json

    from conftest import write_tiny_gopro

    from vdeblur.benchmarks.adapt import main
    from vdeblur.benchmarks.quality import gopro_clips
    from vdeblur.engine.adapt.finetune import run_clip
    from vdeblur.train.frames import from_uint8
    from vdeblur.train.metrics import psnr_ssim_uint8

    data = write_tiny_gopro(tmp_path / "gopro", photo)
    main(["--model", str(fast_checkpoint), "--eval", str(data), "--budget", "2", "--out", str(tmp_path / "out"),
          "--keep-weights", str(tmp_path / "copies"), "--train-clips", "8"])
    report = json.loads((tmp_path / "out" / "adapt.json").read_text())
    assert report["config"]["train_clips"] == 8  # the search's knobs reach the adapter and are recorded
    (row,) = report["per_clip"][f"{data}@2"]
    assert not row["skipped"] and np.isfinite(row["tuned_psnr"])
    assert row["adapted_psnr"] == (row["tuned_psnr"] if row["kept"] else row["base_psnr"])
    (saved,) = (tmp_path / "copies").iterdir()
    assert saved.name == "gopro-seq0-2.safetensors"
    copy, _ = load_checkpoint(saved)
    (clip,) = gopro_clips(data, 1000)
    scored = psnr_ssim_uint8(from_uint8(run_clip(copy, clip.blurred)), from_uint8(clip.sharp))[0]
    assert scored == pytest.approx(row["tuned_psnr"], abs=1e-6)  # the copy written is the copy scored

    # The copies read back and scored by every check, without adapting again.
    from vdeblur.benchmarks.adapt_checks import main as score_checks
    from vdeblur.engine.adapt.realcheck import REFERENCES

    score_checks(["--run", str(tmp_path / "out"), "--copies", str(tmp_path / "copies"), "--out", str(tmp_path / "checks")])
    (reading,) = json.loads((tmp_path / "checks" / "adapt_checks.json").read_text())
    assert reading["gain"] == pytest.approx(row["tuned_psnr"] - row["base_psnr"])
    assert reading["synthetic"] == row["check_gain"] and set(reading["real"]) == set(REFERENCES)
    assert reading["real"]["adapted"] == pytest.approx(row["real_gain"], abs=1e-9)  # as the adapter measured it
    table = (tmp_path / "checks" / "adapt_checks.md").read_text()
    assert f"| every copy | {reading['gain']:+.2f}, worst {min(reading['gain'], 0):+.2f}" in table
    assert "| a perfect check | " in table and all(f"| synthetic + {r} |" in table for r in REFERENCES)


def test_a_model_that_takes_its_previous_frame_aligned_adapts_too(shaken, one_thread) -> None:
    """The fine-tuning unrolls windows with the state carried, so the motion channels are built there too."""
    from vdeblur.train.registry import build_model

    frames, _ = shaken
    base = build_model("vdeblur_deep", {"channels": (8, 8, 16, 16), "enc_blocks": (0, 1, 1, 1), "dec_blocks": (0, 1, 1),
                                        "lstm_hidden": 8, "feedback": 4, "aligned_previous": True}).eval()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    result = adapt_model(list(frames), base, QUICK)
    assert result.steps == QUICK.steps and result.tuned is not None and result.tuned is not base
    assert result.tuned.input_kind == "rgb+motion"
    assert any(not torch.equal(before[k], v) for k, v in result.tuned.state_dict().items())  # it was trained
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())  # the base never is

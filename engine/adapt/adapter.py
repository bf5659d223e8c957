"""``adapt_model``: from a clip and a model to the weights that deblur that clip best, within a budget.

    survey (pass 1) -> plan pairs -> render train + held-back pairs -> fine-tune a copy -> two checks

The checks are what make adaptation safe to leave on: the adapted copy is kept only when it beats
the base model by ``keep_margin_db`` on synthetic pairs it never trained on, and brings the clip's
real blurred frames around its sharpest ones together at least as well as the base weights do
(``realcheck``); otherwise the base weights deblur the clip, exactly as without ``--adapt``. A clip with no nearly sharp frame is not adapted at all: its "sharpest" frames,
restored by the base model, are no better a target than the base model's output.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from vdeblur.console import reach
from vdeblur.train.archs.base import DeblurModel, padded_size

from .finetune import TuneSettings, finetune, pairs_psnr, restore
from .pairs import PairPlan, plan_pairs, render_pairs
from .realcheck import checkable, real_frames_gain, window_outputs
from .survey import ClipSurvey, survey_frames, survey_video

_REFERENCE_PIXELS = 1280 * 720
_REPLAY_TOP_PX = 20.0  # the top of the blur the bundled models were trained on


@dataclass(frozen=True)
class AdaptConfig:
    # Seconds of adaptation (pair synthesis, fine-tuning and the check); None: default_budget().
    budget_s: float | None = None
    crop: int = 128  # side of a training window, px (smaller frames use their own size)
    window: int = 2  # frames unrolled per training clip, as the bundled models were trained
    train_clips: int = 64
    check_clips: int = 8
    check_frames: int = 4  # held-back clips run longer than training windows: the state is checked too
    sources: int = 4  # sharpest frames the pairs are cut from
    keep_margin_db: float = 0.05  # the adapted copy must beat the base by this on held-back pairs
    # ... and must not lose on the clip's own frames: the neighbours of its sharpest frames, deblurred,
    # measured against those frames as the copy restores them (realcheck.py). Synthetic pairs alone
    # kept copies that lost up to 0.9 dB.
    real_check: bool = True
    neighbours: int = 2  # frames either side of each sharpest frame the real check runs on
    # What the pairs' sharp side is: "restored", the base model's output for the sharpest frames, or
    # "frames", those frames as decoded (only right when some frames are truly sharp).
    targets: str = "restored"
    # The training pairs' blur range; None: as much as the clip's frames show (10th-90th percentile of
    # the estimate). Reaching up to the top of the trained range (20 px) instead was measured too: it cut the
    # losses on clips blurred throughout (data/eval) but cost the clips with nearly sharp frames, the
    # ones adaptation is for, up to 2.2 dB (docs/adapt.md).
    blur_px: tuple[float, float] | None = None
    # Adapt only when the clip's least blurred frames (10th percentile of the estimate) are below this:
    # past it there is no nearly sharp moment to learn from, and adapting lost on every such clip measured.
    max_sharpest_blur_px: float = 6.0
    # The pairs' noise and compression: the "training" mix (the base model keeps its denoising), or
    # Gaussian noise of the level "measured" on the clip (it cost up to 1.1 dB on noisy clips: the
    # synthesis's noise is signal-dependent in linear light, a level measured in sRGB is not).
    degrade: str = "training"
    # Share of the training pairs blurred up to the top of the trained range instead of as much as the
    # clip's frames are, so the copy keeps what the base model learnt on longer blur. Measured at 0.25
    # and 0.5 on the clips blurred throughout that lose a little: no less lost (docs/adapt.md).
    replay: float = 0.0
    seed: int = 0
    tune: TuneSettings = TuneSettings()
    # Fine-tuning steps to take whatever they cost, instead of as many as the budget allows: a run
    # that must be the same on any machine, at any load (tests, comparisons of settings).
    steps: int | None = None

    def __post_init__(self) -> None:
        if self.budget_s is not None and self.budget_s <= 0:
            raise ValueError(f"the adaptation budget must be > 0 seconds; got {self.budget_s}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1; got {self.steps}")
        if min(self.crop, self.window, self.train_clips, self.check_clips, self.check_frames, self.sources) < 1:
            raise ValueError("crop, window, train_clips, check_clips, check_frames and sources must be >= 1")
        if not 0 <= self.replay <= 1:
            raise ValueError(f"replay must be a share in [0, 1]; got {self.replay}")
        if self.neighbours < 0:
            raise ValueError(f"neighbours must be >= 0; got {self.neighbours}")
        if self.targets not in ("restored", "frames"):
            raise ValueError(f"targets must be 'restored' or 'frames'; got {self.targets!r}")
        if self.degrade not in ("training", "measured"):
            raise ValueError(f"degrade must be 'training' or 'measured'; got {self.degrade!r}")
        if self.blur_px is not None and not 0 < self.blur_px[0] <= self.blur_px[1]:
            raise ValueError(f"blur_px must be a range with 0 < lo <= hi; got {self.blur_px}")


def default_budget(frames: int, height: int, width: int, device: torch.device | str = "cpu") -> float:
    """Seconds of adaptation when none is asked for: a fixed part (pairs, the check, enough steps to
    learn a clip's look) plus 3 CPU-minutes per minute of 30 fps 720p; a GPU runs ~50x the steps per
    second, so it gets a tenth of it."""
    minutes_720p = frames / (30 * 60) * (height * width) / _REFERENCE_PIXELS
    budget = 60.0 + 180.0 * minutes_720p
    return budget / 10 if torch.device(device).type == "cuda" else budget


@dataclass(frozen=True, eq=False)
class AdaptResult:
    model: DeblurModel  # the weights to deblur with: the adapted copy, or the base when it did not help
    adapted: bool
    check_gain: float  # adapted minus base PSNR on the held-back pairs, dB; nan when no fine-tuning was tried
    steps: int
    seconds: float
    plan: PairPlan
    skipped: str = ""  # why no fine-tuning was tried, when it was not
    # Adapted minus base on the clip's own frames (closeness of the deblurred neighbours to their
    # sharpest frame as the adapted copy restores it), dB; nan when not measured.
    real_gain: float = float("nan")
    # The fine-tuned copy, kept or not (None when none was trained): for scoring other checks on it.
    tuned: DeblurModel | None = None

    def summary(self) -> str:
        if self.skipped:
            return f"not adapted: {self.skipped}; deblurring with the base weights"
        verdict = "kept" if self.adapted else "not kept: deblurring with the base weights"
        real = "" if self.real_gain != self.real_gain else f", {self.real_gain:+.2f} dB on the clip's own frames"
        return (f"adapted for {self.seconds:.0f} s ({self.steps} steps, {self.plan.describe()}): "
                f"{self.check_gain:+.2f} dB on held-back pairs{real}; {verdict}")


def adapt_model(clip: str | Path | Iterable[np.ndarray], base: DeblurModel, config: AdaptConfig = AdaptConfig(), *,
                total: int | None = None, progress: Callable[[float, float], None] | None = None) -> AdaptResult:
    """Adapt ``base`` to a clip: a video file (``total``: its frame count, else counted by decoding)
    or its frames ((H, W, 3) uint8 each, ``total`` needed for an iterator). ``progress(spent_s,
    budget_s)`` is called as the budget is spent."""
    started = time.monotonic()
    survey = _survey(clip, total, config.neighbours)
    reach("adapt")
    budget = config.budget_s or default_budget(survey.frames, survey.height, survey.width,
                                               next(base.parameters()).device)
    picked = survey.candidates[:config.sources]
    targets = [restore(base, c.rgb) if config.targets == "restored" else c.rgb for c in picked]
    plan = plan_pairs(survey, targets, blur_px=config.blur_px, degrade=config.degrade)
    lo = plan.blur_px[0]
    if config.blur_px is None and lo > config.max_sharpest_blur_px:
        if progress is not None:
            progress(budget, budget)
        return AdaptResult(base, False, float("nan"), 0, time.monotonic() - started, plan,
                           skipped=f"even the clip's sharpest frames look blurred by ~{lo:.0f} px (over "
                                   f"{config.max_sharpest_blur_px:g}): nothing sharp to learn from")
    size = _crop_size(config.crop, survey, base.pad_multiple)
    # With two or more frames to learn from, the check's pairs come from one that no training pair
    # is cut from: scored on content it trained on, the adapted copy would look better than it is.
    train_sources, check_sources = plan.sources, plan.sources
    if len(plan.sources) > 1:
        train_sources, check_sources = plan.sources[:-1], plan.sources[-1:]
    train_x, train_y = render_pairs(replace(plan, sources=train_sources), count=config.train_clips,
                                    frames=config.window, size=size, seed=config.seed)
    if config.replay > 0:  # some pairs blurred over the range the model was trained on, so it keeps that skill
        n = round(config.train_clips * config.replay)
        wide = replace(plan, sources=train_sources, blur_px=(plan.blur_px[0], max(plan.blur_px[1], _REPLAY_TOP_PX)))
        wide_x, wide_y = render_pairs(wide, count=n, frames=config.window, size=size, seed=config.seed + 2_000_003)
        train_x, train_y = np.concatenate([train_x[n:], wide_x]), np.concatenate([train_y[n:], wide_y])
    check_x, check_y = render_pairs(replace(plan, sources=check_sources), count=config.check_clips,
                                    frames=config.check_frames, size=size,
                                    seed=config.seed + 1_000_003)  # other windows and paths than any training clip
    check_start = time.monotonic()
    base_psnr = float(pairs_psnr(base, check_x, check_y).mean())
    real = checkable(picked) if config.real_check else []
    base_real = window_outputs(base, real)
    check_cost = time.monotonic() - check_start
    deadline = started + budget - check_cost  # the adapted copy's check must fit in the budget too

    def report(step: int, loss: float) -> None:
        if progress is not None:
            progress(min(time.monotonic() - started, budget), budget)

    run = finetune(base, train_x, train_y, deadline=deadline, settings=config.tune, seed=config.seed, progress=report,
                   steps=config.steps)
    gain = float(pairs_psnr(run.model, check_x, check_y).mean()) - base_psnr
    real_gain = real_frames_gain(base_real, window_outputs(run.model, real), real) if real else float("nan")
    keep = run.steps > 0 and passes_checks(gain, real_gain, config.keep_margin_db)
    if progress is not None:
        progress(budget, budget)
    return AdaptResult(run.model if keep else base, keep, gain, run.steps, time.monotonic() - started, plan,
                       real_gain=real_gain, tuned=run.model)


def passes_checks(check_gain: float, real_gain: float, margin_db: float) -> bool:
    """Whether a fine-tuned copy is kept: ``margin_db`` better than the base weights on the held-back
    pairs, and no worse on the clip's own frames (nan: there was nothing to compare on)."""
    return check_gain >= margin_db and not real_gain < 0


def _survey(clip: str | Path | Iterable[np.ndarray], total: int | None, neighbours: int) -> ClipSurvey:
    if isinstance(clip, (str, Path)):
        if total is None:
            from ..scan import scan_source

            total = scan_source(clip).frames
        return survey_video(clip, total, neighbours=neighbours)
    frames = clip if total is not None else list(clip)
    return survey_frames(frames, total if total is not None else len(frames), neighbours=neighbours)  # type: ignore[arg-type]


def _crop_size(crop: int, survey: ClipSurvey, multiple: int) -> int:
    """The training window's side: ``crop``, or the largest multiple of the model's that fits the frame."""
    fits = min(crop, survey.height, survey.width)
    size = fits // multiple * multiple
    return size if size >= multiple else padded_size(fits, multiple)


def check_adaptable(backend: object) -> None:
    """Adaptation trains PyTorch weights; an exported graph (ONNX Runtime, TensorRT) has none to train."""
    from ..backends.torch_backend import TorchBackend

    if not isinstance(backend, TorchBackend):
        raise ValueError(f"--adapt fine-tunes PyTorch weights, and the {getattr(backend, 'name', backend)} backend "
                         f"runs an exported model; give a .safetensors checkpoint or a model name with --backend "
                         f"torch (or auto)")


def adapt_backend(backend: object, src: str | Path, total: int, config: AdaptConfig,
                  progress: Callable[[float, float], None] | None = None) -> tuple[object, AdaptResult]:
    """A torch backend like ``backend`` (device, FP16, compile mode) running the weights adapted to ``src``."""
    from ..backends.torch_backend import TorchBackend

    check_adaptable(backend)
    assert isinstance(backend, TorchBackend)
    result = adapt_model(src, backend.model, config, total=total, progress=progress)
    if not result.adapted:
        return backend, result
    return TorchBackend(result.model, backend.device, fp16=backend.fp16, compile=backend.compile), result


def save_adapted(result: AdaptResult, path: str | Path, source: str | Path, base: str | Path | None = None) -> Path:
    """The weights ``result`` deblurred with as a self-describing checkpoint (loadable with ``--model``),
    saying in its metadata what they were adapted to and how."""
    from vdeblur.train.checkpoint import save_checkpoint

    report = {"clip": str(source), "adapted": result.adapted, "check_gain_db": result.check_gain,
              "steps": result.steps, "seconds": result.seconds, "pairs": result.plan.describe(),
              "skipped": result.skipped, "real_gain_db": None if result.real_gain != result.real_gain else result.real_gain}
    return save_checkpoint(path, result.model, metrics={} if result.skipped else {"adapt_check_gain": result.check_gain},
                           extra={"adapt": report, "base": str(base) if base is not None else ""})

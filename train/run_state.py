"""What a training run holds besides weights and optimizers: its data, RNG states and log.

Split from ``trainer.py`` so the trainer reads as the training step and its loop; everything here
is built from the config or written beside the checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from .archs.patchgan import PatchGAN, build_discriminator
from .config import Config, ConfigError
from .data import GoProDataset, SyntheticDataset
from .device_data import DeviceShakeBatches
from .distributed import DistInfo, gather
from .registry import get_spec
from .synth.clip import ShakeConfig, shake_config
from .synth.sources import Source, open_source

# The held-out synthetic clips use their own seed stream, far from the training seeds.
VAL_SEED_OFFSET = 1_000_000
# Keys that may change when a run is resumed: how long and how visibly it runs, and how the same
# objective is computed (precision, memory layout, rendering a photo's region instead of all of it), not what
# it learns.
RESUMABLE_CHANGES = {"train.steps", "train.val_every", "train.ckpt_every", "train.log_every", "data.workers",
                     "train.amp", "train.channels_last", "data.region_margin"}
# val_*: the held-out clips; fit_*: clips drawn like the training data (its sources or its folder, a fixed
# draw): a fit gain that pulls away from the held-out gain means the model is learning its data set, not the task.
LOG_COLUMNS = ("step", "it_per_s", "lr_g", "cpu_s", "g_loss", "content", "fft", "perceptual", "gan", "d_loss", "gp",
               "val_psnr", "val_ssim", "val_input_psnr", "val_input_ssim", "fit_psnr", "fit_input_psnr")


def build_critic(cfg: Config) -> PatchGAN:
    """The configured discriminator (default: the generator's registry pairing), with overrides applied."""
    critic = build_discriminator(cfg.model.discriminator or get_spec(cfg.model.name).discriminator)
    if not cfg.model.discriminator_overrides:
        return critic
    fields = {f.name for f in dataclasses.fields(critic.cfg)}
    unknown = sorted(set(cfg.model.discriminator_overrides) - fields)
    if unknown:
        raise ConfigError(f"model.discriminator_overrides has unknown field(s) {unknown}; allowed: {sorted(fields)}")
    return PatchGAN(dataclasses.replace(critic.cfg, **cfg.model.discriminator_overrides))


def data_shake(cfg: Config) -> ShakeConfig:
    """The degradation the data.* keys describe (blur range, noise, compression)."""
    d = cfg.data
    return shake_config(blur_px=d.blur_px, noise=d.noise, compression=d.compression,
                        compression_probability=d.compression_probability, h264_crf=d.h264_crf,
                        objects=d.objects if d.objects[1] else None, parallax=d.parallax if d.parallax[1] else None)


def open_sources(specs: tuple[str, ...]) -> list[Source]:
    """The sources, each distinct spec opened once: a spec listed twice is drawn twice as often and
    shares one decoded-image cache."""
    opened: dict[str, Source] = {}
    for spec in specs:
        if spec not in opened:
            opened[spec] = open_source(spec)
    return [opened[spec] for spec in specs]


def build_datasets(cfg: Config, window: int, device: torch.device = torch.device("cpu"),
                   rank: int = 0) -> tuple[Dataset | DeviceShakeBatches, Dataset, Dataset]:
    """(training set, held-out set, fit set). GoPro: the train/ and test/ splits. Synthetic: clips rendered
    on the fly, the held-out ones from a separate seed stream (and ``val_sources`` when given). Device:
    training batches rendered on ``device`` (rank ``rank``'s share), held-out clips as for synthetic. The
    fit set is a fixed draw of clips like the training ones (the generalisation check beside validation)."""
    d, t = cfg.data, cfg.train
    val_frames = d.val_frames or window
    if d.kind == "gopro":
        train = GoProDataset(d.root, split="train", window=window, crop=t.crop, blur_kind=d.blur_kind, seed=t.seed,
                             min_detail=d.min_detail)
        val = GoProDataset(d.root, split="test", window=val_frames, crop=d.val_size or None, flips=False,
                           blur_kind=d.blur_kind, seed=t.seed)
        fit = GoProDataset(d.root, split="train", window=window, crop=d.val_size or None, flips=False,
                           blur_kind=d.blur_kind, seed=t.seed)
        return train, _spread(val, d.val_sequences), _spread(fit, d.val_sequences)
    shake = data_shake(cfg)
    sources = open_sources(d.sources)
    val_sources = open_sources(d.val_sources) if d.val_sources else sources
    if d.kind == "device":
        train: Dataset | DeviceShakeBatches = DeviceShakeBatches(
            sources, device=device, batch=t.batch, frames=window, height=t.crop, width=t.crop, scale=d.scale,
            seed=t.seed, rank=rank, workers=d.workers, config=shake)
    else:
        train = SyntheticDataset(sources, length=d.length, frames=window, height=t.crop, width=t.crop,
                                 scale=d.scale, seed=t.seed, min_detail=d.min_detail, config=shake,
                                 region_margin=d.region_margin)
    held_out = dict(length=d.val_sequences, frames=val_frames, height=d.val_size, width=d.val_size, scale=d.scale,
                    config=shake)
    val = SyntheticDataset(val_sources, seed=t.seed + VAL_SEED_OFFSET, **held_out)
    fit = SyntheticDataset(sources, seed=t.seed + 2 * VAL_SEED_OFFSET, min_detail=d.min_detail, **held_out)
    return train, val, fit


def _spread(dataset: GoProDataset, count: int) -> Subset:
    """``count`` evenly spaced windows, so a check spans every sequence rather than the first one."""
    picks = np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int)
    return Subset(dataset, sorted(set(picks.tolist())))


def capture_rng(info: DistInfo) -> list[dict[str, Any]]:
    """Every rank's RNG states (torch, CUDA, numpy, python), in rank order."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
             "cuda": torch.cuda.get_rng_state_all() if info.device.type == "cuda" else None}
    return gather(state, info)


def restore_rng(states: list[dict[str, Any]], info: DistInfo) -> None:
    if len(states) != info.world_size:
        raise ConfigError(f"the checkpoint was written by {len(states)} process(es); resume it with the same number, "
                          f"not {info.world_size}, for an exact continuation")
    state = states[info.rank]
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state["cuda"] is not None and info.device.type == "cuda":
        torch.cuda.set_rng_state_all(state["cuda"])


def check_resumable(saved: dict[str, Any], cfg: Config, path: Path) -> None:
    """Refuse to resume with a config that changes what is learned, naming the keys that differ."""
    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out |= flat(v, f"{prefix}{k}.") if isinstance(v, dict) and prefix == "" else {prefix + k: v}
        return out

    old, new = flat(json.loads(json.dumps(saved))), flat(json.loads(json.dumps(cfg.to_dict())))
    # A key the saved config lacks was added to the code after that run started; new keys default to
    # the old behaviour, so the saved run had the default (else a committed state could never resume).
    old = flat(json.loads(json.dumps(Config().to_dict()))) | old
    diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
    if diff:
        raise ConfigError(f"cannot resume {path}: config differs in {diff} "
                          f"(saved {[old.get(k) for k in diff]}, now {[new.get(k) for k in diff]})")


class RunLog:
    """The progress line on stdout and ``log.csv`` beside the checkpoints (main process only)."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.path, self.enabled = out / "log.csv", enabled

    def write(self, step: int, total: int, rate: float, lr: float, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        text = " ".join(f"{k} {v:.4f}" for k, v in values.items())
        print(f"step {step}/{total} | {text} | {rate:.2f} it/s | lr {lr:.2e}", flush=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._upgrade_header()
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, LOG_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow({"step": step, "it_per_s": f"{rate:.3f}", "lr_g": f"{lr:.3e}",
                             **{k: f"{v:.6g}" for k, v in values.items() if k in LOG_COLUMNS}})

    def _upgrade_header(self) -> None:
        """A log written before the code gained columns is rewritten with today's header (old rows keep their
        values, new columns stay empty), so appended rows line up with their names."""
        if not self.path.exists():
            return
        with self.path.open(newline="") as f:
            header = next(csv.reader(f), [])
        if tuple(header) != LOG_COLUMNS:
            self.truncate(2**62)

    def truncate(self, step: int) -> None:
        """Drop rows logged after ``step``: a resumed run rewrites them."""
        if not self.enabled or not self.path.exists():
            return
        with self.path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

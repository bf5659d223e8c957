"""The trainer: one ``train_step`` for every architecture and objective of the paper.

A step unrolls the generator over a window of frames (T = 1 for image models) carrying the
recurrent state, updates the critic on the detached output (``loss.critic_steps`` times), then the
generator on content + perceptual + adversarial terms, then the EMA copy. Checkpoints hold the EMA
generator as a self-describing safetensors file (what ``vdeblur`` and export load) and everything
else needed for an exact resume in a sidecar ``.train.pt`` file.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from .checkpoint import jsonable, load_weights, save_checkpoint
from .config import Config, ConfigError
from .distributed import DistInfo, any_rank, epoch_loader, unwrap, wrap
from .device_data import DeviceShakeBatches
from .faults import with_alignment_faults
from .inputs import prepare_input
from .losses import FFTLoss, GANObjective, PerceptualLoss, content_loss, gradient_penalty
from .metrics import psnr_ssim_uint8
from .padding import run_padded
from .registry import build_model
from .run_state import RunLog, build_critic, build_datasets, capture_rng, check_resumable, restore_rng

Batch = dict[str, torch.Tensor]


def unroll(model: nn.Module, blurred: torch.Tensor, input_kind: str, alignment_faults: float = 0.0) -> torch.Tensor:
    """(B, T, 3, H, W) -> (B*T, 3, H, W): the window in order, state carried, gradients through all of it
    (truncated back-propagation through time: the state starts from zero at the window start).
    ``alignment_faults``: the share of frames given a wrong, missing or cut previous frame (``faults.py``)."""
    b, t, _, h, w = blurred.shape
    state = unwrap(model).initial_state(b, h, w, device=blurred.device)
    outs = []
    for i in range(t):
        frame, motions = blurred[:, i], None
        if alignment_faults:
            motions, state = with_alignment_faults(frame, state, alignment_faults)
        # The frame stays NCHW even with train.channels_last: NHWC weights make every conv output NHWC.
        out, state = model(prepare_input(frame, input_kind, state, motions), state)
        outs.append(out)
    return torch.stack(outs, dim=1).flatten(0, 1)


class EMA:
    """Exponential moving average of the generator weights, the copy we validate and ship.

    The decay ramps up as (1 + step) / (10 + step) so that short runs are not dominated by the
    random initial weights."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for e, p in zip(self.module.parameters(), model.parameters()):
            e.lerp_(p, 1 - d)
        for e, b in zip(self.module.buffers(), model.buffers()):
            e.copy_(b)


def lr_factor(step: int, cfg: Config) -> float:
    o, total = cfg.optim, cfg.train.steps
    if step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    progress = min(1.0, (step - o.warmup_steps) / max(1, total - o.warmup_steps))
    if o.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if o.schedule == "linear" and progress > o.decay_start:
        return max(0.0, 1 - (progress - o.decay_start) / (1 - o.decay_start))
    return 1.0


class Trainer:
    def __init__(self, cfg: Config, out: str | Path, info: DistInfo, *, resume: bool = False,
                 init_from: str | Path | None = None) -> None:
        self.cfg, self.out, self.info, self.device = cfg, Path(out), info, info.device
        torch.manual_seed(cfg.train.seed + info.rank)
        self.g = build_model(cfg.model.name, cfg.model.overrides).to(self.device)
        if cfg.train.channels_last:  # before the EMA copy and the optimiser, so both share the layout
            self.g = self.g.to(memory_format=torch.channels_last)
        self.window = cfg.train.window if self.g.is_recurrent else 1
        if cfg.train.alignment_faults and self.g.input_kind != "rgb+motion":
            raise ConfigError(f"train.alignment_faults needs a model that takes its previous frame aligned (input "
                              f"kind rgb+motion, e.g. vdeblur_deep with aligned_previous); {cfg.model.name} takes "
                              f"{self.g.input_kind}")
        if cfg.train.crop % self.g.pad_multiple:
            raise ConfigError(f"train.crop = {cfg.train.crop} is not a multiple of {self.g.pad_multiple}, "
                              f"which {cfg.model.name} needs")
        self.g_train = wrap(self.g, info)
        self.ema = EMA(self.g, cfg.train.ema_decay)  # after wrap: DDP has broadcast rank 0's initial weights
        self.opt_g = self._adam(self.g, cfg.optim.lr_g)
        self.critic: nn.Module | None = None
        if cfg.loss.gan != "none":
            self.critic = build_critic(cfg).to(self.device)
            self.critic_train = wrap(self.critic, info)
            self.opt_d = self._adam(self.critic, cfg.optim.lr_d)
            self.gan = GANObjective(cfg.loss.gan)
        self.content = content_loss(cfg.loss.content)
        self.fft = FFTLoss() if cfg.loss.fft_weight > 0 else None
        self.perceptual = self._perceptual()
        if cfg.train.amp == "fp16" and self.device.type != "cuda":
            raise ConfigError(f"train.amp = fp16 needs CUDA, and this run is on {self.device.type}: use bf16 or off")
        self.amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.train.amp)
        optimizers = [self.opt_g] + ([self.opt_d] if self.critic is not None else [])
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_factor(s, cfg)) for o in optimizers]
        # One scaler per optimizer: a scaler may step each optimizer once per update, and the critic
        # can take several steps per generator step.
        self.scalers = [torch.amp.GradScaler(self.device.type, enabled=self.amp is torch.float16) for _ in optimizers]
        self.train_set, self.val_set, self.fit_set = build_datasets(cfg, self.window, self.device, info.rank)
        self.step, self.epoch, self.batch_in_epoch, self.best_psnr = 0, 0, 0, -math.inf
        # CPU seconds this process spent on training steps (data + step, not validation or saving),
        # summed over resumes: the budget unit of the model study, fair however busy the machine is.
        self.train_cpu_s = 0.0
        self.log = RunLog(self.out, enabled=info.is_main)
        if resume:
            self.load()
        elif (self.out / "last.train.pt").exists():
            raise ConfigError(f"{self.out} already holds a run; pass --resume to continue it or choose another --out")
        elif init_from is not None:
            self.init_from(Path(init_from))

    def _adam(self, module: nn.Module, lr: float) -> torch.optim.Optimizer:
        o = self.cfg.optim
        return torch.optim.Adam(module.parameters(), lr=lr, betas=o.betas, weight_decay=o.weight_decay)

    def _perceptual(self) -> PerceptualLoss | None:
        loss = self.cfg.loss
        if loss.perceptual_weight <= 0:
            return None
        if not loss.vgg_weights:
            raise ConfigError("this config uses the VGG19 perceptual loss: set loss.vgg_weights to a torchvision vgg19 "
                              "state dict (.pth or .safetensors), e.g. --set loss.vgg_weights=vgg19.pth")
        return PerceptualLoss(loss.vgg_weights, loss.perceptual_layer).to(self.device)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def unroll(self, model: nn.Module, blurred: torch.Tensor) -> torch.Tensor:
        return unroll(model, blurred, self.g.input_kind, self.cfg.train.alignment_faults)

    def train_step(self, batch: Batch) -> dict[str, float]:
        cfg, logs = self.cfg.loss, {}
        blurred = batch["blurred"].to(self.device, non_blocking=True)  # (B, T, 3, H, W)
        sharp = batch["sharp"].to(self.device, non_blocking=True).flatten(0, 1)  # (B*T, 3, H, W)
        self.g_train.train()
        with self.autocast():
            fake = self.unroll(self.g_train, blurred)  # (B*T, 3, H, W)
        blurred = blurred.flatten(0, 1)

        # 1. Critic: real vs the detached output, as many updates as loss.critic_steps.
        if self.critic is not None:
            self.critic.requires_grad_(True).train()
            for _ in range(cfg.critic_steps):
                with self.autocast():
                    d_loss = self.gan.critic_loss(self.critic_train(blurred, sharp), self.critic_train(blurred, fake.detach()))
                if self.gan.needs_gradient_penalty:
                    with torch.autocast(self.device.type, enabled=False):  # second-order grads in fp32
                        gp = gradient_penalty(self.critic, blurred, sharp, fake.float())
                    d_loss = d_loss + cfg.gp_weight * gp
                    logs["gp"] = gp.item()
                self._update(d_loss, self.opt_d, self.critic, self.scalers[1])
                logs["d_loss"] = d_loss.item()
            # Frozen for the generator step: gradients pass through the critic without touching it.
            self.critic.requires_grad_(False)

        # 2. Generator: content + perceptual + adversarial.
        terms = self.reconstruction_terms(fake, sharp)
        if self.critic is not None:
            with self.autocast():
                terms["gan"] = cfg.gan_weight * self.gan.generator_loss(self.critic(blurred, fake))
        g_loss = sum(terms.values())
        self._update(g_loss, self.opt_g, self.g, self.scalers[0])
        for s in self.schedulers:
            s.step()
        self.ema.update(self.g, self.step)
        self.step += 1
        return {"g_loss": g_loss.item(), **{k: v.item() for k, v in terms.items()}, **logs}

    def reconstruction_terms(self, fake: torch.Tensor, sharp: torch.Tensor) -> dict[str, torch.Tensor]:
        """The generator's weighted terms against the sharp target: content, FFT and perceptual."""
        cfg = self.cfg.loss
        terms = {"content": cfg.content_weight * self.content(fake.float(), sharp)}
        if self.fft is not None:
            terms["fft"] = cfg.fft_weight * self.fft(fake, sharp)
        if self.perceptual is not None:
            with self.autocast():
                terms["perceptual"] = cfg.perceptual_weight * self.perceptual(fake, sharp)
        return terms

    def _update(self, loss: torch.Tensor, opt: torch.optim.Optimizer, module: nn.Module, scaler: torch.amp.GradScaler) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.cfg.train.grad_clip > 0:
            scaler.unscale_(opt)  # clip the true gradient, not the loss-scaled one
            nn.utils.clip_grad_norm_(module.parameters(), self.cfg.train.grad_clip)
        scaler.step(opt)
        scaler.update()

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """PSNR/SSIM of the EMA generator on held-out sequences (``val_*``) and PSNR on clips drawn like
        the training data (``fit_*``), frame by frame with the state carried, each beside the blurred
        input's own score (the baseline the model must beat)."""
        held_out = self._score(self.val_set, "val")
        fit = self._score(self.fit_set, "fit")
        return held_out | {k: v for k, v in fit.items() if k.endswith("psnr")}

    def _score(self, dataset: Dataset, prefix: str) -> dict[str, float]:
        model, sums = self.ema.module, defaultdict(float)
        frames = 0
        for i in range(len(dataset)):
            item = dataset[i]
            blurred, sharp = item["blurred"].to(self.device), item["sharp"].to(self.device)  # (T, 3, H, W)
            state = model.initial_state(1, *blurred.shape[-2:], device=self.device)
            for t in range(blurred.shape[0]):
                out, state = run_padded(model, blurred[t:t + 1], state)
                for name, pred in ((prefix, out), (f"{prefix}_input", blurred[t:t + 1])):
                    p, s = psnr_ssim_uint8(pred, sharp[t:t + 1])
                    sums[f"{name}_psnr"] += p
                    sums[f"{name}_ssim"] += s
                frames += 1
        return {k: v / frames for k, v in sums.items()}

    def batches(self) -> Iterator[Batch]:
        """Batches from the saved data position on, epoch after epoch."""
        if isinstance(self.train_set, DeviceShakeBatches):
            while True:  # rendered on the device; a batch depends on (seed, rank, step) only, so resume is exact
                yield self.train_set.batch(self.step)
        while True:
            loader = epoch_loader(self.train_set, batch=self.cfg.train.batch, info=self.info, seed=self.cfg.train.seed,
                                  epoch=self.epoch, skip_batches=self.batch_in_epoch, workers=self.cfg.data.workers)
            for batch in loader:
                self.batch_in_epoch += 1
                yield batch
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    def run(self, until: int | None = None, time_limit_s: float | None = None,
            cpu_limit_s: float | None = None) -> dict[str, float]:
        """Train to ``until`` (default train.steps), until the wall-time limit, or until the run's total
        training CPU time (``train_cpu_s``, summed over resumes) reaches ``cpu_limit_s``; then
        checkpoint. Returns the last validation metrics."""
        t = self.cfg.train
        until = min(until or t.steps, t.steps)
        start, metrics = time.monotonic(), {}
        sums, count, busy = defaultdict(float), 0, 0.0
        batches = self.batches()
        while self.step < until:
            tick, cpu_tick = time.monotonic(), time.process_time()
            for k, v in self.train_step(next(batches)).items():
                sums[k] += v
            busy, count = busy + time.monotonic() - tick, count + 1  # it/s counts data + step, not validation
            self.train_cpu_s += time.process_time() - cpu_tick
            out_of_time = (time_limit_s is not None and time.monotonic() - start > time_limit_s) or \
                (cpu_limit_s is not None and self.train_cpu_s >= cpu_limit_s)
            out_of_time = any_rank(out_of_time, self.info)
            done = self.step >= until or out_of_time
            validate = self.step % t.val_every == 0 or done
            if self.info.is_main and validate:
                metrics = self.validate()
            if self.step % t.log_every == 0 or validate:
                row = {k: v / count for k, v in sums.items()} | {"cpu_s": self.train_cpu_s} | (metrics if validate else {})
                self.log.write(self.step, t.steps, count / busy, self.schedulers[0].get_last_lr()[0], row)
                sums, count, busy = defaultdict(float), 0, 0.0
            if self.step % t.ckpt_every == 0 or done:
                self.save(metrics if validate else {})
            if done:
                break
        return metrics

    def save(self, metrics: dict[str, float]) -> None:
        rng = capture_rng(self.info)  # collective: every rank takes part
        if not self.info.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        extra = {"config": self.cfg.to_dict()}
        save_checkpoint(self.out / "last.safetensors", self.ema.module, step=self.step, metrics=metrics, extra=extra)
        if metrics.get("val_psnr", -math.inf) > self.best_psnr:
            self.best_psnr = metrics["val_psnr"]
            save_checkpoint(self.out / "best.safetensors", self.ema.module, step=self.step, metrics=metrics, extra=extra)
        state = {
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "best_psnr": self.best_psnr,
            "train_cpu_s": self.train_cpu_s,
            "config": self.cfg.to_dict(), "rng": rng, "generator": self.g.state_dict(), "opt_g": self.opt_g.state_dict(),
            "schedulers": [s.state_dict() for s in self.schedulers], "scalers": [s.state_dict() for s in self.scalers],
        }
        if self.critic is not None:
            state |= {"critic": self.critic.state_dict(), "opt_d": self.opt_d.state_dict()}
        tmp = self.out / "last.train.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.out / "last.train.pt")  # atomic: a crash mid-save leaves the previous state

    def load(self) -> None:
        path = self.out / "last.train.pt"
        if not path.is_file():
            raise ConfigError(f"--resume: {path} does not exist; nothing to resume in {self.out}")
        # Our own file (it holds RNG states that are not plain tensors), hence weights_only=False.
        state = torch.load(path, map_location=self.device, weights_only=False)
        check_resumable(state["config"], self.cfg, path)
        load_weights(self.ema.module, self.out / "last.safetensors", self.device)
        if state.get("packed"):
            # A packed state (train/pack.py) has no raw weights and no optimiser moments: the raw
            # weights restart from the EMA copy, Adam from zero moments; the rest continues exactly.
            self.g.load_state_dict(self.ema.module.state_dict())
        else:
            self.g.load_state_dict(state["generator"])
            self.opt_g.load_state_dict(state["opt_g"])
            if self.critic is not None:
                self.critic.load_state_dict(state["critic"])
                self.opt_d.load_state_dict(state["opt_d"])
            for scaler, saved in zip(self.scalers, state["scalers"]):
                scaler.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(saved)
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.best_psnr = state["best_psnr"]
        self.train_cpu_s = state.get("train_cpu_s", 0.0)  # absent in states written before it was tracked
        restore_rng(state["rng"], self.info)
        self.log.truncate(self.step)

    def _grow_from(self, weights: Path, overrides: dict, path: Path) -> None:
        """Warm start from a smaller model of the same family (``DeblurModel.load_grown``), checked:
        the grown EMA must compute what the smaller model did on a probe clip, else it is refused.
        Where the new model drops a path the saved one had, it cannot compute the same: that is said."""
        mine = self.cfg.to_dict()["model"]
        small = build_model(self.cfg.model.name, overrides).to(self.device)
        load_weights(small, weights, self.device)
        grown = self.ema.module
        try:
            grown.load_grown(small.state_dict())
        except ValueError as e:
            raise ConfigError(f"--init-from: {path} trained {self.cfg.model.name} {overrides}, "
                              f"not {mine['name']} {mine['overrides']}, and cannot seed it: {e}") from None
        dropped = sorted(set(small.state_dict()) - set(grown.state_dict()))
        if dropped:
            if self.info.is_main:
                print(f"--init-from: {path} seeds a model without {', '.join(dropped)}: it starts near, "
                      f"not at, what the saved model computed", flush=True)
            return
        size = 2 * max(grown.pad_multiple, 16)
        probe = torch.rand(1, grown.in_channels, size, size, generator=torch.Generator().manual_seed(0)).to(self.device)
        with torch.no_grad():
            ours, theirs = grown.initial_state(1, size, size), small.initial_state(1, size, size)
            for _ in range(2):  # two steps, so the recurrent state is compared too
                a, ours = grown(probe, ours)
                b, theirs = small(probe[:, :small.in_channels], theirs)  # grown inputs (motion) start unused
                gap = (a - b).abs().max().item()
                if gap > 1e-5:
                    raise ConfigError(f"--init-from: the model grown from {path} does not compute what it did "
                                      f"(max difference {gap:.2e}); refusing to start from it")

    def init_from(self, run: Path) -> None:
        """Warm start: the generator (and its EMA copy) of another run, with this run's own fresh
        optimiser, schedule, data order and log. Unlike --resume the config may differ in anything but
        the model, e.g. a GPU stage with a larger batch, bf16 and another learning rate. The model may
        also be a grown copy of the saved one (more residual blocks, ``DeblurModel.load_grown``)."""
        path = run / "last.train.pt" if run.is_dir() else run
        if not path.is_file():
            raise ConfigError(f"--init-from: {path} does not exist; give a run folder holding last.train.pt")
        state = torch.load(path, map_location=self.device, weights_only=False)
        model = state["config"]["model"]
        mine = self.cfg.to_dict()["model"]
        weights = path.parent / "last.safetensors"
        if model["name"] != mine["name"]:
            raise ConfigError(f"--init-from: {path} trained {model['name']} {model['overrides']}, "
                              f"not {mine['name']} {mine['overrides']}")
        grown = model["overrides"] != jsonable(mine["overrides"])
        if grown:
            self._grow_from(weights, model["overrides"], path)
        else:
            load_weights(self.ema.module, weights, self.device)
        # A packed state carries the EMA weights only, and a grown model only has its grown EMA: they
        # then seed the raw weights too.
        seed_from_ema = state.get("packed") or grown
        self.g.load_state_dict(self.ema.module.state_dict() if seed_from_ema else state["generator"])

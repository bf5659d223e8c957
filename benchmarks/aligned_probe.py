"""Paired probe: what a small net gains from neighbouring frames aligned by the global camera motion.

    python -m vdeblur.benchmarks.aligned_probe --arm single --arm aligned --seed 0 --seed 1 --minutes 10

Every arm is the same 3-level U-Net (widths 24/48/96, a residual output that starts at zero), trained on
one thread for the same CPU time (batch 8 of 96x96 crops, L1, Adam 1e-3 with a cosine to 5e-5 over the
budget) on the same pre-rendered pool (clips of 5 frames rendered by ``render_shake_clip`` from the
training photographs, temporal blur 5-12 px, default noise and compression), then run frame by frame
over the held-out clips of ``data/eval`` and scored as PSNR gain over the blurred input. Only the input
differs; each neighbour adds 5 channels: its RGB warped onto frame t by the global motion estimated
between the blurred frames (``vdeblur.train.motion``, chained for t-2), its validity and confidence.

Arms: ``single`` (frame t), ``aligned`` (+ blurred t-1), ``aligned2`` (+ t-1 and t-2), ``output``
(+ the net's own output for t-1, warped: sharper, but its errors feed back; trained unrolled over two
frames, so each of its steps costs two forward passes), ``lookahead`` (+ t-1 and t+1: one frame more
latency). Results: one JSON per arm and seed in ``--out``, and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vdeblur.train.archs.deep import warp
from vdeblur.train.data import scan_gopro
from vdeblur.train.frames import from_uint8
from vdeblur.train.metrics import psnr, quantize
from vdeblur.train.motion import NO_MOTION, GlobalMotion, estimate_motion, motion_field
from vdeblur.train.synth.clip import render_shake_clip, shake_config
from vdeblur.train.synth.sources import read_rgb

POOL_FRAMES, POOL_SIZE, CROP, BATCH = 5, 160, 96, 8
TARGETS = (2, 3)  # pool frames trained on: each has t-2 and t+1, so every arm sees the same targets


@dataclass(frozen=True)
class Arm:
    offsets: tuple[int, ...]  # neighbours fed, relative to t (-1: the previous frame, 1: the next)
    output: bool = False  # the previous neighbour is the net's own output, not the blurred frame

    @property
    def in_channels(self) -> int:
        return 3 + 5 * len(self.offsets)


ARMS = {"single": Arm(()), "aligned": Arm((-1,)), "aligned2": Arm((-1, -2)), "output": Arm((-1,), output=True),
        "lookahead": Arm((-1, 1))}


class ProbeNet(nn.Module):
    def __init__(self, in_channels: int, widths: tuple[int, int, int] = (24, 48, 96)) -> None:
        super().__init__()
        a, b, c = widths
        conv = lambda i, o, s=1: nn.Sequential(nn.Conv2d(i, o, 3, s, 1), nn.ReLU(inplace=True))  # noqa: E731
        self.e1, self.e2, self.e3 = nn.Sequential(conv(in_channels, a), conv(a, a)), nn.Sequential(conv(a, b, 2), conv(b, b)), \
            nn.Sequential(conv(b, c, 2), conv(c, c), conv(c, c))
        self.u2, self.d2 = nn.Sequential(nn.Conv2d(c, b * 4, 1), nn.PixelShuffle(2)), conv(b, b)
        self.u1, self.d1 = nn.Sequential(nn.Conv2d(b, a * 4, 1), nn.PixelShuffle(2)), conv(a, a)
        self.head = nn.Conv2d(a, 3, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W), H and W multiples of 4
        s1 = self.e1(x * 2 - 1)
        s2 = self.e2(s1)
        y = self.d2(self.u2(self.e3(s2)) + s2)
        return x[:, :3] + self.head(self.d1(self.u1(y) + s1))


def chain(a: GlobalMotion, b: GlobalMotion) -> GlobalMotion:
    """t -> t-1 (a) then t-1 -> t-2 (b): t -> t-2, as confident as the weaker link."""
    if not (a.found and b.found):
        return NO_MOTION
    return GlobalMotion(b.homography @ a.homography, min(a.confidence, b.confidence))


def neighbour_motions(frames: np.ndarray, t: int, offsets: tuple[int, ...]) -> list[GlobalMotion]:
    """The motion from frame t onto each neighbour (NO_MOTION where the clip has none)."""
    out = []
    for k in offsets:
        if not 0 <= t + k < len(frames):
            out.append(NO_MOTION)
        elif k == -2:
            out.append(chain(estimate_motion(frames[t - 1], frames[t]), estimate_motion(frames[t - 2], frames[t - 1])))
        else:
            out.append(estimate_motion(frames[t + k], frames[t]))
    return out


def aligned_input(frame: torch.Tensor, neighbours: list[torch.Tensor], fields: list[torch.Tensor]) -> torch.Tensor:
    """(B, 3, H, W) frame + per neighbour its (B, 3, H, W) image and (B, 4, H, W) motion field -> the net's input."""
    parts = [frame]
    for image, field in zip(neighbours, fields):
        valid = field[:, 2:3]
        parts += [warp(image, field[:, :2]) * valid, valid, field[:, 3:4]]
    return torch.cat(parts, dim=1)


def build_pool(photos: Path, clips: int, seed: int) -> dict[str, np.ndarray]:
    """Clips of POOL_FRAMES frames and, per target frame, the motions onto t-2, t-1 and t+1 (as homographies)."""
    paths = sorted(p for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    config = replace(shake_config(blur_px=(5.0, 12.0)), mode="temporal")
    rng = np.random.default_rng(seed)
    blurred, sharp, homs, confs = [], [], [], []
    for i in range(clips):
        image = read_rgb(paths[int(rng.integers(len(paths)))])
        scale = float(rng.uniform(0.3, 0.8))
        image = _resized(image, scale)
        b, s = render_shake_clip(image, frames=POOL_FRAMES, height=POOL_SIZE, width=POOL_SIZE, seed=seed * 100003 + i,
                                 config=config)
        motions = [neighbour_motions(b, t, (-2, -1, 1)) for t in TARGETS]
        blurred.append(b), sharp.append(s)
        homs.append([[m.homography for m in ms] for ms in motions])
        confs.append([[m.confidence for m in ms] for ms in motions])
    return {"blurred": np.stack(blurred), "sharp": np.stack(sharp), "homographies": np.array(homs, np.float64),
            "confidences": np.array(confs, np.float64)}


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    scale = max(scale, (POOL_SIZE + 1) / min(h, w))
    return cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def _field(pool: dict[str, np.ndarray], clip: int, target: int, k: int) -> np.ndarray:
    j = {-2: 0, -1: 1, 1: 2}[k]
    motion = GlobalMotion(pool["homographies"][clip, target, j], float(pool["confidences"][clip, target, j]))
    return motion_field(motion, POOL_SIZE, POOL_SIZE)


def train_arm(arm: Arm, pool: dict[str, np.ndarray], *, seed: int, cpu_s: float) -> tuple[ProbeNet, int]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = ProbeNet(arm.in_channels)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    start, steps = time.process_time(), 0
    while True:
        spent = time.process_time() - start
        if steps and spent >= cpu_s:
            break
        progress = min(spent / cpu_s, 1.0) if cpu_s > 0 else 1.0
        for group in opt.param_groups:  # cosine over the CPU budget, 1e-3 -> 5e-5
            group["lr"] = 5e-5 + 0.5 * (1e-3 - 5e-5) * (1 + np.cos(np.pi * progress))
        clips = rng.integers(len(pool["blurred"]), size=BATCH)
        targets = rng.integers(len(TARGETS), size=BATCH)
        y0, x0 = rng.integers(POOL_SIZE - CROP + 1, size=2)
        crop = (..., slice(y0, y0 + CROP), slice(x0, x0 + CROP))
        frames = from_uint8(pool["blurred"][clips])  # (B, F, 3, S, S)
        t_index = torch.as_tensor([TARGETS[i] for i in targets])
        pick = lambda k: frames[torch.arange(BATCH), t_index + k]  # noqa: E731
        fields = {k: torch.from_numpy(np.stack([_field(pool, c, i, k) for c, i in zip(clips, targets)])) for k in arm.offsets}
        sharp = from_uint8(pool["sharp"][clips, t_index.numpy()])[crop]
        if arm.output:  # two steps: t-1 on its own (no previous output), then t with t-1's output warped
            no_field = torch.zeros(BATCH, 4, POOL_SIZE, POOL_SIZE)
            # The whole pool frame for t-1, so the warp finds its output wherever the motion points.
            first = net(aligned_input(pick(-1), [torch.zeros_like(pick(-1))], [no_field]))
            out = net(aligned_input(pick(0), [first], [fields[-1]])[crop])
            target_prev = from_uint8(pool["sharp"][clips, t_index.numpy() - 1])[crop]
            loss = (out - sharp).abs().mean() + (first[crop] - target_prev).abs().mean()
        else:
            x = aligned_input(pick(0), [pick(k) for k in arm.offsets], [fields[k] for k in arm.offsets])[crop]
            loss = (net(x) - sharp).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    return net.eval(), steps


@torch.no_grad()
def evaluate(net: ProbeNet, arm: Arm, eval_root: Path) -> dict[str, float]:
    """Gain in dB over the blurred input per held-out clip, frame by frame (the previous output carried)."""
    gains = {}
    for seq in scan_gopro(eval_root, "test"):
        blurred = np.stack([read_rgb(p) for p in seq.blur])
        sharp = np.stack([read_rgb(p) for p in seq.sharp])
        h, w = blurred.shape[1:3]
        ph, pw = -(-h // 4) * 4, -(-w // 4) * 4
        frames = from_uint8(blurred)[:, None]  # (T, 1, 3, H, W)
        out_p = in_p = 0.0
        previous_out = torch.zeros_like(frames[0])
        for t in range(len(blurred)):
            motions = neighbour_motions(blurred, t, arm.offsets)
            fields = [torch.from_numpy(motion_field(m, h, w))[None] for m in motions]
            images = [previous_out if arm.output else frames[min(max(t + k, 0), len(blurred) - 1)] for k in arm.offsets]
            x = aligned_input(frames[t], images, fields)
            x = nn.functional.pad(x, (0, pw - w, 0, ph - h), mode="replicate")
            out = net(x)[..., :h, :w].clamp(0, 1)
            previous_out = out
            target = quantize(from_uint8(sharp[t])[None])
            out_p += psnr(quantize(out), target).item()
            in_p += psnr(quantize(frames[t]), target).item()
        gains[seq.name] = (out_p - in_p) / len(blurred)
    return gains


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", action="append", choices=list(ARMS), required=True)
    parser.add_argument("--seed", action="append", type=int, required=True)
    parser.add_argument("--minutes", type=float, default=10.0, help="training CPU-minutes per arm and seed")
    parser.add_argument("--photos", type=Path, default=Path("data/photos/train"))
    parser.add_argument("--eval", type=Path, default=Path("data/eval"))
    parser.add_argument("--clips", type=int, default=700, help="clips in the training pool")
    parser.add_argument("--pool", type=Path, default=Path("data/probe_pool.npz"), help="rendered once, then reused")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/aligned-probe"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)
    if not args.pool.is_file():
        args.pool.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.pool, **build_pool(args.photos, args.clips, seed=7))
    pool = dict(np.load(args.pool))
    args.out.mkdir(parents=True, exist_ok=True)
    print("| arm | seed | steps | gain dB | worst clip dB |")
    print("|---|---:|---:|---:|---:|")
    for name in args.arm:
        for seed in args.seed:
            net, steps = train_arm(ARMS[name], pool, seed=seed, cpu_s=60 * args.minutes)
            gains = evaluate(net, ARMS[name], args.eval)
            mean, worst = float(np.mean(list(gains.values()))), min(gains.values())
            result = {"arm": name, "seed": seed, "minutes": args.minutes, "steps": steps, "clips": len(pool["blurred"]),
                      "gain_db": mean, "worst_db": worst, "per_clip": gains}
            (args.out / f"{name}-seed{seed}.json").write_text(json.dumps(result, indent=1) + "\n")
            print(f"| {name} | {seed} | {steps} | {mean:+.2f} | {worst:+.2f} |", flush=True)


if __name__ == "__main__":
    main()

"""Pack a training run into a small, self-contained folder to commit, and resume from it anywhere.

    python -m vdeblur.train.pack RUN_DIR DEST_DIR        # e.g. runs/default train_state/default

DEST gets ``run.toml`` (the run's complete config), ``last.safetensors`` (EMA weights), ``log.csv`` and
``last.train.pt`` with the Adam moments stored as bfloat16: they are two thirds of the file, and
rounding them to bf16 (8 significant bits) changes the next updates by far less than the gradient
noise, while the weights, data position, schedule and RNG states stay exact. A fresh machine then
continues with ``vdeblur-train --config DEST/run.toml --out DEST --resume`` (Adam's loader casts the
moments back to float32). The packed folder is what the training programme commits each session,
under 30 MB for the default model.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from .config import from_dict, to_toml

FILES = ("last.safetensors", "log.csv")


def _compact_optimizer(state: dict) -> dict:
    return {**state, "state": {i: {k: v.to(torch.bfloat16) if k in ("exp_avg", "exp_avg_sq") else v
                                   for k, v in s.items()} for i, s in state["state"].items()}}


def pack_run(run: Path, dest: Path) -> list[Path]:
    """Write the packed copy of ``run`` into ``dest`` (created; files replaced atomically)."""
    source = run / "last.train.pt"
    if not source.is_file():
        raise FileNotFoundError(f"{run} holds no training state (last.train.pt); nothing to pack")
    if run.resolve() == dest.resolve():
        raise ValueError(f"pack {run} into another folder, not into itself")
    state = torch.load(source, map_location="cpu", weights_only=False)
    for key in ("opt_g", "opt_d"):
        if key in state:
            state[key] = _compact_optimizer(state[key])
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FILES:
        tmp = dest / f".{name}.tmp"
        shutil.copyfile(run / name, tmp)
        written.append(tmp.replace(dest / name))
    tmp = dest / ".last.train.pt.tmp"
    torch.save(state, tmp)
    written.append(tmp.replace(dest / "last.train.pt"))
    config = dest / "run.toml"
    config.write_text(to_toml(from_dict(state["config"])))
    return [*written, config]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    try:
        files = pack_run(args.run, args.dest)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    size = sum(f.stat().st_size for f in files) / 2**20
    print(f"packed {args.run} into {args.dest}: {len(files)} files, {size:.1f} MiB")


if __name__ == "__main__":
    main()

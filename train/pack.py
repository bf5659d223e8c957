"""Pack a training run into a small, self-contained folder to commit, and resume from it anywhere.

    python -m vdeblur.train.pack RUN_DIR DEST_DIR [--link-to BUNDLED.safetensors]

DEST gets ``run.toml`` (the run's complete config), ``log.csv``, ``last.safetensors`` (the EMA weights)
and a slim ``last.train.pt``: step, data position, schedule, best score, training CPU time and every RNG
state, but neither the raw generator weights nor the Adam moments. Resuming from it restarts the raw
weights from the EMA copy and the optimiser from zero moments; everything else continues exactly.

Why the slim state: every byte committed here also travels with the working tree to a time-boxed GPU run
(docs/gpu_session.md), whose upload is bounded (``UPLOAD_MIB``, 64 MiB by default, with the PyAV wheel's 34 MiB
and the photographs in it). The full state
of ``vdeblur_deep`` (raw weights + two Adam moments + EMA, 34 MiB) cannot travel; the slim one is the
EMA alone, and with ``--link-to`` not even that when the EMA *is* the bundled model (a relative
symbolic link then stands for it). What the slimming changes is small: the EMA is what is evaluated and
shipped, and with the preset's betas (0.9, 0.9) Adam's moments average over ~10 steps, so they are
re-estimated at once (the trainer's resume test checks the run goes on from the packed state).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
from pathlib import Path

import torch

from .config import from_dict, to_toml

# What a packed last.train.pt leaves out (the trainer's load() accepts their absence).
DROPPED = ("generator", "opt_g", "critic", "opt_d", "scalers")


def pack_run(run: Path, dest: Path, link_to: Path | None = None) -> list[Path]:
    """Write the packed copy of ``run`` into ``dest`` (created; files replaced atomically). With
    ``link_to`` (a bundled checkpoint inside the same repository), an EMA identical to it becomes a
    relative symbolic link to it."""
    source = run / "last.train.pt"
    if not source.is_file():
        raise FileNotFoundError(f"{run} holds no training state (last.train.pt); nothing to pack")
    if run.resolve() == dest.resolve():
        raise ValueError(f"pack {run} into another folder, not into itself")
    state = torch.load(source, map_location="cpu", weights_only=False)
    if "critic" in state:
        raise ValueError(f"{run} trains a critic (GAN); packing keeps only generator state, so resume it from {run}")
    slim = {k: v for k, v in state.items() if k not in DROPPED} | {"packed": True}
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    ema = dest / "last.safetensors"
    tmp = dest / ".last.safetensors.tmp"
    if link_to is not None and link_to.is_file() and filecmp.cmp(run / "last.safetensors", link_to, shallow=False):
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.path.relpath(link_to.resolve(), dest.resolve()))
    else:
        shutil.copyfile(run / "last.safetensors", tmp)
    written.append(tmp.replace(ema))
    tmp = dest / ".log.csv.tmp"
    shutil.copyfile(run / "log.csv", tmp)
    written.append(tmp.replace(dest / "log.csv"))
    tmp = dest / ".last.train.pt.tmp"
    torch.save(slim, tmp)
    written.append(tmp.replace(dest / "last.train.pt"))
    config = dest / "run.toml"
    config.write_text(to_toml(from_dict(state["config"])))
    return [*written, config]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--link-to", type=Path, help="bundled checkpoint an identical EMA is linked to")
    args = parser.parse_args(argv)
    try:
        files = pack_run(args.run, args.dest, args.link_to)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    size = sum(f.lstat().st_size for f in files) / 2**20
    linked = " (EMA linked to the bundled weights)" if (args.dest / "last.safetensors").is_symlink() else ""
    print(f"packed {args.run} into {args.dest}: {len(files)} files, {size:.1f} MiB{linked}")


if __name__ == "__main__":
    main()

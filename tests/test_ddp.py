"""DistributedDataParallel on CPU: two gloo processes under torchrun train a GAN with a recurrent
generator and end with identical weights while reading different shards of the data."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from test_trainer import tiny_sets, write_tiny_gopro

RANK_SCRIPT = """
import sys
import torch
from vdeblur.train.config import load_config
from vdeblur.train.distributed import epoch_loader, setup, teardown
from vdeblur.train.trainer import Trainer

out, sets = sys.argv[1], sys.argv[2:]
info = setup("cpu")
trainer = Trainer(load_config("vdeblur_fast", sets), out, info)
first = next(iter(epoch_loader(trainer.train_set, batch=2, info=info, seed=0, epoch=0)))["sharp"]
trainer.run()
torch.save({"g": trainer.g.state_dict(), "ema": trainer.ema.module.state_dict(), "d": trainer.critic.state_dict(),
            "first_batch": first, "world": info.world_size}, f"{out}/rank{info.rank}.pt")
teardown(info)
"""


def test_two_gloo_processes_stay_in_sync(tmp_path: Path, photo) -> None:
    root = write_tiny_gopro(tmp_path / "gopro", photo)
    script = tmp_path / "rank.py"
    script.write_text(textwrap.dedent(RANK_SCRIPT))
    out = tmp_path / "run"
    # WGAN-GP exercises the critic's two DDP forwards (real, fake) plus the penalty on the unwrapped
    # critic in one backward; the generator runs twice (window 2) before its backward.
    sets = tiny_sets("vdeblur_fast", root) + ["loss.gan=wgan_gp", "loss.gan_weight=0.1", "model.discriminator=patchgan_wgan",
                                              "train.steps=3", "train.batch=1", "train.ckpt_every=2"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(out), *sets]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert not torch.equal(r0["first_batch"], r1["first_batch"]), "both ranks read the same data"
    for part in ("g", "ema", "d"):
        assert r0[part].keys() == r1[part].keys()
        differ = [k for k in r0[part] if not torch.equal(r0[part][k], r1[part][k])]
        assert not differ, f"{part} differs between ranks in {differ[:5]}"
    # The weights moved: training happened, so equality is not two untouched initialisations.
    fresh = torch.load(out / "rank0.pt", weights_only=False)["g"]["head.0.weight"]
    assert fresh.abs().sum() > 0  # the head starts at zero in vdeblur_fast
    # Only rank 0 writes checkpoints and the log; the sidecar holds both ranks' RNG states.
    assert (out / "last.safetensors").is_file()
    assert len(torch.load(out / "last.train.pt", weights_only=False)["rng"]) == 2
    assert proc.stdout.count("step 3/3") == 1

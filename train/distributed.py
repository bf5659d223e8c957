"""One process or many: torchrun / DistributedDataParallel, and a data loader that can resume mid-epoch.

Launched by ``torchrun --nproc_per_node N`` the environment holds RANK/WORLD_SIZE/LOCAL_RANK and we
join a process group (NCCL on CUDA, gloo on CPU); launched plainly we are rank 0 of 1 and nothing
is wrapped. Every rank sees a different shard of each epoch through ``DistributedSampler``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; allowed: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but this torch build sees no CUDA GPU; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not supported; allowed: auto, cpu, cuda, cuda:N")
    return device


def setup(device: str = "auto") -> DistInfo:
    """Join the torchrun process group if there is one; otherwise a single process on ``device``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    base = resolve_device(device)
    if world == 1:
        return DistInfo(0, 1, base)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if base.type == "cuda":
        base = torch.device("cuda", local)
        torch.cuda.set_device(base)
    dist.init_process_group("nccl" if base.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), base)


def teardown(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, info: DistInfo) -> nn.Module:
    """DDP around ``module`` when distributed. Call the wrapper only where every parameter gets a
    gradient in the following backward; elsewhere call ``unwrap(module)`` (DDP waits for them)."""
    if not info.distributed:
        return module
    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


def gather(obj: Any, info: DistInfo) -> list[Any]:
    """``obj`` of every rank, in rank order (a one-element list when not distributed)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank if it is true on any: ranks must agree when to stop, or one waits forever."""
    if not info.distributed:
        return flag
    t = torch.tensor([int(flag)], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


class _SkipFirst(Sampler[int]):
    """The sampler's epoch order without its first ``skip`` indices: resuming in the middle of an
    epoch without loading (and synthesising) the items already trained on."""

    def __init__(self, sampler: DistributedSampler, skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.sampler)[self.skip:])

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


def epoch_loader(dataset: Dataset, *, batch: int, info: DistInfo, seed: int, epoch: int, skip_batches: int = 0,
                 workers: int = 0) -> DataLoader:
    """Batches of epoch ``epoch`` for this rank, from batch ``skip_batches`` on.

    The order depends only on (seed, epoch, rank), and the loader's own generator (not the global
    RNG) seeds its workers, so a resumed run sees exactly the batches a straight run would.
    """
    sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed,
                                 drop_last=True)
    sampler.set_epoch(epoch)
    if len(sampler) < batch:
        raise ValueError(f"the training set has {len(dataset)} items: fewer than batch {batch} x {info.world_size} "
                         f"process(es); lower train.batch or add data")
    set_epoch = getattr(dataset, "set_epoch", None)
    if set_epoch is not None:
        set_epoch(epoch)  # new crops / synthesis draws each epoch
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return DataLoader(dataset, batch_size=batch, sampler=_SkipFirst(sampler, skip_batches * batch), drop_last=True,
                      num_workers=workers, generator=generator, pin_memory=info.device.type == "cuda",
                      persistent_workers=False)

"""Data-parallel training of one member (``torchrun``): ranks, shards, rank-0 writes.

``torchrun --nproc_per_node N -m napari_gerbil train ...`` (or ``train --nproc N``)
starts N processes with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set; :func:`init_from_env`
joins them (NCCL on GPUs, gloo on CPUs). Each global batch of ``batch_size`` keys of
the single-process order is cut into ``N`` contiguous shards, and rank ``r`` renders
and trains on shard ``r`` only: a pure function of (seed, batch index, rank). The
shard losses are weighted by their share of the batch, so the averaged gradient is the
single-process gradient of the whole batch (up to BatchNorm statistics, which are per
shard). Only rank 0 writes files; every rank resumes from the same ``last.pt``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistContext:
    """The rank of this process among ``world`` data-parallel processes."""

    rank: int
    world: int

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes files and reports progress."""
        return self.rank == 0


def env_world_size() -> int:
    """``WORLD_SIZE`` set by torchrun (1 without it)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def current() -> DistContext | None:
    """The process group this process belongs to (None: single-process training)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return DistContext(dist.get_rank(), dist.get_world_size())


def init_from_env(device: str) -> DistContext | None:
    """Join the torchrun process group (NCCL on ``cuda``, else gloo); None if single."""
    if env_world_size() < 2:
        return None
    dist = torch.distributed
    if not dist.is_initialized():
        cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return current()


def close() -> None:
    """Leave the process group (no-op without one)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def barrier(ctx: DistContext | None) -> None:
    """Wait for every rank (no-op when single)."""
    if ctx is not None:
        torch.distributed.barrier()


def all_sum(ctx: DistContext | None, value: float) -> float:
    """The sum of ``value`` over the ranks (``value`` itself when single)."""
    if ctx is None:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return float(t[0])


def broadcast(ctx: DistContext | None, obj):
    """Rank 0's ``obj`` on every rank."""
    if ctx is None:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """[start, stop) of rank ``rank``'s contiguous shard of ``n`` items."""
    return rank * n // world, (rank + 1) * n // world


class ShardedBatchSampler(Sampler):
    """Global batches of ``batch_size`` keys of ``sampler``, cut to this rank's shard.

    A final global batch with fewer keys than ranks is dropped (on every rank), so no
    rank ever has an empty shard. :attr:`global_sizes` holds each batch's global size.
    """

    def __init__(self, sampler: Sampler, batch_size: int, rank: int, world: int) -> None:
        self.sampler, self.batch_size, self.rank, self.world = sampler, batch_size, rank, world
        keys = list(iter(sampler))
        batches = [keys[i : i + batch_size] for i in range(0, len(keys), batch_size)]
        self._batches = [b for b in batches if len(b) >= world]
        #: Global batch sizes, in order.
        self.global_sizes = [len(b) for b in self._batches]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._batches:
            start, stop = shard_bounds(len(batch), self.rank, self.world)
            yield batch[start:stop]

    def __len__(self) -> int:
        return len(self._batches)

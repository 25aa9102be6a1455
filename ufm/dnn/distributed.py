"""Multi-process training under ``torchrun``: the process group, the epoch order, and each process's device.

Under ``torchrun`` (``WORLD_SIZE`` > 1) every process draws the same epoch order
(:func:`epoch_order`) and takes its share of each global minibatch; :class:`Distributed`
reduces and gathers across processes and is a no-op in a single process. The device of a
run follows the one device policy (``ufm._core.device``), with process r on GPU ``LOCAL_RANK``.
"""
from __future__ import annotations

import os

import torch

from ufm._core.device import resolve_device

__all__ = ["Distributed", "epoch_order", "run_device"]


class Distributed:
    """The process group of a run (from ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), created here
    unless one exists: NCCL for ``device_kind`` ``"cuda"``, else gloo. In a single process
    (``WORLD_SIZE`` unset or 1) every collective is a no-op."""

    def __init__(self, device_kind: str):
        import torch.distributed as dist

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owned = False
        self.dist = dist
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
            self.owned = True

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_reduce(self, t: torch.Tensor) -> None:
        """Sum ``t`` over processes, in place."""
        if self.active:
            self.dist.all_reduce(t)

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate ``t`` (n_r, ...) over processes, in rank order (shards may differ in size)."""
        if not self.active:
            return t
        n = torch.tensor([t.shape[0]], device=t.device)
        sizes = [torch.zeros_like(n) for _ in range(self.world)]
        self.dist.all_gather(sizes, n)
        sizes = [int(s) for s in sizes]
        pad = torch.zeros((max(sizes) - t.shape[0], *t.shape[1:]), dtype=t.dtype, device=t.device)
        parts = [torch.empty((max(sizes), *t.shape[1:]), dtype=t.dtype, device=t.device) for _ in sizes]
        self.dist.all_gather(parts, torch.cat([t, pad]))
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])  # (sum_r n_r, ...)

    def barrier(self) -> None:
        if self.active:
            self.dist.barrier()

    def close(self) -> None:
        """Destroy the process group if this object created it."""
        if self.owned:
            self.dist.destroy_process_group()


def run_device(device: str, dist: Distributed, caller: str = "train") -> torch.device:
    """The device of this process for a run asking for ``device``: :func:`~ufm._core.device.resolve_device`
    decides (and raises, naming the ``device`` parameter, where CUDA is asked for and absent); on
    CUDA, ``auto``, ``cuda`` and every multi-process run take GPU ``LOCAL_RANK`` (made current),
    whatever ``cuda:N`` says, and a single process asking for ``cuda:N`` gets that GPU."""
    dev = resolve_device(device, caller)
    if dev.type == "cpu":
        return dev
    if device in ("auto", "cuda") or dist.active:
        torch.cuda.set_device(dist.local_rank)
        return torch.device(f"cuda:{dist.local_rank}")
    return dev


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the n training samples in ``epoch``: a pure function of (seed, epoch).

    A permutation from a CPU generator seeded with seed * 1_000_003 + epoch (so that seeds do
    not share orders shifted by an epoch). Every process draws the same one; global minibatch t
    is order[tB:(t+1)B] and process r takes its positions r, r + world, ... (no padding, unlike
    DistributedSampler, so a multi-process run trains on exactly the single-process batches).
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)  # (n,)

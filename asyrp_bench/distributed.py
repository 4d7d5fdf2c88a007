"""Data parallel helpers over torch.distributed (docs/performance.md, "Several processes").

Launched by ``torchrun`` (env:// rendezvous: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT). gloo on CPU,
NCCL on CUDA. Cells are spread over ranks longest first; inside a cell, images are sharded by position
(rank r takes rows r, r + W, ...) and gathered back into the original order, so a gathered result is the
single-process one (per-image work does not depend on the other images; tests/test_distributed.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.distributed as dist

from asyrp_bench.errors import ConfigError


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0 writes the run folder."""
    return rank() == 0


def init_from_env(device: str = "cpu") -> bool:
    """Join the process group when launched by torchrun; False (single process) when WORLD_SIZE is unset/1."""
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def assign_cells(costs: Sequence[float], n_ranks: int) -> list[list[int]]:
    """Cell indices per rank: longest first, each to the currently least-loaded rank (LPT scheduling).

    Ties go to the lower rank and equal costs keep their input order, so the assignment is deterministic.
    """
    if n_ranks < 1:
        raise ConfigError(f"need at least one rank, got {n_ranks}")
    loads = [0.0] * n_ranks
    out: list[list[int]] = [[] for _ in range(n_ranks)]
    for index in sorted(range(len(costs)), key=lambda i: (-float(costs[i]), i)):
        target = min(range(n_ranks), key=lambda r: (loads[r], r))
        out[target].append(index)
        loads[target] += float(costs[index])
    return out


def shard_indices(n: int, rank_: int | None = None, world: int | None = None) -> list[int]:
    """Rows of an n-image batch this rank handles (strided, so every rank gets ⌊n/W⌋ or ⌈n/W⌉)."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    return list(range(r, n, w))


def gather_rows(local: torch.Tensor, n: int) -> torch.Tensor:
    """All ranks' strided shards of an n-row result, reassembled in the original row order on every rank."""
    w = world_size()
    if w == 1:
        return local
    device = local.device
    # gloo gathers CPU tensors; NCCL needs them on the GPU. Shards are padded to ⌈n/W⌉ rows to equal shapes.
    per = -(-n // w)
    padded = torch.zeros((per, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(w)]
    dist.all_gather(parts, padded)
    out = torch.empty((n, *local.shape[1:]), dtype=local.dtype, device=device)
    for r, part in enumerate(parts):
        rows = shard_indices(n, r, w)
        out[rows] = part[: len(rows)]
    return out


def barrier() -> None:
    if is_distributed():
        dist.barrier()

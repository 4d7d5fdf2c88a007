"""Sharding and gathering over 2 gloo CPU processes equal one process (issue 14)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asyrp_bench.distributed import assign_cells, gather_rows, shard_indices
from asyrp_bench.errors import ConfigError

WORKER = '''
import os, sys, torch, torch.distributed as dist
import asyrp_bench as ab
from asyrp_bench.distributed import init_from_env, shard_indices, gather_rows, rank
init_from_env("cpu")
backend = ab.load_backend("tiny", config="tiny16")
x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.5
rows = shard_indices(5)
with torch.no_grad():
    local = ab.invert(backend, x[rows], 4)
full = gather_rows(local, 5)
if rank() == 0:
    torch.save(full, sys.argv[1])
dist.destroy_process_group()
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one(tmp_path: Path):
    import asyrp_bench as ab

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "gathered.pt"
    port = _free_port()
    procs = []
    for r in range(2):
        env = {**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(script), str(out)], env=env))
    assert all(p.wait(timeout=120) == 0 for p in procs)
    gathered = torch.load(out, weights_only=True)
    backend = ab.load_backend("tiny", config="tiny16")
    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.5
    with torch.no_grad():
        single = ab.invert(backend, x, 4)
    assert (single - x).abs().max() > 1e-3  # inversion moved the images: the comparison is not vacuous
    assert (gathered - single).abs().max() < 1e-6


def test_assign_cells_longest_first():
    assert assign_cells([1, 5, 3, 3], 2) == [[1, 0], [2, 3]]  # loads 6 and 6
    assert assign_cells([2, 2, 2], 1) == [[0, 1, 2]]
    assert sorted(i for s in assign_cells([4, 1, 7, 2, 2], 3) for i in s) == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError):
        assign_cells([1], 0)


def test_shards_cover_every_row_once():
    shards = [shard_indices(7, r, 3) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(7))
    local = torch.arange(7.0)
    assert torch.equal(gather_rows(local, 7), local)  # single process: identity

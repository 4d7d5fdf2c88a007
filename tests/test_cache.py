from __future__ import annotations

import torch

import asyrp_bench as ab
from asyrp_bench.cache import InversionCache, tensor_sha256
from tests.toys import ToyBackend


def test_cache_returns_identical_results_and_hits(tmp_path):
    backend = ToyBackend()
    x0 = torch.rand(3, 3, 8, 8) * 2 - 1
    cache = InversionCache(tmp_path)
    first = cache.invert(backend, x0, 6, batch_size=2)
    assert cache.misses == 3 and cache.hits == 0
    # Batches of 2 vs 3 may differ in the last float bits (conv kernels depend on batch size).
    assert torch.allclose(first, ab.invert(backend, x0, 6), atol=1e-6)
    assert torch.equal(first[:2], ab.invert(backend, x0[:2], 6))
    again = InversionCache(tmp_path).invert(backend, x0[[2, 0]], 6)
    assert torch.equal(again, first[[2, 0]])
    recon = cache.reconstruct(backend, first, 6)
    assert torch.allclose(recon, ab.generate(backend, first, 6), atol=1e-6)
    # Different grid or different weights are different entries.
    other = InversionCache(tmp_path)
    other.invert(backend, x0[:1], 7)
    other.invert(ToyBackend(seed=1), x0[:1], 6)
    assert other.misses == 2 and other.hits == 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_tensor_hash_sees_every_value():
    x = torch.zeros(2, 3)
    y = x.clone()
    y[1, 2] = 1e-7
    assert tensor_sha256(x) != tensor_sha256(y) and tensor_sha256(x) == tensor_sha256(x.clone())
    assert tensor_sha256(torch.zeros(6)) != tensor_sha256(torch.zeros(2, 3))

"""Content-addressed on-disk cache of DDIM inversions and reconstructions.

An inversion depends only on the backend's weights, the exact input image and the grid, so it is keyed by
(backend weights hash, image tensor sha256, n_inv_step, t0) and shared by every editor variant, edit, suite and
run (DESIGN §7). Each image is one safetensors file written atomically (temporary name, then rename), so an
interrupted run never leaves a half-written entry. Because batches give the same per-image results as batch 1,
images are cached one by one and computed in batches.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from asyrp_bench.asyrp import generate, invert
from asyrp_bench.diffusion.backends.base import Backend
from asyrp_bench.weights import home

ProgressFn = Callable[[int, int], None]


def tensor_sha256(x: Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes (float32, CPU)."""
    data = x.detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.sha256(f"{tuple(data.shape)}|".encode())
    digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    return home() / "cache"


class InversionCache:
    """Get-or-compute DDIM inversions (x_T) and plain-DDIM reconstructions, one file per image."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0

    def _path(self, kind: str, parts: tuple[object, ...]) -> Path:
        key = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
        return self.root / kind / key[:2] / f"{key}.safetensors"

    def _cached_batch(
        self,
        kind: str,
        keys: list[tuple[object, ...]],
        inputs: Tensor,
        compute: Callable[[Tensor], Tensor],
        batch_size: int,
        progress: ProgressFn | None,
    ) -> Tensor:
        outputs: list[Tensor | None] = [None] * len(keys)
        todo = []
        for i, parts in enumerate(keys):
            path = self._path(kind, parts)
            if path.is_file():
                outputs[i] = load_file(path)["x"].to(inputs.device)
                self.hits += 1
            else:
                todo.append(i)
        for start in range(0, len(todo), batch_size):
            index = todo[start : start + batch_size]
            result = compute(inputs[index])
            for j, i in enumerate(index):
                outputs[i] = result[j]
                self._write(self._path(kind, keys[i]), result[j])
                self.misses += 1
            if progress is not None:
                progress(min(start + batch_size, len(todo)), len(todo))
        return torch.stack(outputs)  # type: ignore[arg-type]

    @staticmethod
    def _write(path: Path, x: Tensor) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            save_file({"x": x.detach().to("cpu", torch.float32).contiguous()}, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def invert(
        self,
        backend: Backend,
        x0: Tensor,
        n_steps: int,
        t0: int = 999,
        batch_size: int = 8,
        progress: ProgressFn | None = None,
    ) -> Tensor:
        """``asyrp_bench.invert`` with every image's x_T cached on disk."""
        keys = [("invert", backend.weights_hash, tensor_sha256(x), n_steps, t0) for x in x0]
        return self._cached_batch(
            "inversions", keys, x0, lambda xs: invert(backend, xs, n_steps, t0), batch_size, progress
        )

    def reconstruct(
        self,
        backend: Backend,
        x_T: Tensor,
        n_steps: int,
        t0: int = 999,
        batch_size: int = 8,
        progress: ProgressFn | None = None,
    ) -> Tensor:
        """``asyrp_bench.generate`` (plain DDIM, η = 0) from cached x_T, cached per image."""
        keys = [("generate", backend.weights_hash, tensor_sha256(x), n_steps, t0) for x in x_T]
        return self._cached_batch(
            "reconstructions", keys, x_T, lambda xs: generate(backend, xs, n_steps, t0), batch_size, progress
        )

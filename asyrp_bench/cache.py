"""Content-addressed on-disk cache of DDIM inversions and reconstructions.

An inversion depends only on the backend's weights, the exact input image and the grid, so it is keyed by
(backend weights hash, image tensor sha256, n_inv_step, t0) and shared by every editor variant, edit, suite and
run (DESIGN §7). Each image is one safetensors file written atomically (temporary name, then rename), so an
interrupted run never leaves a half-written entry. Because batches give the same per-image results as batch 1,
images are cached one by one and computed in batches.

Entries are never trusted blindly (docs/cache.md): every safetensors entry carries its own key and the sha256 of
its contents in the file's metadata, and files written by other code (trained editors) get a sidecar
``<file>.sha256`` with the key and the file's sha256. Both are verified on every read; a damaged, truncated or
mismatched entry is deleted with a warning naming it and recomputed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from asyrp_bench.asyrp import generate, invert
from asyrp_bench.cache_entries import (  # noqa: F401  (re-exported: the cache's public names)
    CACHE_KINDS,
    CacheWarning,
    _discard,
    _file_sha256,
    _short,
    _tensors_sha256,
    check_file,
    default_cache_dir,
    inspect_entry,
    inspect_file,
    read_entry,
    seal_file,
    sidecar,
    tensor_sha256,
    write_entry,
)
from asyrp_bench.diffusion.backends.base import Backend

ProgressFn = Callable[[int, int], None]


class InversionCache:
    """Get-or-compute DDIM inversions (x_T) and plain-DDIM reconstructions, one file per image."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _key(parts: tuple[object, ...]) -> str:
        return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()

    def _path(self, kind: str, parts: tuple[object, ...]) -> Path:
        key = self._key(parts)
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
            entry = read_entry(self._path(kind, parts), self._key(parts))
            if entry is not None and "x" in entry and entry["x"].shape == inputs.shape[1:]:
                outputs[i] = entry["x"].to(inputs.device)
                self.hits += 1
            else:
                todo.append(i)
        for start in range(0, len(todo), batch_size):
            index = todo[start : start + batch_size]
            result = compute(inputs[index])
            for j, i in enumerate(index):
                outputs[i] = result[j]
                write_entry(self._path(kind, keys[i]), {"x": result[j].float()}, self._key(keys[i]))
                self.misses += 1
            if progress is not None:
                progress(min(start + batch_size, len(todo)), len(todo))
        return torch.stack(outputs)  # type: ignore[arg-type]

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


def _entry_problem(kind: str, path: Path) -> str | None:
    # Inversions, reconstructions and editors are named by their key; feature files by a key prefix only.
    if kind == "editors":
        return inspect_file(path, path.stem)
    named = kind in ("inversions", "reconstructions")
    _, problem = inspect_entry(path, path.stem if named else None)
    return problem


def verify_cache(root: Path, remove: bool = True) -> tuple[int, list[tuple[Path, str]]]:
    """Check every entry under ``root``: (entries checked, [(path, problem)]); damaged ones removed if ``remove``.

    Leftover temporary files of interrupted writes count as problems too.
    """
    checked, problems = 0, []
    for kind in CACHE_KINDS:
        folder = root / kind
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.name.endswith(".sha256"):
                continue
            checked += 1
            problem = (_entry_problem(kind, path) if path.suffix == ".safetensors"
                       else "a leftover temporary or foreign file")
            if problem is not None:
                problems.append((path, problem))
                if remove:
                    path.unlink(missing_ok=True)
                    sidecar(path).unlink(missing_ok=True)
    return checked, problems


def clear_cache(root: Path, kinds: tuple[str, ...] = CACHE_KINDS) -> int:
    """Delete every entry of ``kinds`` under ``root``; returns the number of files removed."""
    import shutil

    removed = 0
    for kind in kinds:
        folder = root / kind
        if folder.is_dir():
            removed += sum(1 for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder)
    return removed

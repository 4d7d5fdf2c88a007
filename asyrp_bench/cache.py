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
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
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


CACHE_KINDS = ("inversions", "reconstructions", "editors", "fidelity_features")
_KEY, _SUM = "asyrp_bench_key", "asyrp_bench_sha256"


class CacheWarning(UserWarning):
    """A cache entry was damaged or did not match its key; it was discarded and will be recomputed."""


def _tensors_sha256(tensors: dict[str, Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):  # raw bytes with dtype and shape: every bit of every value is covered
        data = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _short(key: str) -> str:
    return "key#" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _discard(path: Path, reason: str) -> None:
    warnings.warn(f"cache entry {path} is {reason}; discarded, it will be recomputed", CacheWarning, stacklevel=3)
    for victim in (path, sidecar(path)):
        victim.unlink(missing_ok=True)


def write_entry(path: Path, tensors: dict[str, Tensor], key: str) -> None:
    """Write tensors as a safetensors entry holding ``key`` and their checksum; atomic (temp name, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(data, tmp, metadata={_KEY: key, _SUM: _tensors_sha256(data)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def inspect_entry(path: Path, key: str | None = None) -> tuple[dict[str, Tensor] | None, str | None]:
    """(tensors, None) when the entry is sound (and holds ``key`` if given), else (None, what is wrong)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except Exception as error:  # safetensors raises its own error types (and OSError) on foreign bytes
        return None, f"unreadable ({type(error).__name__}: {error})"
    if _KEY not in meta or _SUM not in meta:
        return None, "missing its key and checksum (written by an older version)"
    if key is not None and meta[_KEY] != key:
        return None, f"for another key (it holds {_short(meta[_KEY])}, expected {_short(key)})"
    if meta[_SUM] != _tensors_sha256(tensors):
        return None, "damaged (its contents do not match their checksum)"
    return tensors, None


def read_entry(path: Path, key: str) -> dict[str, Tensor] | None:
    """The entry's tensors, or None when absent; a damaged or mismatched entry is discarded with a warning."""
    if not path.is_file():
        return None
    tensors, problem = inspect_entry(path, key)
    if problem is not None:
        _discard(path, problem)
    return tensors


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def seal_file(path: Path, key: str) -> None:
    """Record ``key`` and the sha256 of a finished cache file in its sidecar (written atomically)."""
    tmp = sidecar(path).with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"key": key, "sha256": _file_sha256(path)}))
    os.replace(tmp, sidecar(path))


def inspect_file(path: Path, key: str | None = None) -> str | None:
    """None when a sealed file is sound (and holds ``key`` if given), else what is wrong."""
    try:
        record = json.loads(sidecar(path).read_text())
        recorded_key, recorded_sum = str(record["key"]), str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return "missing or with a damaged checksum record " + sidecar(path).name
    if key is not None and recorded_key != key:
        return f"for another key (it holds {_short(recorded_key)}, expected {_short(key)})"
    if _file_sha256(path) != recorded_sum:
        return "damaged (its contents do not match their checksum)"
    return None


def check_file(path: Path, key: str) -> bool:
    """True when a sealed cache file exists and is sound; a damaged one is discarded with a warning."""
    if not path.is_file():
        return False
    problem = inspect_file(path, key)
    if problem is not None:
        _discard(path, problem)
    return problem is None


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

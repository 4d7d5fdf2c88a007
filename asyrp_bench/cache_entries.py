"""Self-verifying cache entries: each carries its key and a checksum of its contents (docs/cache.md).

A base module (no engine imports) so that every layer with a disk cache (the inversion cache, the metrics'
feature cache) shares one format and one check. Entries are never trusted blindly: a safetensors entry holds its
key and the sha256 of its tensors in its metadata; a file written by other code (trained editors) gets a sidecar
``<file>.sha256``. A damaged, truncated or mismatched entry is deleted with a warning naming it.
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



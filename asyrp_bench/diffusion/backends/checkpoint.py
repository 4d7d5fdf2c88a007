"""Reading weights files safely and checking them key for key against a model.

Every backend loads through these helpers so that a wrong file always fails the same clear way: a file that is
not a torch checkpoint names the file; a checkpoint for another architecture lists the missing and unexpected
keys (the official Asyrp code loads with ``strict=False`` and silently ignores them, spec §8.1).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from asyrp_bench.errors import CheckpointError

MAX_LISTED_KEYS = 10


def load_torch_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; anything unreadable becomes a CheckpointError."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; this backend expects a single torch checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError,
            UnicodeDecodeError, AttributeError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint ({type(exc).__name__}: {reason[:200]}). "
            "Expected a file written by torch.save (e.g. celeba_hq.ckpt)."
        ) from exc


def is_state_dict(obj: Any) -> bool:
    """A non-empty mapping of str -> Tensor."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str = "module.") -> dict[str, Tensor]:
    """Remove a prefix every key carries (``module.`` from ``nn.DataParallel``)."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _shorten(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    more = len(keys) - MAX_LISTED_KEYS
    return f"{shown}{f', ... ({more} more)' if more > 0 else ''}"


def check_state_dict(
    expected: Mapping[str, tuple[int, ...] | torch.Size],
    state_dict: Mapping[str, Tensor],
    where: str,
) -> None:
    """Strict key and shape check; raises CheckpointError listing what differs (first 10 of each + a count)."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    problems: list[str] = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_shorten(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_shorten(unexpected)}")
    mismatched = [
        f"{k}: checkpoint {list(state_dict[k].shape)} vs model {list(expected[k])}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k])
    ]
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_shorten(mismatched)}")
    if problems:
        raise CheckpointError(
            f"{where} does not match the model architecture: " + "; ".join(problems)
            + ". Check that the config (preset) matches the checkpoint."
        )


def to_float32(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Floating tensors as float32 (half-precision exports run in fp32 on CPU, DESIGN §7)."""
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state_dict.items()}

"""Reading weights files safely and checking them key for key against a model.

Every backend loads through these helpers so that a wrong file always fails the same clear way: a file that is
not a torch checkpoint names the file; a checkpoint for another architecture lists the missing and unexpected
keys (the official Asyrp code loads with ``strict=False`` and silently ignores them, spec §8.1).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from asyrp_bench.errors import CheckpointError

MAX_LISTED_KEYS = 10


_MAGIC = {
    b"\xff\xd8\xff": "a JPEG image",
    b"\x89PNG": "a PNG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"<": "an HTML/XML document (a failed download?)",
    b"version https://git-lfs": "a Git LFS pointer, not the file itself (run `git lfs pull`)",
}


def sniff(path: Path) -> str | None:
    """What a non-checkpoint file looks like, from its first bytes (for error messages)."""
    with open(path, "rb") as handle:
        head = handle.read(64)
    if not head:
        return "an empty file"
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            return what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "a text file" if all(c.isprintable() or c.isspace() for c in text) else None


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1


def load_torch_file(path: str | os.PathLike[str]) -> Any:
    """Read a weights file on CPU: ``torch.load(weights_only=True)``, or a ``.safetensors`` file.

    Anything unreadable becomes a CheckpointError that names the file and, when it can tell, what it is.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; this backend expects a single torch checkpoint file")
    if _is_safetensors(path):
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except Exception as exc:
            raise CheckpointError(f"{path} looks like safetensors but cannot be read: {exc}") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # the unpickler fails in many ways on foreign bytes (IndexError on text, ...)
        # torch's message opens with advice to retry with weights_only=False, which we never do; keep the cause.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        globals_ = [line for line in lines if "GLOBAL" in line]
        causes = [line for line in lines if not line.startswith(("Weights only load failed", "Please file", "Check the"))]
        looks = sniff(path)
        if looks:
            reason = f"it looks like {looks}"
        elif globals_:
            reason = f"it pickles Python objects that safe (weights_only) loading refuses: {globals_[0][:200]}"
        else:
            reason = f"{type(exc).__name__}: {(causes or [''])[0][:160]}"
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint ({reason}). Expected a file written by torch.save "
            "(like celeba_hq.ckpt) or a .safetensors file."
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

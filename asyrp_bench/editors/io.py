"""Reading editor files: the released Asyrp ``.pth`` format (spec §8.3).

The released checkpoints are ``{"0": DeltaBlock state_dict, "optimizer": SGD state, "scheduler": StepLR state}``
(zip pickles saved from CUDA tensors). Their DeltaBlock keys are exactly the ``additive`` editor's.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from asyrp_bench.editors.additive import AdditiveEditor
from asyrp_bench.editors.base import Editor
from asyrp_bench.errors import CheckpointError

DELTABLOCK_KEYS = (
    "conv1.weight", "conv1.bias", "temb_proj.weight", "temb_proj.bias",
    "norm2.weight", "norm2.bias", "conv2.weight", "conv2.bias",
)
# The released files are all for the 256 px models, whose bottleneck is 8×8 (spec §2.1); a 1×1-conv DeltaBlock
# works at any spatial size, so this only records provenance.
RELEASED_SPATIAL = (8, 8)


def torch_load_checked(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with errors that name the file."""
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint ({type(error).__name__}: {str(error).splitlines()[0]})"
        ) from None


def check_keys(state_dict: dict[str, Any], expected: tuple[str, ...] | list[str], source: str) -> None:
    """Strict key check: missing or unexpected keys are an error listing them (never silently ignored)."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        raise CheckpointError(f"{source}: {'; '.join(parts)}")


def load_released_deltablock(path: str | os.PathLike[str]) -> AdditiveEditor:
    """Load a released Asyrp DeltaBlock ``.pth`` as an ``additive`` editor (key-for-key, strict)."""
    path = Path(path)
    checkpoint = torch_load_checked(path)
    if not isinstance(checkpoint, dict) or "0" not in checkpoint:
        found = sorted(checkpoint)[:10] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(
            f"{path} is not a released Asyrp checkpoint: expected a dict with key '0' holding the DeltaBlock "
            f"state dict (spec §8.3), found {found}"
        )
    state_dict = checkpoint["0"]
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: entry '0' is a {type(state_dict).__name__}, not a state dict")
    check_keys(state_dict, DELTABLOCK_KEYS, str(path))
    weight = state_dict["conv1.weight"]
    if weight.ndim != 4 or weight.shape[2:] != (1, 1) or weight.shape[0] != weight.shape[1]:
        raise CheckpointError(f"{path}: conv1.weight has shape {list(weight.shape)}, expected [C, C, 1, 1]")
    channels = int(weight.shape[0])
    temb_dim = int(state_dict["temb_proj.weight"].shape[1])
    editor = AdditiveEditor((channels, *RELEASED_SPATIAL), temb_dim)
    try:
        editor.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: {error}") from None
    editor.metadata = {"format": "asyrp_released_pth", "source_file": path.name}
    return editor


def load_editor(path: str | os.PathLike[str]) -> Editor:
    """Load an editor file. Released Asyrp ``.pth`` files are read here; safetensors files with metadata are the
    harness's own format."""
    path = Path(path)
    if path.suffix in {".pth", ".pt", ".ckpt"}:
        return load_released_deltablock(path)
    raise CheckpointError(f"{path}: unsupported editor file type {path.suffix!r} (expected a released .pth)")

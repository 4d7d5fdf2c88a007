"""Strict loading of released state-dict files into modules we wrote (docs/metrics.md, "Metric models").

A released ``.pth`` must fit the module key for key and shape for shape; the only tolerated difference is a
missing BatchNorm ``num_batches_tracked`` buffer (files saved by older torch lack it; it never changes an
output). Anything else is a :class:`~asyrp_bench.errors.CheckpointError` that names the keys, and says which other
architecture the file looks like when its keys match one we know.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from asyrp_bench.errors import CheckpointError

# A key only one known architecture has: a file that holds it but does not fit is "the other architecture".
SIGNATURE_KEYS = {
    "cp.resnet.conv1.weight": "a BiSeNet face parser (face-parsing.PyTorch 79999_iter.pth layout)",
    "input_layer.0.weight": "an ArcFace IR-SE50 backbone (model_ir_se50.pth layout)",
    "conv_1a.conv.weight": "a facenet-pytorch InceptionResnetV1 (vggface2 layout)",
    "features.0.weight": "a torchvision AlexNet / VGG backbone",
}
_SHOWN = 8


def read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` of a plain state dict; anything else is a clear CheckpointError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a non-checkpoint file
        raise CheckpointError(f"cannot read {path} as a torch state dict (weights_only=True): {error}") from error
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a plain state dict of tensors, as {what} files are")
    return dict(state)


def _listed(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOWN]) + (f" ... ({len(keys)} in all)" if len(keys) > _SHOWN else "")


def load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """Copy ``state`` into ``module``; missing / extra / misshapen keys are a CheckpointError naming them."""
    expected = module.state_dict()
    optional = {k for k in expected if k.endswith(".num_batches_tracked")}
    missing = sorted(k for k in expected if k not in state and k not in optional)
    extra = sorted(k for k in state if k not in expected)
    misshapen = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
                       for k, v in expected.items() if k in state and state[k].shape != v.shape)
    if missing or extra or misshapen:
        looks_like = [desc for key, desc in SIGNATURE_KEYS.items() if key in state and key not in expected]
        parts = [f"{path} does not fit {what}"]
        if looks_like:
            parts.append(f"it looks like {looks_like[0]}")
        if missing:
            parts.append(f"missing keys: {_listed(missing)}")
        if extra:
            parts.append(f"unexpected keys: {_listed(extra)}")
        if misshapen:
            parts.append(f"wrong shapes: {_listed(misshapen)}")
        raise CheckpointError("; ".join(parts))
    full = {k: state.get(k, v) for k, v in expected.items()}  # absent num_batches_tracked: keep the module's
    module.load_state_dict(full, strict=True)

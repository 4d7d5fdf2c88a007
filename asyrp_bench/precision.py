"""Numeric precision and memory layout of the frozen networks (docs/performance.md).

Only the frozen models (U-Net, CLIP, metric networks) run under autocast; the DDIM arithmetic, the editor's
output Δh and every metric reduction stay in fp32, so a precision changes network rounding only.

* ``fp32`` - no autocast (the default on CPU; the golden numbers are fp32).
* ``bf16`` - autocast to bfloat16 (the default on CUDA where the GPU supports it).
* ``fp16`` - autocast to float16 (CUDA only in practice; CPU fp16 autocast is slow and narrow-ranged).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from asyrp_bench.errors import ConfigError

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ConfigError naming the choices."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def default_precision(device: torch.device | str) -> str:
    """bf16 on a CUDA device that supports it, fp32 everywhere else (CPU numbers match the golden)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def resolve_precision(precision: str | None, device: torch.device | str) -> str:
    """The given precision (validated) or the device's default when None / ``auto``."""
    if precision is None or precision == "auto":
        return default_precision(device)
    return check_precision(precision)


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: str = "fp32") -> Iterator[None]:
    """Autocast region for a frozen network on ``device``; fp32 is a no-op (no autocast at all)."""
    check_precision(precision)
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[precision]):
        yield


@contextlib.contextmanager
def full_precision(device: torch.device | str) -> Iterator[None]:
    """Leave autocast inside an autocast region (editors, DDIM arithmetic, reductions stay fp32)."""
    with torch.autocast(device_type=torch.device(device).type, enabled=False):
        yield


def prepare_model(model: nn.Module, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """channels_last memory format and/or ``torch.compile`` for a frozen convolutional model.

    channels_last changes only the memory layout (the same values); compile returns a compiled wrapper whose
    numbers match eager within float tolerance (tests marked ``gpu``). The model is modified in place for
    channels_last; with compile the returned object must be used.
    """
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        if not hasattr(torch, "compile"):
            raise ConfigError("--compile needs torch.compile (torch >= 2.0)")
        if hasattr(model, "_encode") and hasattr(model, "_decode"):
            # A Backend is called through encode/decode, not forward: compile the two halves in place.
            model._encode = torch.compile(model._encode)  # type: ignore[method-assign]
            model._decode = torch.compile(model._decode)  # type: ignore[method-assign]
        else:
            model = torch.compile(model)  # type: ignore[assignment]
    return model


def set_cudnn_benchmark(enabled: bool = False) -> None:
    """cuDNN autotuning: off by default, because the algorithm it picks can change the last bits run to run."""
    torch.backends.cudnn.benchmark = bool(enabled)

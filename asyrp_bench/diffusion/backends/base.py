"""The backend contract: a frozen ε-prediction U-Net split at its bottleneck (DESIGN §4).

Asyrp edits the output of the U-Net's middle block, h-space (spec §2.1). One ``encode`` runs the down path and
the middle block; ``decode`` runs the up path from any h with the *same* skip tensors, so ε and ε̃ of one step
share a single encoder pass (spec §2.2).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from asyrp_bench.diffusion.schedule import NUM_TRAIN_TIMESTEPS
from asyrp_bench.errors import InputError
from asyrp_bench.registry import Registry


@dataclass
class Bottleneck:
    """Everything the up path needs, captured by one ``encode``.

    Attributes:
        h: the middle block's output, [B, C, H, W] (512×8×8 for the 256 px models).
        skips: the encoder's skip tensors in the order the backend pushed them.
        temb: the U-Net's own time embedding after its MLP, [B, temb_dim]; editors are conditioned on it.
        t: the integer timesteps, [B] (long).
        extra: backend-specific state the up path needs (e.g. diffusers' skip-sample branch).
    """

    h: Tensor
    skips: tuple[Tensor, ...]
    temb: Tensor
    t: Tensor
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(nn.Module, ABC):
    """A frozen diffusion U-Net behind the encode/decode split.

    Subclasses set ``name`` and implement ``_encode`` / ``_decode`` on validated inputs and ``load``. The
    parameters are frozen (``requires_grad=False``) and the module stays in eval mode; gradients still flow
    through ``decode`` into ``h`` (Asyrp training back-propagates from ε̃ to Δh, spec §4.3).

    Attributes:
        image_size: spatial size of x_t (square).
        in_channels: channels of x_t (3 for pixel models).
        h_shape: (C, H, W) of the bottleneck h.
        temb_dim: width of the time embedding handed to editors.
        latent: an optional autoencoder for latent diffusion models (None for pixel models).
    """

    name: ClassVar[str] = "backend"
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.image_size: int = 0
        self.in_channels: int = 3
        self.h_shape: tuple[int, int, int] = (0, 0, 0)
        self.temb_dim: int = 0
        self.latent: nn.Module | None = None
        self._weights_hash: str | None = None

    # -- the contract -------------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def load(
        cls, weights: str | None = None, config: str | dict[str, Any] | None = None, device: str = "cpu"
    ) -> Backend:
        """Build the backend from a preset name or config dict and load ``weights`` (a path or weights key)."""

    @abstractmethod
    def _encode(self, x_t: Tensor, t: Tensor) -> Bottleneck: ...

    @abstractmethod
    def _decode(self, bottleneck: Bottleneck, h: Tensor) -> Tensor: ...

    def encode(self, x_t: Tensor, t: int | Tensor) -> Bottleneck:
        """Run the down path and the middle block. ``t`` is an int or a 1-D tensor of B (or 1) timesteps."""
        t_vec = self.check_inputs(x_t, t)
        return self._encode(x_t, t_vec)

    def decode(self, bottleneck: Bottleneck, h: Tensor | None = None) -> Tensor:
        """Run the up path from ``h`` (default: the original h) with the bottleneck's skips; returns ε."""
        if h is None:
            h = bottleneck.h
        elif h.shape != bottleneck.h.shape:
            raise InputError(f"h has shape {tuple(h.shape)} but the bottleneck's h is {tuple(bottleneck.h.shape)}")
        return self._decode(bottleneck, h)

    def decode_pair(self, bottleneck: Bottleneck, h_edit: Tensor) -> tuple[Tensor, Tensor]:
        """(ε, ε̃): the up path from h and from ``h_edit`` as ONE decode of batch 2B (docs/performance.md).

        The skips, time embedding and extra state are repeated, so each half sees exactly what a separate
        ``decode`` would; every layer of the up path is per-sample (GroupNorm, per-image attention), so the
        result equals two decodes up to float summation order (tests/test_speed.py: < 1e-6 in fp32).
        """
        if h_edit.shape != bottleneck.h.shape:
            raise InputError(
                f"h has shape {tuple(h_edit.shape)} but the bottleneck's h is {tuple(bottleneck.h.shape)}"
            )
        batch = bottleneck.h.shape[0]
        doubled = repeat_rows(bottleneck, batch)
        eps_both = self._decode(doubled, torch.cat([bottleneck.h, h_edit]))
        return eps_both[:batch], eps_both[batch:]

    def forward(self, x_t: Tensor, t: int | Tensor) -> Tensor:
        """The plain ε prediction, ε_θ(x_t, t)."""
        return self.decode(self.encode(x_t, t))

    @classmethod
    def preset_summary(cls, preset: str) -> str:
        """One line describing ``preset`` for ``asyrp-bench ls backends``."""
        return ", ".join(f"{k}={v}" for k, v in cls.presets[preset].items() if k != "weights")

    # -- shared helpers -----------------------------------------------------------------------------------
    def check_inputs(self, x_t: Tensor, t: int | Tensor) -> Tensor:
        """Validate x_t and t; return t as a [B] long tensor on x_t's device."""
        if not isinstance(x_t, Tensor):
            raise InputError(f"x_t must be a torch.Tensor, got {type(x_t).__name__}")
        expected = (self.in_channels, self.image_size, self.image_size)
        if x_t.ndim != 4 or tuple(x_t.shape[1:]) != expected:
            raise InputError(
                f"{self.name} backend expects x_t of shape [B, {expected[0]}, {expected[1]}, {expected[2]}], "
                f"got {list(x_t.shape)}"
            )
        if not x_t.is_floating_point():
            raise InputError(f"x_t must be a floating-point tensor (images in [-1, 1]), got {x_t.dtype}")
        param = next(self.parameters(), None)
        if param is not None and (x_t.device != param.device or x_t.dtype != param.dtype):
            raise InputError(
                f"x_t is {x_t.dtype} on {x_t.device} but the {self.name} backend is {param.dtype} on {param.device}; "
                "move it with x_t.to(backend.device, backend.dtype)"
            )
        batch = x_t.shape[0]
        if isinstance(t, Tensor):
            if t.ndim == 0:
                t = t.reshape(1)
            if t.ndim != 1 or t.shape[0] not in (1, batch):
                raise InputError(f"t must be an int or a 1-D tensor of length 1 or {batch}, got shape {list(t.shape)}")
            if t.is_floating_point() and not torch.equal(t, t.round()):
                raise InputError(f"t must hold integer timesteps, got {t.tolist()}")
            t_vec = t.to(device=x_t.device, dtype=torch.long).expand(batch)
        elif isinstance(t, int) and not isinstance(t, bool):
            t_vec = torch.full((batch,), t, dtype=torch.long, device=x_t.device)
        else:
            raise InputError(f"t must be an int or a 1-D tensor, got {type(t).__name__}")
        if bool(((t_vec < 0) | (t_vec >= NUM_TRAIN_TIMESTEPS)).any()):
            raise InputError(f"t must lie in [0, {NUM_TRAIN_TIMESTEPS - 1}], got {t_vec.unique().tolist()}")
        return t_vec

    def freeze(self) -> Backend:
        """Eval mode and no parameter gradients: the U-Net is never trained or edited in place."""
        self.eval()
        self.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> Backend:
        # A frozen model never leaves eval mode (dropout, if any, stays off during editor training).
        return super().train(False)

    @property
    def weights_hash(self) -> str:
        """sha256 of the parameters and buffers (names, dtypes, shapes, bytes): identity for caches and results."""
        if self._weights_hash is None:
            self._weights_hash = state_dict_hash(self.state_dict())
        return self._weights_hash

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def describe(self) -> dict[str, Any]:
        """Provenance of this backend for result files."""
        return {
            "name": self.name,
            "image_size": self.image_size,
            "in_channels": self.in_channels,
            "h_shape": list(self.h_shape),
            "temb_dim": self.temb_dim,
            "weights_hash": self.weights_hash,
            "n_params": sum(p.numel() for p in self.parameters()),
        }


def repeat_rows(bottleneck: Bottleneck, batch: int) -> Bottleneck:
    """The bottleneck with every batch-first tensor (``batch`` rows) stacked twice: rows [0, B) and [B, 2B)."""

    def twice(value: Any) -> Any:
        if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == batch:
            return torch.cat([value, value])
        if isinstance(value, (tuple, list)):
            return type(value)(twice(v) for v in value)
        return value

    return Bottleneck(h=twice(bottleneck.h), skips=twice(bottleneck.skips), temb=twice(bottleneck.temb),
                      t=twice(bottleneck.t), extra={k: twice(v) for k, v in bottleneck.extra.items()})


def state_dict_hash(state_dict: dict[str, Tensor]) -> str:
    """Content hash of a state dict, independent of device and of dict insertion order."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


BACKENDS: Registry[type[Backend]] = Registry("backend", base_cls=Backend)
BACKENDS.register("ddpm", target="asyrp_bench.diffusion.backends.ddpm:DDPMBackend")
BACKENDS.register("diffusers", target="asyrp_bench.diffusion.backends.diffusers_unet:DiffusersBackend")
BACKENDS.register("tiny", target="asyrp_bench.diffusion.backends.tiny:TinyBackend")


def load_backend(
    name: str,
    weights: str | None = None,
    config: str | dict[str, Any] | None = None,
    device: str = "cpu",
) -> Backend:
    """Load a frozen backend by registered name (``asyrp-bench ls backends`` lists them and their presets).

    Args:
        name: ``ddpm``, ``diffusers``, ``tiny`` (or another registered backend).
        weights: a file or folder path, or a key of the weights registry (``asyrp-bench doctor``).
        config: a preset name of that backend, or a config dict.
        device: torch device string.
    """
    backend = BACKENDS.get(name).load(weights=weights, config=config, device=device)
    return backend.freeze()

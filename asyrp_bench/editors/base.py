"""The editor contract: f_t, a small network that predicts Δh from (h_t, temb(t)) (paper §3.2, spec §3).

An editor never sees the image or the text: one editor is trained per (source, target) prompt pair, and it is
conditioned on the timestep only through the frozen U-Net's own time embedding.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from asyrp_bench.errors import ConfigError, InputError
from asyrp_bench.registry import Registry


class Editor(nn.Module):
    """Base class of every f_t variant.

    Subclasses set ``variant`` and build their layers from ``h_shape`` (C, H, W), ``temb_dim`` and their own
    keyword parameters, which are kept in ``config`` so the editor can be rebuilt from a file.

    Attributes:
        variant: the registry name ("additive", ...).
        h_shape: bottleneck shape (C, H, W) this editor was built for.
        temb_dim: width of the time embedding it is conditioned on.
        config: the variant's own parameters (JSON-serialisable).
        metadata: provenance read from or written to the editor file (prompts, n_train_step, t_edit, t_boost,
            backend hash, recipe, ...); empty for a fresh editor.
    """

    variant: ClassVar[str] = "editor"

    def __init__(self, h_shape: tuple[int, int, int], temb_dim: int, **params: Any) -> None:
        super().__init__()
        if len(h_shape) != 3 or any(int(d) <= 0 for d in h_shape):
            raise ConfigError(f"h_shape must be (C, H, W) with positive sizes, got {h_shape!r}")
        if int(temb_dim) <= 0:
            raise ConfigError(f"temb_dim must be positive, got {temb_dim!r}")
        self.h_shape: tuple[int, int, int] = tuple(int(d) for d in h_shape)  # type: ignore[assignment]
        self.temb_dim = int(temb_dim)
        self.config: dict[str, Any] = dict(params)
        self.metadata: dict[str, Any] = {}

    def check_inputs(self, h: Tensor, temb: Tensor | None) -> None:
        if h.ndim != 4 or h.shape[1] != self.h_shape[0]:
            raise InputError(
                f"{self.variant} editor expects h of shape [B, {self.h_shape[0]}, H, W], got {list(h.shape)}"
            )
        if temb is not None and (temb.ndim != 2 or temb.shape != (h.shape[0], self.temb_dim)):
            raise InputError(
                f"{self.variant} editor expects temb of shape [{h.shape[0]}, {self.temb_dim}], got {list(temb.shape)}"
            )

    def forward(self, h: Tensor, temb: Tensor | None) -> Tensor:  # pragma: no cover - abstract
        """Δh with the shape of h. ``temb`` may be None for a time-independent f (spec §3.4 ignore_timesteps)."""
        raise NotImplementedError

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


EDITORS: Registry[type[Editor]] = Registry("editor", base_cls=Editor)
EDITORS.register("additive", target="asyrp_bench.editors.additive:AdditiveEditor")
EDITORS.register("multiplicative", target="asyrp_bench.editors.multiplicative:MultiplicativeEditor")
EDITORS.register("adagn", target="asyrp_bench.editors.adagn:AdaGNEditor")
EDITORS.register("transformer", target="asyrp_bench.editors.transformer:TransformerEditor")

# The CelebA-HQ 256 bottleneck (spec §2.1) at which `asyrp-bench ls editors` counts parameters.
CELEBA_HQ_H_SHAPE = (512, 8, 8)
CELEBA_HQ_TEMB_DIM = 512


def build_editor(variant: str, h_shape: tuple[int, int, int], temb_dim: int, **params: Any) -> Editor:
    """Instantiate a registered variant (unknown names list the valid ones)."""
    cls = EDITORS.get(variant)
    try:
        return cls(h_shape, temb_dim, **params)
    except TypeError as error:
        raise ConfigError(f"bad parameters for editor {variant!r}: {error}") from None

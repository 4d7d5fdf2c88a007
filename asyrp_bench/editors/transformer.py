"""``transformer``: attention over the bottleneck, as the UvA DL2 reproduction's best f_t (seed_study_ft.md).

Δh = out_layer(swish(inject(in_layer(h), temb))) where in_layer and out_layer are transformer encoders over the
bottleneck (default ``pc``: a pixel encoder with H·W tokens of C features, then a channel encoder with C tokens
of H·W features), and the time embedding enters through diffusers' AdaGroupNorm by default (``adagn``; ``add``
and ``mult`` available). Encoders are ``nn.TransformerEncoder`` (post-norm, ReLU) with DL2's defaults: 1 head,
1 layer, feed-forward 2048, dropout 0.1. No residual around the block, no zero-init, PyTorch default init.

Because the channel encoder's token width is H·W, this editor is built for one bottleneck size (C, H, W) and
checks it; ``heads`` must divide C (pixel encoder) and H·W (channel encoder).
"""

from __future__ import annotations

from torch import Tensor

from asyrp_bench.editors.base import Editor
from asyrp_bench.editors.layers import LAYER_TYPES, TembInjection, TokenEncoder
from asyrp_bench.errors import ConfigError, InputError


class TransformerEditor(Editor):
    """Transformer in/out layers with a time-embedding injection between them (7.4 M parameters at 512×8×8 pc)."""

    variant = "transformer"

    def __init__(
        self,
        h_shape: tuple[int, int, int],
        temb_dim: int,
        layer_type: str = "pc",
        injection: str = "adagn",
        heads: int = 1,
        layers: int = 1,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        groups: int = 32,
        use_timestep: bool = True,
    ) -> None:
        super().__init__(
            h_shape, temb_dim, layer_type=layer_type, injection=injection, heads=heads, layers=layers,
            dim_feedforward=dim_feedforward, dropout=dropout, groups=groups, use_timestep=use_timestep,
        )
        for name, value in (("heads", heads), ("layers", layers), ("dim_feedforward", dim_feedforward)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"transformer editor: {name} must be a positive integer, got {value!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"transformer editor: dropout must lie in [0, 1), got {dropout!r}")
        if layer_type not in LAYER_TYPES:
            raise ConfigError(f"transformer editor: layer_type {layer_type!r} is not one of {', '.join(LAYER_TYPES)}")
        self.use_timestep = use_timestep
        args = (self.h_shape, layer_type, heads, layers, dim_feedforward, float(dropout))
        self.in_layer = TokenEncoder(*args)
        self.injection_block = TembInjection(injection, self.h_shape[0], self.temb_dim, groups)
        self.out_layer = TokenEncoder(*args)

    def check_inputs(self, h: Tensor, temb: Tensor | None) -> None:
        super().check_inputs(h, temb)
        if tuple(h.shape[2:]) != self.h_shape[1:]:
            raise InputError(
                f"transformer editor was built for a {self.h_shape[1]}×{self.h_shape[2]} bottleneck "
                f"(its channel tokens have H·W features), got h of shape {list(h.shape)}"
            )

    def forward(self, h: Tensor, temb: Tensor | None) -> Tensor:
        self.check_inputs(h, temb)
        a = self.injection_block(self.in_layer(h), temb if self.use_timestep else None)
        return self.out_layer(a)

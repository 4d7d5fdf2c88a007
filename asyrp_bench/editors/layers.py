"""Building blocks shared by the f_t variants (seed_study_ft.md: in_layer → time-embedding injection → out_layer).

* :func:`group_count` - GroupNorm groups that fit any bottleneck width (the paper's 32 at 512 channels).
* :class:`TembInjection` - the three ways the U-Net's time embedding enters a = in_layer(h): ``add`` (the
  paper's DeltaBlock), ``mult`` and ``adagn`` (diffusers' ``AdaGroupNorm``), each followed by swish.
* :class:`TokenEncoder` - a transformer encoder over the bottleneck's positions (``pixel``) or channels
  (``channel``), or both in sequence (``pc`` / ``cp``), as the UvA DL2 reproduction's f_t.
* :class:`ConvTembEditor` - 1×1 conv → injection → 1×1 conv, the base of ``multiplicative`` and ``adagn``.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn
from torch.nn import functional as F

from asyrp_bench.editors.base import Editor
from asyrp_bench.errors import ConfigError

INJECTIONS = ("add", "mult", "adagn")
LAYER_TYPES = ("pixel", "channel", "pc", "cp")


def group_count(channels: int, preferred: int = 32) -> int:
    """GroupNorm groups for ``channels``: the largest divisor of ``channels`` that is ≤ ``preferred`` (the paper's
    32) and leaves at least 2 channels per group (32 at the 512-channel bottleneck, 16 at 32 channels, 4 at 8).

    Why at least 2: with one channel per group the normalisation removes any per-channel shift or scale, so an
    added or multiplied time embedding (``add`` / ``mult`` injection) would have no effect at all on small (tiny)
    bottlenecks. The choice depends only on (channels, preferred), so an editor rebuilt from its saved config gets
    the groups it was trained with.
    """
    if isinstance(preferred, bool) or not isinstance(preferred, int) or preferred < 1:
        raise ConfigError(f"groups must be a positive integer, got {preferred!r}")
    most = min(preferred, max(channels // 2, 1))
    for groups in range(most, 0, -1):
        if channels % groups == 0:
            return groups
    raise ConfigError(f"no GroupNorm group count for {channels} channels")  # pragma: no cover


class TembInjection(nn.Module):
    """a ↦ swish(inject(a, temb)) for a [B, C, H, W] and temb [B, temb_dim] (seed_study_ft.md, axis 2).

    ``add``: GroupNorm(a + Linear(swish(temb))), eps 1e-6 (the paper's DeltaBlock, spec §3.1).
    ``mult``: GroupNorm(a · Linear(swish(temb))), eps 1e-6 (a plain product, not 1 + scale, as DL2).
    ``adagn``: diffusers ``AdaGroupNorm`` (no activation on temb, eps 1e-5): GroupNorm without affine, then
    a·(1 + scale) + shift with (scale, shift) = Linear(temb).

    With ``temb=None`` (a time-independent f, spec §3.4) ``add`` and ``mult`` skip the temb term and keep the
    affine GroupNorm and swish (as the official DeltaBlock); ``adagn`` applies its GroupNorm with scale = shift = 0.
    Submodule names ``temb_proj`` / ``norm2`` are the released DeltaBlock's, so the additive editor's keys stay
    key-for-key compatible if it is ever built from this block.
    """

    def __init__(self, kind: str, channels: int, temb_dim: int, groups: int = 32) -> None:
        super().__init__()
        if kind not in INJECTIONS:
            raise ConfigError(f"unknown time-embedding injection {kind!r}; choose one of {', '.join(INJECTIONS)}")
        self.kind = kind
        n_groups = group_count(channels, groups)
        if kind == "adagn":
            from diffusers.models.normalization import AdaGroupNorm

            # seed_study_ft.md: "diffusers ships this layer as AdaGroupNorm: use it".
            self.adagn = AdaGroupNorm(temb_dim, channels, n_groups, act_fn=None, eps=1e-5)
        else:
            self.temb_proj = nn.Linear(temb_dim, channels)
            self.norm2 = nn.GroupNorm(n_groups, channels, eps=1e-6, affine=True)

    def forward(self, a: Tensor, temb: Tensor | None) -> Tensor:
        if self.kind == "adagn":
            if temb is None:
                a = F.group_norm(a, self.adagn.num_groups, eps=self.adagn.eps)
            else:
                a = self.adagn(a, temb)
            return F.silu(a)
        if temb is not None:
            projected = self.temb_proj(F.silu(temb))[:, :, None, None]
            a = a + projected if self.kind == "add" else a * projected
        return F.silu(self.norm2(a))


def _encoder(d_model: int, heads: int, layers: int, dim_feedforward: int, dropout: float, axis: str) -> nn.Module:
    if d_model % heads != 0:
        raise ConfigError(
            f"transformer editor: {heads} heads do not divide the {axis} encoder's token width {d_model} "
            f"({'channels C' if axis == 'pixel' else 'positions H·W'}); choose heads that divide {d_model}"
        )
    # seed_study_ft.md: a standard nn.TransformerEncoder (post-norm, ReLU, batch_first).
    layer = nn.TransformerEncoderLayer(
        d_model, heads, dim_feedforward=dim_feedforward, dropout=dropout, activation="relu", batch_first=True,
        norm_first=False,
    )
    return nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)


class TokenEncoder(nn.Module):
    """A shape-preserving transformer over h [B, C, H, W].

    ``pixel``: H·W tokens of C features; ``channel``: C tokens of H·W features (the flattened map);
    ``pc`` / ``cp``: pixel then channel encoder, or the reverse. No positional encoding (as DL2): pixel attention
    is permutation-equivariant over positions; channel tokens carry the spatial layout in their features.
    """

    def __init__(
        self,
        h_shape: tuple[int, int, int],
        layer_type: str,
        heads: int,
        layers: int,
        dim_feedforward: int,
        dropout: float,
    ) -> None:
        super().__init__()
        if layer_type not in LAYER_TYPES:
            raise ConfigError(f"unknown transformer layer type {layer_type!r}; choose one of {', '.join(LAYER_TYPES)}")
        channels, height, width = h_shape
        self.order = {"pixel": ("pixel",), "channel": ("channel",), "pc": ("pixel", "channel"),
                      "cp": ("channel", "pixel")}[layer_type]
        self.pixel = _encoder(channels, heads, layers, dim_feedforward, dropout, "pixel") if "pixel" in self.order \
            else None
        self.channel = _encoder(height * width, heads, layers, dim_feedforward, dropout, "channel") \
            if "channel" in self.order else None

    def forward(self, h: Tensor) -> Tensor:
        batch, channels, height, width = h.shape
        x = h
        for axis in self.order:
            if axis == "pixel":
                tokens = x.flatten(2).transpose(1, 2)  # [B, H·W, C]
                x = self.pixel(tokens).transpose(1, 2).reshape(batch, channels, height, width)  # type: ignore[misc]
            else:
                tokens = x.flatten(2)  # [B, C, H·W]
                x = self.channel(tokens).reshape(batch, channels, height, width)  # type: ignore[misc]
        return x


class ConvTembEditor(Editor):
    """1×1 conv → :class:`TembInjection` → 1×1 conv: the paper's f_t with a chosen injection (seed_study_ft.md).

    Subclasses fix ``injection``. Keys: ``conv1``, ``injection.*``, ``conv2``. PyTorch default init, no residual,
    no dropout; ``zero_init=True`` zeroes conv2 (a deliberate change: training starts from Δh = 0).
    """

    injection: ClassVar[str] = "add"

    def __init__(
        self,
        h_shape: tuple[int, int, int],
        temb_dim: int,
        groups: int = 32,
        zero_init: bool = False,
        use_timestep: bool = True,
    ) -> None:
        super().__init__(h_shape, temb_dim, groups=groups, zero_init=zero_init, use_timestep=use_timestep)
        channels = self.h_shape[0]
        self.use_timestep = use_timestep
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=1)
        self.injection_block = TembInjection(self.injection, channels, self.temb_dim, groups)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=1)
        if zero_init:
            nn.init.zeros_(self.conv2.weight)
            nn.init.zeros_(self.conv2.bias)

    def forward(self, h: Tensor, temb: Tensor | None) -> Tensor:
        self.check_inputs(h, temb)
        a = self.injection_block(self.conv1(h), temb if self.use_timestep else None)
        return self.conv2(a)

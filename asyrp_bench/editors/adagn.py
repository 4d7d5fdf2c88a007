"""``adagn``: the time embedding predicts GroupNorm scale and shift (seed_study_ft.md, ``adagn``).

Δh = conv2(swish(AdaGroupNorm(conv1(h), temb))) with diffusers' ``AdaGroupNorm`` (no activation on temb,
eps 1e-5): GroupNorm without affine, then a·(1 + scale) + shift, (scale, shift) = Linear(temb → 2C).
1,050,624 parameters at C = temb_dim = 512.
"""

from __future__ import annotations

from asyrp_bench.editors.layers import ConvTembEditor


class AdaGNEditor(ConvTembEditor):
    """1×1 conv → AdaGroupNorm(temb) → swish → 1×1 conv."""

    variant = "adagn"
    injection = "adagn"

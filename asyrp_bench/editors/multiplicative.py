"""``multiplicative``: the DeltaBlock with the time embedding multiplying the features (seed_study_ft.md, ``mult``).

Δh = conv2(swish(GroupNorm(conv1(h) · Linear(swish(temb))))) — a plain product, not 1 + scale, as the DL2
reproduction's ``--db_emb_type mult``. Same parameter count as ``additive`` (788,992 at C = temb_dim = 512).
"""

from __future__ import annotations

from asyrp_bench.editors.layers import ConvTembEditor


class MultiplicativeEditor(ConvTembEditor):
    """1×1 conv → ·Linear(swish(temb)) → GroupNorm(32, eps 1e-6) → swish → 1×1 conv."""

    variant = "multiplicative"
    injection = "mult"

"""``additive``: the paper's DeltaBlock (spec §3.1), key-compatible with the released Asyrp checkpoints.

Δh = conv2(swish(GroupNorm(conv1(h) + temb_proj(swish(temb))))) — two 1×1 convs, i.e. a per-pixel MLP over the
channels shared across positions, conditioned on t by adding a projection of the U-Net's time embedding. No
residual, no dropout, PyTorch default initialisation (spec §3.3: the released weights have default-init
statistics), so Δh is a small random perturbation at step 0. ``zero_init=True`` zeroes conv2 (a deliberate
change from the paper: training then starts from Δh = 0).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from asyrp_bench.editors.base import Editor
from asyrp_bench.editors.layers import group_count


class AdditiveEditor(Editor):
    """The DeltaBlock: 788,992 parameters at C = temb_dim = 512 (registered lazily in editors/base.py)."""

    variant = "additive"

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
        self.temb_proj = nn.Linear(self.temb_dim, channels)
        # eps 1e-6 as the ermongroup Normalize the released DeltaBlocks were trained with (spec §3.1).
        self.norm2 = nn.GroupNorm(group_count(channels, groups), channels, eps=1e-6, affine=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=1)
        if zero_init:
            nn.init.zeros_(self.conv2.weight)
            nn.init.zeros_(self.conv2.bias)

    def forward(self, h: Tensor, temb: Tensor | None) -> Tensor:
        self.check_inputs(h, temb)
        a = self.conv1(h)
        if temb is not None and self.use_timestep:
            a = a + self.temb_proj(F.silu(temb))[:, :, None, None]
        return self.conv2(F.silu(self.norm2(a)))

"""Small test doubles that follow the real contracts (a Backend with call counters)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from asyrp_bench.diffusion.backends.base import Backend, Bottleneck


def sinusoidal(t: Tensor, dim: int) -> Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - 1))
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class ToyBackend(Backend):
    """A 2-level conv U-Net: h is [B, 8, S/2, S/2]; counts encode and decode calls."""

    name = "toy"

    def __init__(self, size: int = 8, hidden: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.image_size, self.in_channels, self.temb_dim = size, 3, 16
        self.h_shape = (hidden, size // 2, size // 2)
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.temb_mlp = nn.Sequential(nn.Linear(16, 16), nn.SiLU(), nn.Linear(16, 16))
        self.conv_in = nn.Conv2d(3, hidden, 3, padding=1)
        self.down = nn.Conv2d(hidden, hidden, 3, stride=2, padding=1)
        self.temb_proj = nn.Linear(16, hidden)
        self.up = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv_out = nn.Conv2d(2 * hidden, 3, 3, padding=1)
        with torch.no_grad():
            self.conv_out.weight.mul_(0.3)
        torch.random.set_rng_state(generator_state)
        self.n_encode = 0
        self.n_decode = 0
        self.freeze()

    @classmethod
    def load(cls, weights=None, config=None, device="cpu"):
        return cls(**(config or {})).to(device)

    def _encode(self, x_t: Tensor, t: Tensor) -> Bottleneck:
        self.n_encode += 1
        temb = self.temb_mlp(sinusoidal(t, 16))
        skip = F.silu(self.conv_in(x_t))
        h = torch.tanh(self.down(skip) + self.temb_proj(temb)[:, :, None, None])
        return Bottleneck(h=h, skips=(skip,), temb=temb, t=t)

    def _decode(self, bottleneck: Bottleneck, h: Tensor) -> Tensor:
        self.n_decode += 1
        up = F.silu(self.up(F.interpolate(h, scale_factor=2.0, mode="nearest")))
        return self.conv_out(torch.cat([up, bottleneck.skips[0]], dim=1))

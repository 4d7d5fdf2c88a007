"""Small models in the real on-disk formats of the backends (ermongroup checkpoints, diffusers folders)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from asyrp_bench.diffusion.backends.ddpm import DDPMBackend
from asyrp_bench.diffusion.backends.tiny import init_weights_

# A small ermongroup config that still has every structural feature of the 256 px models: a channel change
# between levels (nin_shortcut in down and up), attention at one level, 2 res blocks, 3 levels.
SMALL_DDPM: dict[str, Any] = {
    "ch": 16, "out_ch": 3, "ch_mult": [1, 2, 2], "num_res_blocks": 2, "attn_resolutions": [8], "dropout": 0.0,
    "in_channels": 3, "resolution": 16, "resamp_with_conv": True, "num_groups": 8,
}

# The CelebA-HQ / LSUN weight layout (same keys and shapes as celeba_hq.ckpt) at 32 px: attention still sits
# at level 4 (2×2 here instead of 16×16), so a forward pass costs 1/64 of the 256 px one.
CELEBA_LAYOUT_32PX: dict[str, Any] = {**DDPMBackend.presets["celeba_hq"], "resolution": 32, "attn_resolutions": [2]}


def random_ddpm_state_dict(config: dict[str, Any] | str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded random ermongroup ``Model`` state dict (PyTorch's default init law, conv_out unscaled)."""
    model = DDPMBackend.build(config, device="meta").to_empty(device="cpu")
    init_weights_(model, torch.Generator().manual_seed(seed))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def small_unet_kwargs(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sample_size": 16, "in_channels": 3, "out_channels": 3, "layers_per_block": 1,
        "block_out_channels": (16, 32), "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D"), "norm_num_groups": 8,
    }
    base.update(overrides)
    return base


def save_unet_folder(path: Path, seed: int = 0, safe_serialization: bool = True, **overrides: Any) -> Any:
    """Save a seeded random UNet2DModel folder (config.json + weights) and return the model (eval)."""
    from diffusers import UNet2DModel

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        unet = UNet2DModel(**small_unet_kwargs(**overrides)).eval()
    finally:
        torch.random.set_rng_state(state)
    unet.save_pretrained(path, safe_serialization=safe_serialization)
    return unet

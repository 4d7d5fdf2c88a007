"""Convert ermongroup / SDEdit DDPM weights (``celeba_hq.ckpt`` layout) into a diffusers ``UNet2DModel``.

A user utility and the proof that the ``ddpm`` and ``diffusers`` backends agree (DESIGN §4)::

    from asyrp_bench.diffusion.convert import ddpm_to_diffusers
    sd = torch.load("celeba_hq.ckpt", map_location="cpu", weights_only=True)
    unet = ddpm_to_diffusers(sd, "celeba_hq")       # or a config dict
    unet.save_pretrained("ddpm-celeba-hq-diffusers")  # then: load_backend("diffusers", weights=that_folder)

Config mapping (spec §8.2; the same settings the google/ddpm-* diffusers folders use):

==========================  ==================================================================================
ermongroup ``model:``       UNet2DModel
==========================  ==================================================================================
resolution, in/out_ch       sample_size, in_channels, out_channels
ch · ch_mult                block_out_channels
num_res_blocks              layers_per_block (up blocks get num_res_blocks + 1 resnets in both)
attn_resolutions            AttnDownBlock2D / AttnUpBlock2D at those levels, DownBlock2D / UpBlock2D elsewhere
[sin, cos] sinusoid         flip_sin_to_cos=False, freq_shift=1 (exponent divides by half_dim - 1)
pad (0,1,0,1) + stride 2    downsample_padding=0 (diffusers then pads right/bottom itself)
single-head attention       attention_head_dim=None (head dim = channels, one head)
GroupNorm(32, eps 1e-6)     norm_num_groups=num_groups, norm_eps=1e-6; act_fn="silu"
==========================  ==================================================================================

Key mapping: ``temb.dense.{0,1}`` -> ``time_embedding.linear_{1,2}``; ``down.L.block.i`` ->
``down_blocks.L.resnets.i`` (``temb_proj`` -> ``time_emb_proj``, ``nin_shortcut`` -> ``conv_shortcut``);
``down.L.attn.i.{norm,q,k,v,proj_out}`` -> ``down_blocks.L.attentions.i.{group_norm,to_q,to_k,to_v,to_out.0}``
(1×1 conv weights [C, C, 1, 1] -> linear [C, C]); ``down.L.downsample.conv`` -> ``down_blocks.L.downsamplers.0.conv``;
``mid.block_1 / attn_1 / block_2`` -> ``mid_block.resnets.0 / attentions.0 / resnets.1``; ``up.L`` ->
``up_blocks.(n-1-L)`` (ermongroup indexes up levels by resolution, diffusers by execution order), ``upsample.conv``
-> ``upsamplers.0.conv``; ``norm_out`` -> ``conv_norm_out``; ``conv_out`` -> ``conv_out``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from asyrp_bench.diffusion.backends.checkpoint import check_state_dict, strip_prefix, to_float32
from asyrp_bench.diffusion.backends.ddpm import DDPMBackend, DDPMConfig
from asyrp_bench.errors import CheckpointError, ConfigError

_RESNET = {"norm1": "norm1", "conv1": "conv1", "temb_proj": "time_emb_proj", "norm2": "norm2", "conv2": "conv2",
           "nin_shortcut": "conv_shortcut"}
_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def unet2d_config(config: DDPMConfig) -> dict[str, Any]:
    """The ``UNet2DModel`` keyword arguments equivalent to an ermongroup DDPM config."""
    if not config.resamp_with_conv:
        raise ConfigError(
            "ddpm_to_diffusers: resamp_with_conv=False (average-pool / plain nearest resampling) has no UNet2DModel "
            "equivalent; only the released resamp_with_conv=True models convert"
        )
    attn = [res in config.attn_resolutions for res in config.level_resolutions]
    return {
        "sample_size": config.resolution,
        "in_channels": config.in_channels,
        "out_channels": config.out_ch,
        "block_out_channels": tuple(config.ch * m for m in config.ch_mult),
        "layers_per_block": config.num_res_blocks,
        "down_block_types": tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        "up_block_types": tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        "downsample_padding": 0,
        "flip_sin_to_cos": False,
        "freq_shift": 1,
        "norm_eps": 1e-6,
        "norm_num_groups": config.num_groups,
        "attention_head_dim": None,
        "act_fn": "silu",
        "time_embedding_type": "positional",
        "mid_block_scale_factor": 1,
        "center_input_sample": False,
        "dropout": config.dropout,
    }


def map_key(key: str, n_levels: int) -> str:
    """The diffusers name of one ermongroup state-dict key (raises CheckpointError for an unknown key)."""
    parts = key.split(".")
    param = parts[-1]
    if (m := re.fullmatch(r"temb\.dense\.([01])\.(weight|bias)", key)) is not None:
        return f"time_embedding.linear_{int(m.group(1)) + 1}.{m.group(2)}"
    if parts[0] in ("conv_in", "conv_out") and len(parts) == 2:
        return key
    if parts[0] == "norm_out" and len(parts) == 2:
        return f"conv_norm_out.{param}"
    if parts[0] == "mid" and len(parts) == 4:
        block, layer = parts[1], parts[2]
        if block in ("block_1", "block_2") and layer in _RESNET:
            return f"mid_block.resnets.{0 if block == 'block_1' else 1}.{_RESNET[layer]}.{param}"
        if block == "attn_1" and layer in _ATTN:
            return f"mid_block.attentions.0.{_ATTN[layer]}.{param}"
    if parts[0] in ("down", "up") and len(parts) >= 5 and parts[1].isdigit():
        level = int(parts[1])
        prefix = f"down_blocks.{level}" if parts[0] == "down" else f"up_blocks.{n_levels - 1 - level}"
        kind = parts[2]
        if kind == "block" and len(parts) == 6 and parts[4] in _RESNET:
            return f"{prefix}.resnets.{parts[3]}.{_RESNET[parts[4]]}.{param}"
        if kind == "attn" and len(parts) == 6 and parts[4] in _ATTN:
            return f"{prefix}.attentions.{parts[3]}.{_ATTN[parts[4]]}.{param}"
        if kind in ("downsample", "upsample") and parts[3] == "conv" and len(parts) == 5:
            return f"{prefix}.{kind}rs.0.conv.{param}"
    raise CheckpointError(f"ddpm_to_diffusers: no diffusers counterpart for key {key!r}")


def convert_state_dict(state_dict: Mapping[str, Tensor], config: DDPMConfig) -> dict[str, Tensor]:
    """Rename (and reshape 1×1 attention convs to linear weights) an ermongroup state dict for UNet2DModel."""
    out: dict[str, Tensor] = {}
    n_levels = len(config.ch_mult)
    for key, value in state_dict.items():
        new = map_key(key, n_levels)
        if re.search(r"\.attentions\.\d+\.to_(q|k|v|out\.0)\.weight$", new):
            value = value.reshape(value.shape[0], value.shape[1])  # Conv2d 1×1 [C, C, 1, 1] -> Linear [C, C]
        out[new] = value
    return out


def ddpm_to_diffusers(
    state_dict: Mapping[str, Tensor], ddpm_config: str | Mapping[str, Any] | DDPMConfig = "celeba_hq"
) -> Any:
    """A diffusers ``UNet2DModel`` (eval mode, float32) computing the same ε as the ermongroup model.

    Args:
        state_dict: the ermongroup ``Model`` state dict (``celeba_hq.ckpt``; a ``module.`` prefix is removed).
        ddpm_config: a :class:`DDPMBackend` preset name (``celeba_hq``, ``church_outdoor``, ``bedroom``), a config
            dict or a :class:`DDPMConfig`.

    The state dict is checked key for key against the ermongroup architecture first, and the converted one
    against the UNet2DModel, so a wrong config fails loudly instead of leaving weights random.
    """
    from diffusers import UNet2DModel

    config = ddpm_config if isinstance(ddpm_config, DDPMConfig) else DDPMBackend.resolve_config(ddpm_config)[0]
    unet_kwargs = unet2d_config(config)  # rejects configs UNet2DModel cannot express before reading weights
    state_dict = to_float32(strip_prefix(state_dict))
    reference = DDPMBackend.build(config, device="meta").state_dict()
    check_state_dict({k: tuple(v.shape) for k, v in reference.items()}, state_dict, "ddpm state dict")
    converted = convert_state_dict(state_dict, config)
    with torch.device("meta"):
        unet = UNet2DModel(**unet_kwargs)
    expected = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    check_state_dict(expected, converted, "converted state dict")
    unet.load_state_dict(converted, strict=True, assign=True)
    return unet.eval()

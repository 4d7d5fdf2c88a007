"""ddpm -> diffusers conversion: the same random weights give the same h and ε in both backends (DESIGN §4)."""

from __future__ import annotations

import pytest
import torch

from asyrp_bench.diffusion.backends import load_backend
from asyrp_bench.diffusion.backends.ddpm import DDPMBackend
from asyrp_bench.diffusion.backends.diffusers_unet import DiffusersBackend
from asyrp_bench.diffusion.convert import ddpm_to_diffusers, map_key, unet2d_config
from asyrp_bench.errors import CheckpointError, ConfigError
from tests.backend_files import CELEBA_LAYOUT_32PX, SMALL_DDPM, random_ddpm_state_dict

NO_ATTENTION = {**SMALL_DDPM, "attn_resolutions": [], "ch_mult": [1, 2, 2, 4], "num_res_blocks": 1}


def _ddpm(config, state_dict) -> DDPMBackend:
    model = DDPMBackend.build(config, device="meta")
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.freeze()


def _compare(config, seed: int, batch: int = 2) -> tuple[float, float]:
    state_dict = random_ddpm_state_dict(config, seed=seed)
    ours = _ddpm(config, state_dict)
    theirs = DiffusersBackend(ddpm_to_diffusers(state_dict, config)).freeze()
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, ours.image_size, ours.image_size, generator=generator)
    t = torch.tensor([0, 999, 321, 640][:batch])
    with torch.no_grad():
        a, b = ours.encode(x, t), theirs.encode(x, t)
        assert a.h.shape == b.h.shape and len(a.skips) == len(b.skips)
        h_diff = (a.h - b.h).abs().max().item()
        torch.testing.assert_close(a.temb, b.temb, atol=1e-5, rtol=0)
        eps_a, eps_b = ours.decode(a), theirs.decode(b)
        assert eps_a.abs().mean() > 0.01  # a real signal, not two zeros agreeing
        return h_diff, (eps_a - eps_b).abs().max().item()


@pytest.mark.parametrize("config", [SMALL_DDPM, NO_ATTENTION], ids=["small", "no_attention"])
def test_converted_small_models_agree(config):
    h_diff, eps_diff = _compare(config, seed=11, batch=4)
    assert h_diff < 1e-4 and eps_diff < 1e-4


def test_converted_celeba_layout_agrees():
    """Every key and shape of celeba_hq.ckpt (113.7 M random parameters), run at 32 px for speed."""
    h_diff, eps_diff = _compare(CELEBA_LAYOUT_32PX, seed=12)
    assert h_diff < 1e-4 and eps_diff < 1e-4


def test_converted_model_saves_as_a_folder_the_diffusers_backend_loads(tmp_path):
    state_dict = random_ddpm_state_dict(SMALL_DDPM, seed=13)
    ddpm_to_diffusers(state_dict, SMALL_DDPM).save_pretrained(tmp_path / "converted")
    torch.save(state_dict, tmp_path / "model.ckpt")
    diffusers_backend = load_backend("diffusers", weights=str(tmp_path / "converted"))
    ddpm_backend = load_backend("ddpm", weights=str(tmp_path / "model.ckpt"), config=SMALL_DDPM)
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(diffusers_backend(x, 77), ddpm_backend(x, 77), atol=1e-4, rtol=0)


def test_config_mapping_for_the_256px_models():
    config = unet2d_config(DDPMBackend.resolve_config("celeba_hq")[0])
    assert config["block_out_channels"] == (128, 128, 256, 256, 512, 512)
    assert config["down_block_types"] == ("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D")
    assert config["up_block_types"] == ("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4
    assert (config["layers_per_block"], config["downsample_padding"], config["flip_sin_to_cos"]) == (2, 0, False)
    assert (config["freq_shift"], config["norm_eps"], config["attention_head_dim"]) == (1, 1e-6, None)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("temb.dense.0.weight", "time_embedding.linear_1.weight"),
        ("down.2.block.0.nin_shortcut.weight", "down_blocks.2.resnets.0.conv_shortcut.weight"),
        ("down.4.attn.1.proj_out.bias", "down_blocks.4.attentions.1.to_out.0.bias"),
        ("down.0.downsample.conv.weight", "down_blocks.0.downsamplers.0.conv.weight"),
        ("mid.attn_1.norm.weight", "mid_block.attentions.0.group_norm.weight"),
        ("mid.block_2.temb_proj.bias", "mid_block.resnets.1.time_emb_proj.bias"),
        ("up.5.block.2.conv1.weight", "up_blocks.0.resnets.2.conv1.weight"),
        ("up.4.attn.2.q.weight", "up_blocks.1.attentions.2.to_q.weight"),
        ("up.1.upsample.conv.bias", "up_blocks.4.upsamplers.0.conv.bias"),
        ("norm_out.bias", "conv_norm_out.bias"),
    ],
)
def test_key_mapping(key, expected):
    assert map_key(key, n_levels=6) == expected


def test_conversion_errors_are_explicit():
    state_dict = random_ddpm_state_dict(SMALL_DDPM, seed=0)
    with pytest.raises(CheckpointError, match=r"no diffusers counterpart for key 'up\.0\.block\.0\.extra\.weight'"):
        map_key("up.0.block.0.extra.weight", n_levels=3)
    with pytest.raises(CheckpointError, match="ddpm state dict does not match"):
        ddpm_to_diffusers(state_dict, {**SMALL_DDPM, "num_res_blocks": 1})
    with pytest.raises(ConfigError, match="resamp_with_conv=False"):
        ddpm_to_diffusers(state_dict, {**SMALL_DDPM, "resamp_with_conv": False})

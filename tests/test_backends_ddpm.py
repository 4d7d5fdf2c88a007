"""The ermongroup DDPM architecture against spec §8.2 (names, shapes, parameter count) and its config rules."""

from __future__ import annotations

import re

import pytest
import torch

from asyrp_bench.diffusion.backends.ddpm import DDPMBackend, DDPMConfig, timestep_embedding
from asyrp_bench.errors import ConfigError


@pytest.fixture(scope="module")
def celeba_shapes() -> dict[str, tuple[int, ...]]:
    """The full CelebA-HQ 256 model, built once on the meta device (no memory, no RNG)."""
    model = DDPMBackend.build("celeba_hq")
    assert (model.image_size, model.h_shape, model.temb_dim) == (256, (512, 8, 8), 512)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_celeba_parameter_count_is_113_7_million(celeba_shapes):
    n_params = sum(torch.Size(s).numel() for s in celeba_shapes.values())
    assert n_params == 113_673_219
    assert round(n_params / 1e6, 1) == 113.7
    assert len(celeba_shapes) == 450


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        ("temb.dense.0.weight", (512, 128)),
        ("temb.dense.0.bias", (512,)),
        ("temb.dense.1.weight", (512, 512)),
        ("conv_in.weight", (128, 3, 3, 3)),
        ("down.0.block.0.conv1.weight", (128, 128, 3, 3)),
        ("down.0.block.1.temb_proj.weight", (128, 512)),
        ("down.2.block.0.nin_shortcut.weight", (256, 128, 1, 1)),
        ("down.4.block.0.nin_shortcut.weight", (512, 256, 1, 1)),
        ("down.4.attn.0.q.weight", (512, 512, 1, 1)),
        ("down.4.attn.1.proj_out.bias", (512,)),
        ("down.0.downsample.conv.weight", (128, 128, 3, 3)),
        ("down.4.downsample.conv.weight", (512, 512, 3, 3)),
        ("mid.block_1.norm1.weight", (512,)),
        ("mid.attn_1.k.weight", (512, 512, 1, 1)),
        ("mid.block_2.conv2.weight", (512, 512, 3, 3)),
        ("up.5.block.0.conv1.weight", (512, 1024, 3, 3)),
        ("up.5.block.2.conv1.weight", (512, 1024, 3, 3)),  # skip of block 2 = ch·in_ch_mult[5] = 512
        ("up.4.block.2.conv1.weight", (512, 768, 3, 3)),  # skip of block 2 = ch·in_ch_mult[4] = 256
        ("up.4.block.2.nin_shortcut.weight", (512, 768, 1, 1)),
        ("up.4.attn.2.v.weight", (512, 512, 1, 1)),
        ("up.0.block.2.conv1.weight", (128, 256, 3, 3)),
        ("up.1.upsample.conv.weight", (128, 128, 3, 3)),
        ("up.5.upsample.conv.weight", (512, 512, 3, 3)),
        ("norm_out.weight", (128,)),
        ("conv_out.weight", (3, 128, 3, 3)),
        ("conv_out.bias", (3,)),
    ],
)
def test_celeba_keys_and_shapes_match_spec(celeba_shapes, key, shape):
    assert celeba_shapes[key] == shape


def _modules(shapes, pattern: str) -> set[str]:
    return {m.group(0) for k in shapes if (m := re.match(pattern, k))}


def test_celeba_block_structure(celeba_shapes):
    # nin_shortcut in the down path only where channels change: level 2 and level 4, block 0.
    assert _modules(celeba_shapes, r"down\.\d\.block\.\d\.nin_shortcut") == {
        "down.2.block.0.nin_shortcut", "down.4.block.0.nin_shortcut"}
    # Attention only at level 4 (16×16) plus the middle block; 2 down, 3 up.
    assert _modules(celeba_shapes, r"(down|up)\.\d\.attn\.\d") == {
        "down.4.attn.0", "down.4.attn.1", "up.4.attn.0", "up.4.attn.1", "up.4.attn.2"}
    assert _modules(celeba_shapes, r"mid\.\w+") == {"mid.block_1", "mid.attn_1", "mid.block_2"}
    # Up levels have 3 blocks, every one with a nin_shortcut (its input includes a skip).
    assert _modules(celeba_shapes, r"up\.\d\.block\.\d") == {f"up.{lv}.block.{b}" for lv in range(6) for b in range(3)}
    assert _modules(celeba_shapes, r"up\.\d\.block\.\d\.nin_shortcut") == {
        f"up.{lv}.block.{b}.nin_shortcut" for lv in range(6) for b in range(3)}
    assert _modules(celeba_shapes, r"down\.\d\.downsample") == {f"down.{lv}.downsample" for lv in range(5)}
    assert _modules(celeba_shapes, r"up\.\d\.upsample") == {f"up.{lv}.upsample" for lv in range(1, 6)}
    assert not any("conv_shortcut" in k for k in celeba_shapes)


def test_lsun_presets_share_the_celeba_architecture(celeba_shapes):
    for preset in ("church_outdoor", "bedroom"):
        shapes = {k: tuple(v.shape) for k, v in DDPMBackend.build(preset).state_dict().items()}
        assert shapes == celeba_shapes
        assert DDPMBackend.presets[preset]["weights"] == f"ddpm_{preset}"


def test_timestep_embedding_matches_diffusers_sin_cos_order():
    from diffusers.models.embeddings import get_timestep_embedding

    t = torch.tensor([0, 1, 17, 500, 999])
    ours = timestep_embedding(t, 128)
    reference = get_timestep_embedding(t, 128, flip_sin_to_cos=False, downscale_freq_shift=1)
    # diffusers rounds the float32 frequencies differently; at arguments up to 999 rad that is ~3e-5.
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)
    assert not torch.allclose(ours, get_timestep_embedding(t, 128, flip_sin_to_cos=True, downscale_freq_shift=1))
    assert torch.allclose(ours[:, 0], torch.sin(t.float()))  # [sin | cos]: the first column is sin(t·1)


def test_config_dict_accepts_the_ermongroup_model_section_verbatim():
    section = {
        "type": "simple", "in_channels": 3, "out_ch": 3, "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1,
        "attn_resolutions": [8], "dropout": 0.1, "var_type": "fixedsmall", "ema_rate": 0.999, "ema": True,
        "resamp_with_conv": True, "resolution": 16,
    }
    model = DDPMBackend.build(section)
    assert model.h_shape == (64, 8, 8) and model.config.dropout == 0.1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"channels": 3}, r"unknown key\(s\) \['channels'\].*Required keys: ch, out_ch"),
        ({"ch": None}, r"ch must be an integer"),
        ({"ch": 20}, r"divisible by num_groups=32"),
        ({"resolution": 100}, r"divisible by 2\^\(len\(ch_mult\)-1\) = 32"),
        ({"attn_resolutions": [12]}, r"attn_resolutions \[12\] never occur"),
        ({"dropout": 1.5}, r"dropout must lie in \[0, 1\)"),
    ],
)
def test_bad_config_values_raise_config_error(change, message):
    config = {**DDPMBackend.presets["celeba_hq"], **change}
    with pytest.raises(ConfigError, match=message):
        DDPMConfig.from_mapping(config)


def test_missing_config_key_lists_the_valid_keys():
    config = dict(DDPMBackend.presets["celeba_hq"])
    del config["num_res_blocks"]
    with pytest.raises(ConfigError, match=r"missing key\(s\) \['num_res_blocks'\].*optional: num_groups"):
        DDPMBackend.build(config)
    with pytest.raises(ConfigError, match="presets: celeba_hq, church_outdoor, bedroom"):
        DDPMBackend.build("celeba")


def test_ls_backends_lists_every_preset_with_its_weights_key():
    from typer.testing import CliRunner

    from asyrp_bench.cli import app

    result = CliRunner().invoke(app, ["ls", "backends"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for preset in ("celeba_hq", "church_outdoor", "bedroom", "ddpm_ema_celebahq_256", "tiny16"):
        assert preset in result.output
    assert "256 px, ch 128×(1,1,2,2,4,4), 2 res/level, attn 16, h 512×8×8" in result.output
    assert "ddpm_church_outdoor" in result.output and "diffusers_ddpm_ema_celebahq_256" in result.output

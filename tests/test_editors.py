"""The four f_t variants (seed_study_ft.md) and the safetensors editor format: contracts, hand formulas, files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

import asyrp_bench as ab
from asyrp_bench.editors.base import EDITORS
from asyrp_bench.editors.io import read_editor_header, save_editor
from asyrp_bench.errors import CheckpointError, ConfigError, InputError, UnknownNameError
from tests.toys import ToyBackend

VARIANTS = ("additive", "multiplicative", "adagn", "transformer")
# (C, H, W): the toy backend's, a tiny ddpm-like one, an odd one (GroupNorm falls back to divisors of 24; the
# channel encoder has 6 features), and one with fewer channels than 32 groups.
SHAPES = [(8, 4, 4), (32, 8, 8), (24, 2, 3), (6, 5, 5)]


@pytest.fixture(autouse=True)
def _one_thread():
    # The test machine is shared: small convs with 2 threads stall on contention (speed is not asserted).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_params(variant: str) -> dict:
    return {"dim_feedforward": 32} if variant == "transformer" else {}


def build(variant: str, shape=(8, 4, 4), temb_dim: int = 16, seed: int = 0, **params) -> ab.Editor:
    torch.manual_seed(seed)
    return ab.build_editor(variant, shape, temb_dim, **{**small_params(variant), **params})


def inputs(shape, temb_dim: int = 16, batch: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *shape, generator=gen), torch.randn(batch, temb_dim, generator=gen)


def test_registry_lists_all_variants_and_unknown_names_list_them():
    assert set(VARIANTS) <= set(EDITORS.names())
    with pytest.raises(UnknownNameError, match=r"Did you mean 'adagn'.*adagn, additive, multiplicative, transformer"):
        ab.build_editor("adagm", (8, 4, 4), 16)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_shape_contract(variant, shape):
    editor = build(variant, shape).eval()
    h, temb = inputs(shape)
    out = editor(h, temb)
    assert out.shape == h.shape and out.dtype == h.dtype
    assert torch.isfinite(out).all() and out.abs().mean() > 1e-4
    # conditioned on t: another temb changes Δh; without temb (spec §3.4 ignore_timesteps) it still works
    assert not torch.allclose(out, editor(h, temb.flip(0)))
    assert editor(h, None).shape == h.shape
    with pytest.raises(InputError):
        editor(h[:, :-1], temb)
    with pytest.raises(InputError):
        editor(h, temb[:, :-1])


@pytest.mark.parametrize("variant", VARIANTS)
def test_batch_invariance(variant):
    editor = build(variant, (8, 4, 4)).eval()
    h, temb = inputs((8, 4, 4), batch=4)
    whole = editor(h, temb)
    parts = torch.cat([editor(h[i:i + 1], temb[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(whole, parts, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_parameter(variant):
    editor = build(variant, (8, 4, 4)).train()
    h, temb = inputs((8, 4, 4))
    weight = torch.randn(h.shape, generator=torch.Generator().manual_seed(5))
    (editor(h, temb) * weight).sum().backward()
    for name, param in editor.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_group_counts_keep_two_channels_per_group():
    from asyrp_bench.editors.layers import group_count

    # the paper's 32 at 512 channels; smaller bottlenecks keep ≥ 2 channels per group, else GroupNorm would
    # cancel the per-channel temb shift/scale (the "temb changes Δh" check in test_shape_contract)
    assert [group_count(c) for c in (512, 64, 32, 24, 8, 6, 3, 1)] == [32, 32, 16, 12, 4, 3, 1, 1]
    assert group_count(8, 2) == 2
    assert build("additive").norm2.num_groups == 4


def test_use_timestep_false_ignores_temb():
    for variant in VARIANTS:
        editor = build(variant, use_timestep=False).eval()
        h, temb = inputs((8, 4, 4))
        torch.testing.assert_close(editor(h, temb), editor(h, None))


def test_parameter_counts_at_the_celeba_hq_bottleneck():
    c, temb = 512, 512
    conv = c * c + c
    linear = temb * c + c
    encoder = {  # nn.TransformerEncoderLayer(d, 1 head, ff 2048): in_proj, out_proj, two linears, two LayerNorms
        d: 3 * d * d + 3 * d + d * d + d + d * 2048 + 2048 + 2048 * d + d + 4 * d for d in (512, 64)
    }
    expected = {
        "additive": 2 * conv + linear + 2 * c,  # 788,992 (spec §3.1)
        "multiplicative": 2 * conv + linear + 2 * c,
        "adagn": 2 * conv + temb * 2 * c + 2 * c,
        "transformer": 2 * (encoder[512] + encoder[64]) + temb * 2 * c + 2 * c,
    }
    assert expected["additive"] == 788_992
    for variant, n in expected.items():
        assert ab.build_editor(variant, (512, 8, 8), 512).n_params() == n, variant


def test_multiplicative_and_adagn_are_their_formulas():
    h, temb = inputs((8, 4, 4))
    mult = build("multiplicative").eval()
    a = F.conv2d(h, mult.conv1.weight, mult.conv1.bias)
    a = a * F.linear(F.silu(temb), mult.injection_block.temb_proj.weight, mult.injection_block.temb_proj.bias)[
        :, :, None, None]
    a = F.silu(F.group_norm(a, 4, mult.injection_block.norm2.weight, mult.injection_block.norm2.bias, eps=1e-6))
    torch.testing.assert_close(mult(h, temb), F.conv2d(a, mult.conv2.weight, mult.conv2.bias))

    ada = build("adagn").eval()
    lin = ada.injection_block.adagn.linear
    scale, shift = F.linear(temb, lin.weight, lin.bias)[:, :, None, None].chunk(2, dim=1)  # no act on temb
    a = F.group_norm(F.conv2d(h, ada.conv1.weight, ada.conv1.bias), 4, eps=1e-5) * (1 + scale) + shift
    torch.testing.assert_close(ada(h, temb), F.conv2d(F.silu(a), ada.conv2.weight, ada.conv2.bias))
    from diffusers.models.normalization import AdaGroupNorm

    assert isinstance(ada.injection_block.adagn, AdaGroupNorm)


def test_additive_keeps_released_keys():
    assert set(build("additive").state_dict()) == {
        "conv1.weight", "conv1.bias", "temb_proj.weight", "temb_proj.bias", "norm2.weight", "norm2.bias",
        "conv2.weight", "conv2.bias",
    }


def test_transformer_tokens_are_positions_and_channels():
    shape = (8, 4, 4)
    h, temb = inputs(shape)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(2))

    def permute(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2)[:, :, perm].reshape(x.shape)

    # pixel tokens carry no positional encoding: permuting positions permutes Δh (GroupNorm pools all positions)
    pixel = build("transformer", shape, layer_type="pixel", heads=2).eval()
    torch.testing.assert_close(pixel(permute(h), temb), permute(pixel(h, temb)), rtol=1e-4, atol=1e-5)
    # a channel encoder sees the spatial layout in its token features: no such symmetry
    pc = build("transformer", shape, layer_type="pc").eval()
    assert not torch.allclose(pc(permute(h), temb), permute(pc(h, temb)), atol=1e-3)
    # pc = pixel encoder then channel encoder, with the encoders' own weights
    layer = pc.in_layer
    x = layer.pixel(h.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(h.shape)
    x = layer.channel(x.flatten(2)).reshape(h.shape)
    torch.testing.assert_close(layer(h), x)
    cp = build("transformer", shape, layer_type="cp").eval()
    cp.load_state_dict(pc.state_dict())
    assert not torch.allclose(cp(h, temb), pc(h, temb), atol=1e-3)
    for injection in ("add", "mult", "adagn"):
        assert build("transformer", shape, injection=injection)(h, temb).shape == h.shape
    # dropout is active in train mode only
    train = build("transformer", shape, dropout=0.5).train()
    assert not torch.equal(train(h, temb), train(h, temb))
    train.eval()
    assert torch.equal(train(h, temb), train(h, temb))


def test_transformer_bad_configs_are_config_errors():
    with pytest.raises(ConfigError, match=r"3 heads do not divide the pixel encoder's token width 8"):
        ab.build_editor("transformer", (8, 4, 4), 16, heads=3, dim_feedforward=8)
    with pytest.raises(ConfigError, match=r"heads do not divide the channel encoder's token width 6"):
        ab.build_editor("transformer", (8, 2, 3), 16, heads=4, dim_feedforward=8)
    with pytest.raises(ConfigError, match="layer_type"):
        ab.build_editor("transformer", (8, 4, 4), 16, layer_type="spatial")
    with pytest.raises(ConfigError, match="injection"):
        ab.build_editor("transformer", (8, 4, 4), 16, injection="concat")
    with pytest.raises(ConfigError, match="dropout"):
        ab.build_editor("transformer", (8, 4, 4), 16, dropout=1.5)
    with pytest.raises(ConfigError, match="bad parameters for editor 'adagn'"):
        ab.build_editor("adagn", (8, 4, 4), 16, heads=2)
    with pytest.raises(ConfigError, match="groups"):
        ab.build_editor("additive", (8, 4, 4), 16, groups=0)
    editor = ab.build_editor("transformer", (8, 4, 4), 16, dim_feedforward=8)
    with pytest.raises(InputError, match="built for a 4×4 bottleneck"):
        editor(torch.randn(1, 8, 2, 2), torch.randn(1, 16))


# -- files ----------------------------------------------------------------------------------------------------

META = {
    "backend": {"name": "toy", "weights_hash": "ab" * 32, "h_shape": [8, 4, 4], "temb_dim": 16},
    "prompts": {"source": "face", "target": "smiling face", "edit": "smiling"},
    "n_train_step": 12, "t_edit": 500, "t_boost": 200,
    "recipe": {"name": "asyrp_paper", "values": {"lr": 0.5, "betas": [0.9, 0.999]}},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_safetensors_round_trip_with_metadata(variant, tmp_path):
    editor = build(variant, (8, 4, 4), heads=2) if variant == "transformer" else build(variant, (8, 4, 4))
    editor.metadata = dict(META)
    path = save_editor(editor.eval(), tmp_path / f"{variant}.safetensors", metadata={"seed": 7})
    loaded = ab.load_editor(path)
    assert type(loaded) is type(editor) and loaded.variant == variant
    assert loaded.config == editor.config and loaded.h_shape == (8, 4, 4) and loaded.temb_dim == 16
    assert not loaded.training
    for key, value in editor.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    h, temb = inputs((8, 4, 4))
    assert torch.equal(loaded(h, temb), editor(h, temb))
    for key, value in META.items():
        assert loaded.metadata[key] == value, key
    assert loaded.metadata["seed"] == 7 and "seed" not in editor.metadata
    assert loaded.metadata["package_version"] == ab.__version__ and loaded.metadata["created"].endswith("+00:00")
    header = read_editor_header(path)
    assert header["variant"] == variant and header["h_shape"] == [8, 4, 4]
    # every header entry is a JSON string in the file itself
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        raw = handle.metadata()
    assert json.loads(raw["t_edit"]) == 500 and json.loads(raw["asyrp_bench.format"]) == "editor"


def test_edit_uses_the_stored_interval_and_step_count(tmp_path):
    # spec §10 B8: n_train_step and t_edit come from the file unless given
    backend = ToyBackend()
    editor = build("additive", backend.h_shape, backend.temb_dim)
    editor.metadata = dict(META)
    loaded = ab.load_editor(save_editor(editor, tmp_path / "e.safetensors"))
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    gens = ab.image_generators(0, ["a", "b"])
    stored = ab.edit(backend, x_T, loaded, None, None, n_steps=6, generator=gens)
    explicit = ab.edit(backend, x_T, editor, 500, 200, n_steps=6, n_train_step=12,
                       generator=ab.image_generators(0, ["a", "b"]))
    assert torch.equal(stored, explicit)
    unscaled = ab.edit(backend, x_T, editor, 500, 200, n_steps=6, n_train_step=6,
                       generator=ab.image_generators(0, ["a", "b"]))
    assert not torch.allclose(stored, unscaled)


def _released_format(editor: ab.Editor, path: Path) -> Path:
    """A file in the released Asyrp layout (spec §8.3): {"0": state dict, "optimizer", "scheduler"}."""
    torch.save({"0": editor.state_dict(), "optimizer": {"state": {}, "param_groups": []},
                "scheduler": {"step_size": 20, "gamma": 0.9}}, path)
    return path


def test_released_pth_and_our_safetensors_give_identical_delta_h(tmp_path):
    pth = _released_format(build("additive", (32, 8, 8), 32), tmp_path / "attr_LC_t999_ninv40_ngen40_0.pth")
    released = ab.load_editor(pth)
    ours = ab.load_editor(save_editor(released, tmp_path / "attr.safetensors"))
    h, temb = inputs((32, 8, 8), 32)
    assert torch.equal(ours(h, temb), released(h, temb))
    assert ours.metadata["source_file"] == pth.name and "format" not in ours.metadata


def test_real_released_checkpoint_round_trips(release_dir, tmp_path):
    path = release_dir / "checkpoints/smiling_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth"
    released = ab.load_editor(path)
    ours = ab.load_editor(save_editor(released, tmp_path / "smiling.safetensors",
                                      metadata={"n_train_step": 40, "prompts": {"source": "face",
                                                                                "target": "smiling face"}}))
    h, temb = inputs((512, 8, 8), 512, batch=2)
    assert torch.equal(ours(h, temb), released(h, temb))
    assert ours.metadata["n_train_step"] == 40


def test_editor_backend_mismatch_is_a_clear_error(tmp_path):
    backend = ToyBackend(seed=0)
    editor = build("adagn", backend.h_shape, backend.temb_dim)
    editor.metadata = {"backend": backend.describe()}
    path = save_editor(editor, tmp_path / "e.safetensors")
    assert ab.load_editor(path, backend=backend).metadata["backend"]["weights_hash"] == backend.weights_hash
    other = ToyBackend(seed=1)  # same architecture, other weights
    with pytest.raises(ConfigError, match=r"weights hash .* different U-Net weights.*check_hash=False"):
        ab.load_editor(path, backend=other)
    assert ab.load_editor(path, backend=other, check_hash=False).variant == "adagn"
    wider = ToyBackend(hidden=16)
    with pytest.raises(ConfigError, match="bottleneck of 8 channels"):
        ab.load_editor(path, backend=wider, check_hash=False)
    larger = ToyBackend(size=16)  # same channels, 8×8 instead of 4×4
    with pytest.raises(ConfigError, match=r"trained on a bottleneck \[8, 4, 4\]"):
        ab.load_editor(path, backend=larger, check_hash=False)


def test_bad_editor_files_are_checkpoint_errors(tmp_path):
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not an asyrp-bench editor"):
        ab.load_editor(plain)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=r"junk\.safetensors"):
        ab.load_editor(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        ab.load_editor(tmp_path / "absent.safetensors")
    with pytest.raises(CheckpointError, match="unsupported editor file type"):
        ab.load_editor(tmp_path / "editor.onnx")
    editor = build("additive")
    save_editor(editor, tmp_path / "good.safetensors")
    # a file whose tensors do not match its recorded variant
    from safetensors.torch import load_file

    header = {k: v for k, v in _raw_header(tmp_path / "good.safetensors").items()}
    tensors = load_file(str(tmp_path / "good.safetensors"))
    tensors.pop("norm2.bias")
    save_file(tensors, str(tmp_path / "short.safetensors"), metadata=header)
    with pytest.raises(CheckpointError, match=r"missing keys \['norm2.bias'\]"):
        ab.load_editor(tmp_path / "short.safetensors")
    header["variant"] = json.dumps("nonexistent")
    save_file(load_file(str(tmp_path / "good.safetensors")), str(tmp_path / "var.safetensors"), metadata=header)
    with pytest.raises(CheckpointError, match="Unknown editor 'nonexistent'"):
        ab.load_editor(tmp_path / "var.safetensors")
    with pytest.raises(ConfigError, match=r"\.safetensors"):
        save_editor(editor, tmp_path / "editor.pth")
    with torch.no_grad():
        editor.conv2.weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        save_editor(editor, tmp_path / "nan.safetensors")
    assert not (tmp_path / "nan.safetensors").exists()
    assert not list(tmp_path.glob(".*tmp"))


def _raw_header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata())

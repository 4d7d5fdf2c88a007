"""Loading real on-disk formats through ``load_backend``: ermongroup checkpoints and diffusers folders, made
small in tmp_path; every wrong file fails with a message naming the problem."""

from __future__ import annotations

import json
import os

import pytest
import torch

from asyrp_bench.diffusion.backends import load_backend
from asyrp_bench.errors import CheckpointError, ConfigError, WeightsNotFoundError
from tests.backend_files import SMALL_DDPM, random_ddpm_state_dict, save_unet_folder


@pytest.fixture
def ddpm_sd():
    return random_ddpm_state_dict(SMALL_DDPM, seed=3)


def _eps(backend, seed: int = 0) -> torch.Tensor:
    x = torch.randn(2, 3, backend.image_size, backend.image_size, generator=torch.Generator().manual_seed(seed))
    return backend(x, torch.tensor([100, 800]))


def _same_weights(backend, state_dict) -> bool:
    loaded = backend.state_dict()
    return set(loaded) == set(state_dict) and all(torch.equal(loaded[k], state_dict[k]) for k in state_dict)


# -- ddpm formats -------------------------------------------------------------------------------------------------
def test_plain_state_dict_like_celeba_hq_ckpt(tmp_path, ddpm_sd):
    torch.save(ddpm_sd, tmp_path / "celeba_hq.ckpt")
    backend = load_backend("ddpm", weights=str(tmp_path / "celeba_hq.ckpt"), config=SMALL_DDPM)
    assert _same_weights(backend, ddpm_sd)
    again = load_backend("ddpm", weights=str(tmp_path / "celeba_hq.ckpt"), config=SMALL_DDPM)
    assert again.weights_hash == backend.weights_hash  # stable across loads
    changed = dict(ddpm_sd, **{"conv_out.bias": ddpm_sd["conv_out.bias"] + 1e-4})
    torch.save(changed, tmp_path / "changed.ckpt")
    assert load_backend("ddpm", weights=str(tmp_path / "changed.ckpt"), config=SMALL_DDPM).weights_hash != again.weights_hash


def test_data_parallel_prefix_is_removed(tmp_path, ddpm_sd):
    torch.save({f"module.{k}": v for k, v in ddpm_sd.items()}, tmp_path / "dp.pth")
    assert _same_weights(load_backend("ddpm", weights=str(tmp_path / "dp.pth"), config=SMALL_DDPM), ddpm_sd)


def test_ermongroup_training_checkpoint_uses_the_ema_entry(tmp_path, ddpm_sd):
    """runners/diffusion.py saves [model.state_dict(), optimizer.state_dict(), epoch, step, ema_helper.state_dict()]
    from a DataParallel model; its sampler overwrites the parameters with the EMA shadow."""
    ema = {f"module.{k}": v + 0.01 for k, v in ddpm_sd.items()}
    optimizer = {"state": {}, "param_groups": [{"lr": 2e-4, "eps": 1e-8, "params": [0, 1]}]}
    states = [{f"module.{k}": v for k, v in ddpm_sd.items()}, optimizer, 7, 5000, ema]
    torch.save(states, tmp_path / "ckpt.pth")
    with_ema = load_backend("ddpm", weights=str(tmp_path / "ckpt.pth"), config=SMALL_DDPM)
    assert _same_weights(with_ema, {k[len("module."):]: v for k, v in ema.items()})
    without = load_backend("ddpm", weights=str(tmp_path / "ckpt.pth"), config={**SMALL_DDPM, "ema": False})
    assert _same_weights(without, ddpm_sd)
    torch.save(states[:4], tmp_path / "no_ema.pth")  # trained with ema: False
    assert _same_weights(load_backend("ddpm", weights=str(tmp_path / "no_ema.pth"), config=SMALL_DDPM), ddpm_sd)


def test_weights_key_resolves_under_asyrp_bench_home(tmp_path, ddpm_sd):
    weights_dir = tmp_path / "home" / "weights"
    weights_dir.mkdir(parents=True)
    torch.save(ddpm_sd, weights_dir / "celeba_hq.ckpt")
    os.environ["ASYRP_BENCH_HOME"] = str(tmp_path / "home")  # conftest restores it after the test
    backend = load_backend("ddpm", weights="ddpm_celeba_hq", config=SMALL_DDPM)
    assert _same_weights(backend, ddpm_sd)


def test_missing_default_weights_give_directions():
    with pytest.raises(WeightsNotFoundError, match=r"celeba_hq\.ckpt.*put it at .*asyrp-bench doctor"):
        load_backend("ddpm")
    with pytest.raises(WeightsNotFoundError, match=r"church_outdoor\.ckpt"):
        load_backend("ddpm", config="church_outdoor")
    with pytest.raises(WeightsNotFoundError, match="no such file"):
        load_backend("ddpm", weights="/nowhere/celeba_hq.ckpt")
    with pytest.raises(ConfigError, match="pass weights="):
        load_backend("ddpm", config=SMALL_DDPM)


def test_missing_and_unexpected_keys_are_listed(tmp_path, ddpm_sd):
    broken = {k: v for k, v in ddpm_sd.items() if not k.startswith("mid.attn_1.")}
    broken["mid.attn_1.qkv.weight"] = torch.zeros(3)
    torch.save(broken, tmp_path / "broken.ckpt")
    with pytest.raises(CheckpointError) as info:
        load_backend("ddpm", weights=str(tmp_path / "broken.ckpt"), config=SMALL_DDPM)
    message = str(info.value)
    assert "broken.ckpt" in message
    assert "10 missing key(s): mid.attn_1.norm.weight" in message
    assert "1 unexpected key(s): mid.attn_1.qkv.weight" in message


def test_many_missing_keys_are_shortened_with_a_count(tmp_path, ddpm_sd):
    torch.save({"conv_in.weight": ddpm_sd["conv_in.weight"]}, tmp_path / "partial.ckpt")
    with pytest.raises(CheckpointError, match=rf"{len(ddpm_sd) - 1} missing key\(s\): .*\(\d+ more\)"):
        load_backend("ddpm", weights=str(tmp_path / "partial.ckpt"), config=SMALL_DDPM)


def test_shape_mismatch_names_the_key_and_both_shapes(tmp_path, ddpm_sd):
    # The full 256 px preset against this small checkpoint: every conv differs; so does a single edited key.
    ddpm_sd["conv_out.weight"] = torch.zeros(6, 16, 3, 3)
    torch.save(ddpm_sd, tmp_path / "wide.ckpt")
    with pytest.raises(CheckpointError, match=r"conv_out\.weight: checkpoint \[6, 16, 3, 3\] vs model \[3, 16, 3, 3\]"):
        load_backend("ddpm", weights=str(tmp_path / "wide.ckpt"), config=SMALL_DDPM)


@pytest.mark.parametrize(
    ("name", "content", "looks"),
    [
        ("notes.txt", b"these are not weights\n", "a text file"),
        ("face.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(64), "a JPEG image"),
        ("empty.ckpt", b"", "an empty file"),
        ("random.ckpt", bytes(range(256)) * 4, "UnpicklingError: Unsupported operand"),
    ],
)
def test_a_file_that_is_not_a_torch_checkpoint_is_named(tmp_path, name, content, looks):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"{name} is not a readable torch checkpoint \(.*{looks}"):
        load_backend("ddpm", weights=str(tmp_path / name), config=SMALL_DDPM)


def test_torch_files_that_hold_something_else_are_described(tmp_path):
    torch.save({"epoch": 3, "model": "elsewhere"}, tmp_path / "meta.pt")
    with pytest.raises(CheckpointError, match=r"meta\.pt is a dict but not a state dict.*'epoch', 'model'"):
        load_backend("ddpm", weights=str(tmp_path / "meta.pt"), config=SMALL_DDPM)
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match=r"tensor\.pt holds a Tensor"):
        load_backend("ddpm", weights=str(tmp_path / "tensor.pt"), config=SMALL_DDPM)
    with pytest.raises(CheckpointError, match="is a folder"):
        load_backend("ddpm", weights=str(tmp_path), config=SMALL_DDPM)


def test_pickled_code_references_are_refused_by_weights_only(tmp_path):
    import pickle

    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"conv_in.weight": os.getcwd}, protocol=2))  # a global, never called
    with pytest.raises(CheckpointError, match=r"evil\.ckpt is not a readable torch checkpoint \(it pickles Python objects that safe .*posix.getcwd"):
        load_backend("ddpm", weights=str(tmp_path / "evil.ckpt"), config=SMALL_DDPM)


def test_safetensors_state_dicts_load_too(tmp_path, ddpm_sd):
    from safetensors.torch import save_file

    save_file(ddpm_sd, tmp_path / "celeba_hq.safetensors")
    backend = load_backend("ddpm", weights=str(tmp_path / "celeba_hq.safetensors"), config=SMALL_DDPM)
    assert _same_weights(backend, ddpm_sd)


def test_half_precision_checkpoints_load_as_float32(tmp_path, ddpm_sd):
    torch.save({k: v.half() for k, v in ddpm_sd.items()}, tmp_path / "fp16.ckpt")
    backend = load_backend("ddpm", weights=str(tmp_path / "fp16.ckpt"), config=SMALL_DDPM)
    assert all(p.dtype == torch.float32 for p in backend.parameters())
    torch.testing.assert_close(backend.conv_in.weight, ddpm_sd["conv_in.weight"], atol=1e-3, rtol=1e-3)


# -- diffusers folders --------------------------------------------------------------------------------------------
def test_diffusers_model_folder_pipeline_folder_and_bin_weights(tmp_path):
    unet = save_unet_folder(tmp_path / "model", seed=4)
    direct = load_backend("diffusers", weights=str(tmp_path / "model"))
    save_unet_folder(tmp_path / "pipe" / "unet", seed=4)
    (tmp_path / "pipe" / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))
    via_pipeline = load_backend("diffusers", weights=str(tmp_path / "pipe"))
    save_unet_folder(tmp_path / "bin", seed=4, safe_serialization=False)
    assert (tmp_path / "bin" / "diffusion_pytorch_model.bin").is_file()
    via_bin = load_backend("diffusers", weights=str(tmp_path / "bin"))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        reference = unet(x, torch.tensor([100, 800])).sample
    for backend in (direct, via_pipeline, via_bin):
        torch.testing.assert_close(backend(x, torch.tensor([100, 800])), reference, atol=1e-6, rtol=0)
    assert direct.weights_hash == via_pipeline.weights_hash == via_bin.weights_hash


def test_diffusers_weights_key_resolves_to_a_folder(tmp_path):
    save_unet_folder(tmp_path / "home" / "weights" / "ddpm-ema-celebahq-256", seed=1)
    os.environ["ASYRP_BENCH_HOME"] = str(tmp_path / "home")
    by_key = load_backend("diffusers", weights="diffusers_ddpm_ema_celebahq_256")
    by_preset = load_backend("diffusers", config="ddpm_ema_celebahq_256")
    assert by_key.weights_hash == by_preset.weights_hash


def test_legacy_attention_key_names_load(tmp_path):
    """Folders saved by diffusers 0.0.x (the google/ddpm-* releases) name attention query/key/value/proj_attn."""
    from safetensors.torch import load_file, save_file

    unet = save_unet_folder(tmp_path / "old", seed=6)
    file = tmp_path / "old" / "diffusion_pytorch_model.safetensors"
    legacy = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    renamed = {}
    for key, value in load_file(file).items():
        for new, old in legacy.items():
            key = key.replace(f".{new}.", f".{old}.")
        renamed[key] = value
    assert any(".query." in k for k in renamed)
    save_file(renamed, file)
    backend = load_backend("diffusers", weights=str(tmp_path / "old"))
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(backend(x, 500), unet(x, 500).sample, atol=1e-6, rtol=0)


def test_hub_ids_are_never_fetched():
    with pytest.raises(WeightsNotFoundError, match=r"looks like a Hugging Face hub id.*never downloads.*--local-dir"):
        load_backend("diffusers", weights="google/ddpm-ema-celebahq-256")


@pytest.mark.parametrize("what", ["missing", "extra", "shape"])
def test_diffusers_folders_are_loaded_strictly(tmp_path, what):
    from safetensors.torch import load_file, save_file

    save_unet_folder(tmp_path / "m", seed=0)
    file = tmp_path / "m" / "diffusion_pytorch_model.safetensors"
    state = load_file(file)
    if what == "missing":
        del state["conv_in.bias"]
        expected = r"1 missing keys: conv_in\.bias"
    elif what == "extra":
        state["extra.weight"] = torch.zeros(2)
        expected = r"1 unexpected keys: extra\.weight"
    else:
        state["conv_in.bias"] = torch.zeros(7)
        expected = r"size mismatch for conv_in\.bias.*\[7\].*\[16\]"
    save_file(state, file)
    with pytest.raises(CheckpointError, match=expected):
        load_backend("diffusers", weights=str(tmp_path / "m"))


def test_bad_diffusers_folders_are_explained(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"has no config\.json"):
        load_backend("diffusers", weights=str(tmp_path / "empty"))
    save_unet_folder(tmp_path / "junk", seed=0)
    (tmp_path / "junk" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="junk could not be loaded as a UNet2DModel folder"):
        load_backend("diffusers", weights=str(tmp_path / "junk"))
    save_unet_folder(tmp_path / "noweights", seed=0)
    (tmp_path / "noweights" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(WeightsNotFoundError, match="no weights file"):
        load_backend("diffusers", weights=str(tmp_path / "noweights"))
    (tmp_path / "cond").mkdir()
    (tmp_path / "cond" / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    with pytest.raises(ConfigError, match="UNet2DConditionModel; the diffusers backend loads UNet2DModel only"):
        load_backend("diffusers", weights=str(tmp_path / "cond"))
    (tmp_path / "file.ckpt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"is a file.*use the ddpm backend"):
        load_backend("diffusers", weights=str(tmp_path / "file.ckpt"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"time_embedding_type": "fourier"}, "fourier"),
        ({"num_class_embeds": 10}, "class-conditional"),
        ({"out_channels": 4}, r"out_channels=4 must equal in_channels=3"),
    ],
)
def test_unsupported_unet_configs_are_rejected(tmp_path, overrides, message):
    save_unet_folder(tmp_path / "m", seed=0, **overrides)
    with pytest.raises(ConfigError, match=message):
        load_backend("diffusers", weights=str(tmp_path / "m"))


def test_diffusers_config_argument_is_checked():
    with pytest.raises(ConfigError, match="unknown diffusers preset"):
        load_backend("diffusers", config="celeba_hq")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['ch'\]"):
        load_backend("diffusers", config={"ch": 3})
    with pytest.raises(ConfigError, match="pass weights="):
        load_backend("diffusers")

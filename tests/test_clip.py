"""asyrp_bench.clip: loading (every user-facing form, offline), preprocessing, text direction, S_dir and losses."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from asyrp_bench import clip as clipmod
from asyrp_bench import weights
from asyrp_bench.errors import CheckpointError, ConfigError, WeightsNotFoundError
from tests._metric_models import (
    register_tiny_clip_config,
    save_tiny_clip_checkpoint,
    save_tiny_clip_dir,
    tiny_clip_module,
)


@pytest.fixture(autouse=True)
def _fresh_clip_cache():
    clipmod.clear_cache()
    yield
    clipmod.clear_cache()


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch: pytest.MonkeyPatch):
    """Every download entry point of open_clip and huggingface_hub fails loudly: these tests name pretrained
    tags ("openai") only to check that they are resolved offline or refused, never fetched."""
    import huggingface_hub
    import open_clip.pretrained

    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to download weights: {args} {kwargs}")

    for name in ("download_pretrained", "download_pretrained_from_hf", "download_pretrained_from_url",
                 "hf_hub_download"):
        monkeypatch.setattr(open_clip.pretrained, name, refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clip_dir(tmp_path_factory.mktemp("clip") / "tiny_clip")


@pytest.fixture
def clip(clip_dir: Path) -> clipmod.ClipModel:
    return clipmod.load_clip(f"local-dir:{clip_dir}")


# -- templates ------------------------------------------------------------------------------------------------


def test_templates_are_open_clip_list_without_many():
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    ours = [t("{}") for t in clipmod.imagenet_templates()]
    library = [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]
    assert len(ours) == 79
    assert "a photo of many {}." not in ours
    assert ours == library[:1] + library[2:]
    assert ours[0] == "a bad photo of a {}." and ours[1] == "a sculpture of a {}."


# -- loading ----------------------------------------------------------------------------------------------------


def test_local_dir_loads_frozen_and_cached(clip_dir: Path):
    model = clipmod.load_clip(f"local-dir:{clip_dir}")
    assert model is clipmod.load_clip(f"local-dir:{clip_dir}")  # one load per process
    assert not model.model.training
    assert not any(p.requires_grad for p in model.model.parameters())
    assert model.image_size == 32
    assert model.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    reference = tiny_clip_module(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    expected = reference.encode_image(model.preprocess(x), normalize=True)
    torch.testing.assert_close(model.encode_images(x), expected)


def test_builtin_name_with_weights_file(tmp_path: Path):
    name = register_tiny_clip_config(tmp_path)
    ckpt = save_tiny_clip_checkpoint(tmp_path / "tiny.safetensors", seed=3)
    model = clipmod.load_clip(name, pretrained=str(ckpt))
    reference = tiny_clip_module(3)
    tokens = model.tokenizer(["a face"])
    torch.testing.assert_close(model.encode_text(["a face"]), reference.encode_text(tokens, normalize=True))
    # a .pt state dict works the same way
    torch.save(reference.state_dict(), tmp_path / "tiny.pt")
    other = clipmod.load_clip(name, pretrained=str(tmp_path / "tiny.pt"))
    torch.testing.assert_close(other.encode_text(["a face"]), model.encode_text(["a face"]))


def test_tag_found_in_hf_cache_and_quickgelu_forced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A pretrained tag resolves offline from the HF cache, with the tag's QuickGELU (the environment.md trap)."""
    import open_clip.pretrained as ocp

    name = register_tiny_clip_config(tmp_path)
    monkeypatch.setitem(ocp._PRETRAINED, name, {"testtag": ocp._pcfg(hf_hub="test-org/tiny-clip/", quick_gelu=True)})
    hub = weights._hf_cache_dir() / "models--test-org--tiny-clip"
    (hub / "refs").mkdir(parents=True)
    (hub / "refs" / "main").write_text("abc123")
    save_tiny_clip_checkpoint(hub / "snapshots" / "abc123" / "open_clip_model.safetensors", seed=5, quick_gelu=True)
    model = clipmod.load_clip(name, pretrained="testtag")
    assert model.model_id == f"{name}/testtag"
    act = model.model.visual.transformer.resblocks[0].mlp.gelu
    assert type(act).__name__ == "QuickGELU"
    reference = tiny_clip_module(5, quick_gelu=True)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(model.encode_images(x), reference.encode_image(model.preprocess(x), normalize=True))


def test_weights_key_folder_artifact_loads_as_local_dir(clip_dir: Path, monkeypatch: pytest.MonkeyPatch):
    artifact = weights.Artifact(name="test_world_clip", filename="tiny_clip", kind="clip", is_dir=True,
                                description="test clip folder", source="tests",
                                extra_locations=(str(clip_dir),))
    monkeypatch.setitem(weights.ARTIFACTS, "test_world_clip", artifact)
    model = clipmod.load_clip("test_world_clip")
    assert model.model_id == f"local-dir:{clip_dir.resolve()}"


def test_missing_weights_are_clear_errors(tmp_path: Path):
    with pytest.raises(WeightsNotFoundError, match=r"clip_vit_b16_openai\.safetensors.*open_clip_model\.safetensors"):
        clipmod.load_clip()  # default ViT-B-16-quickgelu / openai, never downloaded
    empty = tmp_path / "empty_clip"
    empty.mkdir()
    with pytest.raises(WeightsNotFoundError, match=r"open_clip_config\.json"):
        clipmod.load_clip(f"local-dir:{empty}")
    (empty / "open_clip_config.json").write_text('{"model_cfg": {}}')
    with pytest.raises(WeightsNotFoundError, match="no weights file"):
        clipmod.load_clip(f"local-dir:{empty}")
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        clipmod.load_clip(f"local-dir:{tmp_path / 'nope'}")
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        clipmod.load_clip("ViT-B-16-quickgelu", pretrained=str(tmp_path / "missing.safetensors"))


def test_bad_names_are_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="unknown open_clip model"):
        clipmod.load_clip("ViT-Q-99", pretrained=str(tmp_path / "weights.safetensors"))  # refused by name first
    with pytest.raises(ConfigError, match="needs `pretrained`"):
        clipmod.load_clip("ViT-B-16-quickgelu", pretrained=None)
    with pytest.raises(ConfigError, match="neither a pretrained tag"):
        clipmod.load_clip("ViT-B-16-quickgelu", pretrained="no_such_tag")
    with pytest.raises(ConfigError, match="not a CLIP model"):
        clipmod.load_clip("facenet_vggface2")


def test_wrong_checkpoint_is_checkpoint_error(tmp_path: Path):
    name = register_tiny_clip_config(tmp_path)
    torch.save({"foo": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt"):
        clipmod.load_clip(name, pretrained=str(tmp_path / "bad.pt"))


# -- preprocessing ----------------------------------------------------------------------------------------------


def test_tensor_preprocess_matches_torchvision(clip: clipmod.ClipModel):
    """Spec §4.4 chain: [-1,1] -> [0,1], bicubic antialiased resize of the short side, centre crop, CLIP norm."""
    from torchvision.transforms import v2 as T

    x = torch.rand(2, 3, 40, 52) * 2 - 1
    reference = T.Compose([
        T.Resize(32, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
        T.CenterCrop(32),
        T.Normalize(clip.mean, clip.std),
    ])((x + 1) / 2)
    torch.testing.assert_close(clip.preprocess(x), reference, atol=1e-5, rtol=1e-5)


def test_pil_path_matches_open_clip_transform(clip: clipmod.ClipModel, clip_dir: Path):
    import numpy as np
    import open_clip
    from PIL import Image

    _, _, val = open_clip.create_model_and_transforms(f"local-dir:{clip_dir}")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)) for _ in range(3)]
    expected = clip.model.encode_image(torch.stack([val(im) for im in images]), normalize=True)
    torch.testing.assert_close(clip.encode_pil(images), expected)
    as_uint8 = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in images])
    torch.testing.assert_close(clip.encode_uint8(as_uint8), expected)


def test_encode_images_batch_size_invariant_and_differentiable(clip: clipmod.ClipModel):
    x = (torch.rand(4, 3, 48, 48) * 2 - 1).requires_grad_(True)
    together = clip.encode_images(x)
    single = torch.cat([clip.encode_images(x[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(together, single, atol=1e-5, rtol=1e-5)
    together[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# -- text and directions ----------------------------------------------------------------------------------------


def test_text_direction_hand_computation_and_cache(clip: clipmod.ClipModel, monkeypatch: pytest.MonkeyPatch):
    templates = clipmod.imagenet_templates()
    tok = clip.tokenizer
    src = F.normalize(clip.model.encode_text(tok([t("face") for t in templates])), dim=-1)
    tgt = F.normalize(clip.model.encode_text(tok([t("smiling face") for t in templates])), dim=-1)
    manual = (tgt - src).mean(0)
    manual = manual / manual.norm()
    direction = clip.text_direction("face", "smiling face")
    torch.testing.assert_close(direction, manual)
    calls = []
    original = clip.encode_text
    monkeypatch.setattr(clip, "encode_text", lambda texts, normalize=True: calls.append(1) or original(texts))
    assert clip.text_direction("face", "smiling face") is direction  # cache hit: no text encoding
    assert calls == []
    assert (clip.model_id, "face", "smiling face") in clip.cached_direction_keys()
    flipped = clip.text_direction("smiling face", "face")
    torch.testing.assert_close(flipped, -direction)
    assert len(calls) == 2  # a new pair is encoded (79 source + 79 target prompts, one call each)


def test_text_cosine_raw_prompts(clip: clipmod.ClipModel):
    emb = F.normalize(clip.model.encode_text(clip.tokenizer(["face", "smiling face"])), dim=-1)
    assert clip.text_cosine("face", "smiling face") == pytest.approx(float(emb[0] @ emb[1]), abs=1e-6)


def test_directional_cosine_on_known_embeddings():
    src = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    edit = torch.tensor([[0.0, 1.0, 0.0], [0.6, 0.8, 0.0]])
    text = F.normalize(torch.tensor([-1.0, 1.0, 0.0]), dim=0)
    cos = clipmod.directional_cosine(src, edit, text)
    # image 0: direction (-1, 1, 0)/sqrt2 == text -> 1; image 1: (0.6, 0.8, -1)/sqrt2 . text = 0.2/2 = 0.1
    assert cos[0].item() == pytest.approx(1.0, abs=1e-6)
    assert cos[1].item() == pytest.approx(0.1, abs=1e-6)
    torch.testing.assert_close(clipmod.directional_cosine(edit, src, text), -cos)  # swapping images flips sign
    torch.testing.assert_close(clipmod.directional_cosine(src, edit, -text), -cos)  # swapping prompts flips sign
    neg_log = clipmod.directional_loss(src, edit, text, form="neg_log")
    torch.testing.assert_close(neg_log, -torch.log((1 + cos) / 2))
    torch.testing.assert_close(clipmod.directional_loss(src, edit, text, form="one_minus"), 1 - cos)
    with pytest.raises(ConfigError):
        clipmod.directional_loss(src, edit, text, form="l2")  # type: ignore[arg-type]


def test_identical_images_give_defined_value_and_finite_gradient(clip: clipmod.ClipModel):
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    direction = clip.text_direction("face", "smiling face")
    edit = clip.encode_images(x)
    src = edit.detach()  # exactly equal embeddings (a second forward may differ by float noise: other kernels)
    cos = clipmod.directional_cosine(src, edit, direction)
    assert torch.equal(cos, torch.zeros(2))
    loss = clipmod.directional_loss(src, edit, direction, form="neg_log")
    torch.testing.assert_close(loss, torch.full((2,), math.log(2.0)))
    loss.mean().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.equal(clipmod.directional_loss(src, edit.detach(), direction, form="one_minus"), torch.ones(2))


def test_sdir_end_to_end_flips_with_prompts(clip: clipmod.ClipModel):
    a = torch.rand(3, 3, 32, 32) * 2 - 1
    b = torch.rand(3, 3, 32, 32) * 2 - 1
    forward = clipmod.directional_cosine(clip.encode_images(a), clip.encode_images(b),
                                         clip.text_direction("face", "smiling face"))
    backward = clipmod.directional_cosine(clip.encode_images(a), clip.encode_images(b),
                                          clip.text_direction("smiling face", "face"))
    torch.testing.assert_close(forward, -backward)
    assert forward.abs().max() > 1e-4  # a tiny random CLIP still gives non-trivial values

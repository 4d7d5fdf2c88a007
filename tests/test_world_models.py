"""The shipped world models: each loads through its normal path and does its job on held-out faces."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from asyrp_bench import weights
from asyrp_bench.world import assets, captions, check, recipe
from asyrp_bench.world.generator import CLASSES, render, with_attributes
from asyrp_bench.world.split import render_split

WORLD_KEYS = ("world_ddpm", "world_clip", "world_parser", "world_identity", "world_oracle")


def test_every_world_artifact_is_registered_and_shipped():
    for key in WORLD_KEYS:
        artifact = weights.get_artifact(key)
        assert artifact.is_dir and artifact.packaged and artifact.source.startswith("shipped with asyrp-bench")
        path = weights.require(key)
        assert path == weights.ASSETS_DIR / artifact.packaged
    files = [p for p in assets.ASSETS_WORLD.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]  # safetensors only
    assert assets.total_size_bytes() <= 20 * 1024 * 1024


def test_world_card_records_the_recipe():
    card = json.loads((assets.ASSETS_WORLD / "world_card.json").read_text())
    assert set(card["models"]) == set(recipe.MODEL_NAMES)
    for name, info in card["models"].items():
        spec = recipe.TRAIN_SPECS[name]
        assert info["steps"] == spec.steps and info["seed"] == spec.seed and info["batch_size"] == spec.batch_size
        assert info["wall_s"] > 0 and info["faces_seen"] == spec.steps * spec.batch_size


def test_ddpm_loads_as_float32_unet_with_the_asyrp_schedule():
    unet = assets.load_unet()
    assert all(p.dtype == torch.float32 for p in unet.parameters())
    assert tuple(unet.config.block_out_channels) == recipe.DDPM_CONFIG["block_out_channels"]
    assert unet.mid_block.attentions[0] is not None  # h-space = the middle block's output (spec §2.1)
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_pretrained(str(weights.require("world_ddpm")))
    assert sched.config.beta_schedule == "linear" and sched.config.num_train_timesteps == 1000
    assert sched.config.beta_start == 1e-4 and sched.config.beta_end == 0.02


def test_ddpm_predicts_the_noise_of_world_faces():
    from asyrp_bench.diffusion.schedule import alphas_cumprod

    unet = assets.load_unet()
    x0 = render_split(16).images * 2 - 1
    gen = torch.Generator().manual_seed(0)
    abar = alphas_cumprod()
    errors = {}
    for t in (100, 500, 900):
        noise = torch.randn(x0.shape, generator=gen)
        x_t = abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * noise
        with torch.no_grad():
            errors[t] = float((unet(x_t, torch.full((16,), t)).sample - noise).pow(2).mean())
    # predicting zero noise scores 1.0; the trained model must be far better at every noise level
    assert max(errors.values()) < 0.25, errors


def test_ddim_inversion_reconstructs_split_faces_through_the_diffusers_backend():
    import asyrp_bench as ab

    backend = ab.load_backend("diffusers", weights="world_ddpm")
    assert backend.h_shape == (128, 4, 4) and backend.image_size == 32
    images = render_split(4).images
    rec = check.recon(backend, images, n_steps=20)
    assert float(check.psnr_db(rec, images).mean()) > 25.0


def test_clip_loads_through_open_clip_local_dir_with_standard_preprocessing():
    import open_clip
    from PIL import Image

    folder = weights.require("world_clip")
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    model.eval()
    names = [type(t).__name__ for t in preprocess.transforms]
    assert names[:2] == ["Resize", "CenterCrop"] and names[-1] == "Normalize"
    assert preprocess.transforms[0].size == 32
    img = render_split(1).images[0]
    pil = Image.fromarray((img * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy())
    clip = check.load_world_clip()  # the project's loader, through the weights key
    assert clip.image_size == 32
    with torch.no_grad():
        via_pil = torch.nn.functional.normalize(model.encode_image(preprocess(pil)[None]), dim=1)
    assert torch.allclose(via_pil, clip.encode_images(img[None] * 2 - 1), atol=2e-2)


def test_clip_ranks_the_true_caption_first_on_held_out_faces():
    top1 = check.clip_top1(check.load_world_clip(), n=120)
    assert min(top1.values()) >= 0.9, top1


def test_clip_text_directions_point_where_the_images_move():
    cos = check.clip_direction_cos(check.load_world_clip(), n=32)
    assert cos["smiling"] > 0.3 and cos["tanned"] > 0.3, cos


def test_clip_image_gradients_are_finite_and_nonzero():
    clip = check.load_world_clip()
    x = (render_split(2).images * 2 - 1).requires_grad_(True)
    direction = clip.text_direction(*captions.EDIT_PROMPTS["smiling"])
    (clip.encode_images(x) @ direction).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_parser_loads_with_its_sidecar_and_segments_held_out_faces():
    model, sidecar = assets.load_parser()
    assert sidecar["classes"][0] == "background" and sidecar["input_size"] == 32
    assert len(sidecar["mean"]) == 3 and len(sidecar["std"]) == 3
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert check.parser_miou(n=24) > 0.8


def test_embedder_contract_and_discrimination():
    from asyrp_bench.world.nets import WorldFaceEmbedder

    emb = WorldFaceEmbedder.load(None, "cpu")
    faces = check.eval_faces(24, offset=70_000)
    images = render(faces).images
    z, found = emb.embed(images)
    assert z.shape == (24, emb.dim) and found.dtype == torch.bool and bool(found.all())
    assert torch.allclose(z.norm(dim=1), torch.ones(24), atol=1e-5)
    # any size is accepted (resized inside); a 2x upscale embeds to nearly the same point
    z_big, _ = emb.embed(torch.nn.functional.interpolate(images, scale_factor=2, mode="nearest"))
    assert float((z_big * z).sum(1).min()) > 0.9
    rng = np.random.default_rng(1)
    edited = with_attributes(faces, smile=rng.uniform(-1, 1, 24), tan=rng.uniform(0, 1, 24))
    z_edit, _ = emb.embed(render(edited).images)
    same = (z * z_edit).sum(1)
    other = z @ z.T
    other = other[~torch.eye(24, dtype=torch.bool)]
    assert float(same.median()) > 0.8 and float(other.median()) < 0.5
    assert float((z @ z_edit.T).argmax(1).eq(torch.arange(24)).float().mean()) >= 0.9
    with pytest.raises(Exception, match="RGB"):
        emb.embed(torch.rand(2, 1, 32, 32))


def test_oracle_reads_the_attributes_it_checks():
    from asyrp_bench.world.nets import WorldOracle

    oracle = WorldOracle.load()
    faces = check.eval_faces(48, offset=80_000)
    pred = oracle.predict(render(faces).images)
    assert float((pred["smile"] - torch.as_tensor(faces.smile)).abs().mean()) < 0.15
    assert float((pred["tan"] - torch.as_tensor(faces.tan)).abs().mean()) < 0.1
    assert float(((pred["glasses"] > 0.5).numpy() == (faces.glasses > 0.5)).mean()) > 0.95
    ladder = [oracle.predict(render(with_attributes(faces[:8], smile=s)).images)["smile"] for s in (-0.8, 0, 0.8)]
    assert bool((ladder[0] < ladder[1]).all() and (ladder[1] < ladder[2]).all())


def test_fid_extractor_registers_once_and_separates_sets():
    import torch_fidelity

    from asyrp_bench.world.nets import FID_EXTRACTOR_NAME, register_fid_extractor

    assert register_fid_extractor() == FID_EXTRACTOR_NAME == register_fid_extractor()
    assert FID_EXTRACTOR_NAME in torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY
    n = 160
    a = render(check.eval_faces(n, offset=90_000)).images
    b = render(check.eval_faces(n, offset=91_000)).images
    smiling = render(with_attributes(check.eval_faces(n, offset=91_000), smile=1.0)).images
    tanned = render(with_attributes(check.eval_faces(n, offset=91_000), tan=1.0)).images
    floor = check.fid_world(a, b)  # two disjoint sets of generator faces
    assert abs(check.fid_world(a, a)) < 1e-3
    assert check.fid_world(a, smiling) > 3 * floor and check.fid_world(a, tanned) > 3 * floor
    # trained with blur augmentation, the extractor sees blur only mildly (docs/world.md)
    assert check.fid_world(a, torch.nn.functional.avg_pool2d(b, 3, 1, 1)) > floor


def test_world_models_plug_into_the_metrics_registries():
    from asyrp_bench.metrics.face_embedders import FACE_EMBEDDERS, FaceEmbedder
    from asyrp_bench.metrics.fid import ensure_extractor
    from asyrp_bench.metrics.seg_consistency import load_segmenter
    from asyrp_bench.world.nets import FID_EXTRACTOR_NAME, WorldFaceEmbedder

    assert FACE_EMBEDDERS.get("world") is WorldFaceEmbedder and issubclass(WorldFaceEmbedder, FaceEmbedder)
    assert ensure_extractor(FID_EXTRACTOR_NAME).__name__ == "WorldFeatureExtractor"
    segmenter = load_segmenter("world_parser")
    faces = render(check.eval_faces(8, offset=95_000))
    labels = segmenter.predict((faces.images * 255 + 0.5).to(torch.uint8))
    assert segmenter.classes == list(CLASSES) and labels.shape == (8, 32, 32)
    assert float((labels == faces.masks).float().mean()) > 0.9

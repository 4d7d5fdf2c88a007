"""``asyrp-bench world check``: the measured quality of the shipped world (issue 6's bars).

* ``recon_psnr_db``: DDIM inversion (η=0, 40 steps, spec §1.3) of the world split and regeneration from x_T;
  mean PSNR over the 64 faces, images in [0,1]. Bar: ≥ 25 dB.
* ``fid_samples``: FID under the ``asyrp-world`` extractor between DDPM samples (40 DDIM steps from seeded
  noise) and as many generator faces; ``fid_floor`` is the FID between two disjoint generator sets of that size.
* ``clip_top1``: the tiny CLIP's zero-shot top-1 over each attribute's classes on held-out faces whose
  attribute lies clearly inside a class band (template-averaged class embeddings); the minimum over
  attributes, with each attribute in ``clip_top1_per_attribute``. Bar: ≥ 0.9 each.
* ``clip_direction_cos``: cos between the mean image-embedding change of ground-truth edits (same identity,
  attribute changed) and Asyrp's template-averaged text direction (spec §4.4), per edit.
* judges: oracle error on held-out faces, identity embedder same-vs-different identity cosines, parser mIoU.
* edits (``smile_success_rate``, ``tan_success_rate``, ``id_cosine_median``): need the editor training of
  issue 3; reported as null until it lands.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from asyrp_bench.errors import InputError
from asyrp_bench.world import assets, captions, recipe
from asyrp_bench.world.generator import ATTRIBUTES, render, sample_params, with_attributes

if TYPE_CHECKING:
    from asyrp_bench.clip import ClipModel
    from asyrp_bench.diffusion.backends.base import Backend

Log = Callable[[str], None]


# -- the DDPM through the backend and the Asyrp engine ---------------------------------------------------------
def load_backend(root: Path | None = None, device: str = "cpu") -> Backend:
    """The world DDPM through the normal ``diffusers`` backend path (weights key ``world_ddpm`` by default)."""
    import asyrp_bench as ab

    weights = "world_ddpm" if root is None else str(assets.asset_path("ddpm", root))
    return ab.load_backend("diffusers", weights=weights, device=device)


def batched(fn: Callable[[Tensor], Tensor], x: Tensor, batch: int = 64) -> Tensor:
    return torch.cat([fn(x[i: i + batch]) for i in range(0, x.shape[0], batch)])


def psnr_db(a: Tensor, b: Tensor) -> Tensor:
    """Per-image PSNR in dB of images in [0,1], [B]."""
    mse = (a.clamp(0, 1) - b.clamp(0, 1)).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


def recon(backend: Backend, images: Tensor, n_steps: int = 40) -> Tensor:
    """DDIM inversion (η=0, spec §1.3) + regeneration of images in [0,1]; the reconstructions in [0,1]."""
    import asyrp_bench as ab

    def one(x: Tensor) -> Tensor:
        return ab.generate(backend, ab.invert(backend, x * 2 - 1, n_steps), n_steps)

    return (batched(one, images) + 1) / 2


@torch.no_grad()
def sample(backend: Backend, n: int, seed: int = 0, n_steps: int = 40, eta: float = 1.0,
           clip_x0: bool = True) -> Tensor:
    """n samples in [0,1] from noise drawn with ``torch.Generator().manual_seed(seed)``.

    Default: the DDPM sampler as DDPM/diffusers run it (η = 1, predicted x0 clipped to [-1, 1] at every step,
    ε re-derived from the clipped x0). ``eta=0, clip_x0=False`` is plain DDIM, the generative half of the Asyrp
    process. The world DDPM's ε at t ≳ 700 is good enough for inversion and editing (its errors cancel between
    inversion and regeneration) but P_t there is far from [-1,1], so unclipped sampling from pure noise drifts
    to saturated colours (docs/world.md).
    """
    from asyrp_bench.diffusion.schedule import (
        alpha_bar,
        alphas_cumprod,
        ddim_update,
        generation_pairs,
        predict_x0,
        timestep_grid,
    )

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, backend.image_size, backend.image_size, generator=gen)
    abar = alphas_cumprod()
    for t, t_next in generation_pairs(timestep_grid(n_steps)):
        a_t, a_next = alpha_bar(abar, t), alpha_bar(abar, t_next)
        eps = batched(lambda v, t=t: backend(v, t), x)
        if clip_x0:
            x0 = predict_x0(x, eps, a_t).clamp(-1.0, 1.0)
            eps = (x - a_t.sqrt() * x0) / (1.0 - a_t).sqrt()
        noise = torch.randn(x.shape, generator=gen) if eta > 0 else None
        x, _ = ddim_update(x, eps, eps, a_t, a_next, eta=eta, noise=noise)
    return ((x + 1) / 2).clamp(0, 1)


@torch.no_grad()
def invert_with_x0_table(backend: Backend, images: Tensor, masks: Tensor, root: Path | None = None,
                         n_steps: int = 40) -> tuple[Tensor, list[dict[str, float]]]:
    """DDIM inversion of images in [0,1] (the same chain as ``asyrp_bench.invert``), returning x_T and how much
    of a face P_t still holds at each grid timestep: mean |P_t − x0| (in [0,1] units), PSNR and the parser's mIoU
    of P_t against the true part masks. The world's analogue of the LPIPS(x0, P_t) tables behind Asyrp's t_edit /
    t_boost rule (spec §5.1); LPIPS itself needs VGG/Alex weights."""
    from asyrp_bench.diffusion.schedule import (
        alpha_bar,
        alphas_cumprod,
        ddim_update,
        inversion_pairs,
        predict_x0,
        timestep_grid,
    )

    abar = alphas_cumprod()
    x = images * 2 - 1
    rows = []
    for t, t_next in inversion_pairs(timestep_grid(n_steps)):
        eps = batched(lambda v, t=t: backend(v, t), x)
        p01 = ((predict_x0(x, eps, alpha_bar(abar, t)) + 1) / 2).clamp(0, 1)
        rows.append({"t": t, "l1": float((p01 - images).abs().mean()), "psnr_db": float(psnr_db(p01, images).mean()),
                     "parser_miou": parser_miou(root, images=p01, masks=masks)})
        x, _ = ddim_update(x, eps, eps, alpha_bar(abar, t), alpha_bar(abar, t_next))
    return x, rows


# -- FID under the world extractor -------------------------------------------------------------------------
class _UInt8Images(torch.utils.data.Dataset):
    def __init__(self, images: Tensor) -> None:
        self.images = (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i]


def fid_world(a: Tensor, b: Tensor, root: Path | None = None) -> float:
    """FID between two image sets in [0,1] under the ``asyrp-world`` torch-fidelity extractor."""
    import torch_fidelity

    from asyrp_bench.world.nets import register_fid_extractor

    name = register_fid_extractor()
    metrics = torch_fidelity.calculate_metrics(
        input1=_UInt8Images(a), input2=_UInt8Images(b), fid=True, feature_extractor=name,
        feature_extractor_weights_path=str(assets.asset_path("oracle", root)), cuda=False, save_cpu_ram=True,
        cache=False, verbose=False, batch_size=64)
    return float(metrics[torch_fidelity.KEY_METRIC_FID])


def eval_faces(n: int, offset: int = 0, glasses_prob: float = 0.5):
    """Held-out faces for the judges' checks (seeds from ``recipe.EVAL_SEED_BASE``)."""
    seeds = np.arange(recipe.EVAL_SEED_BASE + offset, recipe.EVAL_SEED_BASE + offset + n)
    return sample_params(seeds, glasses_prob=glasses_prob)


# -- CLIP --------------------------------------------------------------------------------------------------
def load_world_clip(root: Path | None = None) -> ClipModel:
    """The tiny CLIP through the project's loader (weights key ``world_clip`` or a ``local-dir:`` folder)."""
    from asyrp_bench.clip import load_clip

    return load_clip("world_clip" if root is None else f"local-dir:{assets.asset_path('clip', root)}")


@torch.no_grad()
def class_embedding(clip: ClipModel, phrase: str) -> Tensor:
    """Zero-shot class embedding: normalize(mean over the 79 templates of the normalised text embeddings)."""
    from asyrp_bench.clip import imagenet_templates

    return F.normalize(clip.encode_text([t(phrase) for t in imagenet_templates()]).mean(0), dim=0)


@torch.no_grad()
def clip_top1(clip: ClipModel, n: int = 400) -> dict[str, float]:
    """Zero-shot top-1 per attribute on held-out faces inside the class bands (captions.ZERO_SHOT)."""
    params = eval_faces(n)
    emb = clip.encode_images(render(params).images * 2 - 1)
    words = captions.attribute_words(params)
    out = {}
    for attr, classes in captions.ZERO_SHOT.items():
        names = list(classes)
        text = torch.stack([class_embedding(clip, classes[c]) for c in names])
        pred = (emb @ text.T).argmax(1).numpy()
        truth = np.asarray(words[attr])
        keep = np.isin(truth, names)
        out[attr] = float(np.mean(np.asarray(names)[pred[keep]] == truth[keep]))
    return out


@torch.no_grad()
def clip_direction_cos(clip: ClipModel, n: int = 128) -> dict[str, float]:
    """cos(normalize(mean_i [E_I(edit_i) − E_I(src_i)]), Asyrp's text direction) for ground-truth edits of
    held-out faces (the same identities with one attribute set), per edit of ``captions.EDIT_PROMPTS``."""
    params = eval_faces(n, offset=10_000)
    src = clip.encode_images(render(params).images * 2 - 1)
    cases = {"smiling": {"smile": 0.9}, "sad": {"smile": -0.9}, "tanned": {"tan": 1.0}, "pale": {"tan": 0.0},
             "glasses": {"glasses": 1.0}}
    out = {}
    for edit, attrs in cases.items():
        moved = clip.encode_images(render(with_attributes(params, **attrs)).images * 2 - 1)
        d_img = F.normalize((moved - src).mean(0), dim=0)
        out[edit] = float(d_img @ clip.text_direction(*captions.EDIT_PROMPTS[edit]))
    return out


# -- judges --------------------------------------------------------------------------------------------------
def oracle_errors(root: Path | None = None, n: int = 400) -> dict[str, float]:
    from asyrp_bench.world.nets import WorldOracle

    oracle = WorldOracle.load(None if root is None else str(assets.asset_path("oracle", root)))
    params = eval_faces(n, offset=20_000)
    pred = oracle.predict(render(params).images)
    return {"smile_mae": float((pred["smile"] - torch.as_tensor(params.smile)).abs().mean()),
            "tan_mae": float((pred["tan"] - torch.as_tensor(params.tan)).abs().mean()),
            "glasses_acc": float(((pred["glasses"] > 0.5).numpy() == (params.glasses > 0.5)).mean())}


def identity_stats(root: Path | None = None, n: int = 128) -> dict[str, float]:
    """Cosines of the same identity under new attributes vs of different identities, and top-1 retrieval."""
    from asyrp_bench.world.nets import WorldFaceEmbedder

    emb = WorldFaceEmbedder.load(None if root is None else str(assets.asset_path("identity", root)))
    params = eval_faces(n, offset=30_000)
    rng = np.random.default_rng(0)
    other = with_attributes(params, smile=rng.uniform(-1, 1, n), tan=rng.uniform(0, 1, n),
                            glasses=(rng.uniform(size=n) < 0.5).astype(float))
    a, _ = emb.embed(render(params).images)
    b, _ = emb.embed(render(other).images)
    sim = a @ b.T
    same = sim.diagonal()
    diff = sim[~torch.eye(n, dtype=torch.bool)]
    return {"same_identity_cos_median": float(same.median()), "other_identity_cos_median": float(diff.median()),
            "retrieval_top1": float((sim.argmax(1) == torch.arange(n)).float().mean())}


def parser_miou(root: Path | None = None, n: int = 128, images: Tensor | None = None,
                masks: Tensor | None = None) -> float:
    model, sidecar = assets.load_parser(root)
    if images is None or masks is None:
        faces = render(eval_faces(n, offset=40_000))
        images, masks = faces.images, faces.masks
    mean = torch.tensor(sidecar["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(sidecar["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        pred = model((images - mean) / std).argmax(1)
    ious = []
    for c in range(len(sidecar["classes"])):
        inter = ((pred == c) & (masks == c)).sum().item()
        union = ((pred == c) | (masks == c)).sum().item()
        if union:
            ious.append(inter / union)
    return float(np.mean(ious))


# -- the whole check ---------------------------------------------------------------------------------------
EDIT_KEYS = ("smile_success_rate", "tan_success_rate", "id_cosine_median")


def run_check(root: Path | None = None, n_samples: int = 256, n_steps: int = 40, n_faces: int | None = None,
              log: Log | None = None, edits: bool = True, edit_overrides: dict[str, Any] | None = None,
              images_out: Path | None = None) -> dict[str, Any]:
    """Measure the world; ``root`` is a trained world folder (default: the shipped files). ``n_faces`` limits
    the reconstruction to the first faces of the split (all 64 by default)."""
    import asyrp_bench as ab
    from asyrp_bench.world.split import render_split

    if n_samples < 2:
        raise InputError(f"n_samples must be at least 2 (FID needs two images per set), got {n_samples}")
    log = log or (lambda message: None)
    out: dict[str, Any] = {"n_steps": n_steps}
    backend = load_backend(root)
    split = render_split(n_faces)
    out["n_faces"] = len(split.ids)
    log("DDIM inversion + regeneration of the world split")
    # one inversion of the split serves the P_t table, the reconstructions and the edits
    x_T, out["predicted_x0_table"] = invert_with_x0_table(backend, split.images, split.masks, root, n_steps)
    rec = (batched(lambda x: ab.generate(backend, x, n_steps), x_T) + 1) / 2
    psnr = psnr_db(rec, split.images)
    out["recon_psnr_db"] = float(psnr.mean())
    out["recon_psnr_db_min"] = float(psnr.min())
    out["recon_parser_miou"] = parser_miou(root, images=rec, masks=split.masks)
    log(f"{n_samples} DDPM samples, two samplers")
    samples = sample(backend, n_samples, seed=0, n_steps=n_steps)
    plain = sample(backend, n_samples, seed=0, n_steps=n_steps, eta=0.0, clip_x0=False)
    reference = render(eval_faces(n_samples, offset=50_000)).images
    other = render(eval_faces(n_samples, offset=60_000)).images
    log("FID under the asyrp-world extractor")
    out["fid_samples"] = fid_world(samples, reference, root)
    out["fid_samples_plain_ddim"] = fid_world(plain, reference, root)
    out["fid_floor"] = fid_world(other, reference, root)
    out["n_fid"] = n_samples
    images: dict[str, Tensor] = {"generator": split.images, "recon": rec, "samples": samples,
                                 "samples_plain_ddim": plain}
    log("CLIP")
    clip = load_world_clip(root)
    per_attr = clip_top1(clip)
    out["clip_top1"] = min(per_attr.values())
    out["clip_top1_per_attribute"] = per_attr
    out["clip_direction_cos"] = clip_direction_cos(clip)
    log("judges")
    out["oracle"] = oracle_errors(root)
    out["identity"] = identity_stats(root)
    out["parser_miou"] = parser_miou(root)
    out["attributes"] = list(ATTRIBUTES)
    if edits:
        from asyrp_bench.world.edits import CHECKED_EDITS, score_edits, train_world_editor

        editors = {}
        for name in CHECKED_EDITS:
            log(f"training the {name!r} editor (recipe world_quickstart)")
            editors[name] = train_world_editor(backend, clip, name, overrides=edit_overrides)
        log("editing the split")
        scores = score_edits(backend, editors, split, n_steps=n_steps, root=root, x_T=x_T, recon=rec)
        for name in CHECKED_EDITS:
            images[f"edit_{name}"] = scores.pop(f"{name}_images")
        scores.pop("recon_images")
        # one comparison grid: sources, reconstructions, then each edit, 16 faces per row
        images["edits"] = torch.cat([split.images[:16], rec[:16], *(images[f"edit_{n}"][:16] for n in CHECKED_EDITS)])
        out["smile_success_rate"] = scores["smiling"]["success_rate"]
        out["tan_success_rate"] = scores["tanned"]["success_rate"]
        out["id_cosine_median"] = scores["id_cosine_median"]
        out["edits"] = scores
    else:
        for key in EDIT_KEYS:
            out[key] = None
        out["edits"] = "skipped (--no-edits)"
    if images_out is not None:
        write_grids(images, Path(images_out))
    return out


def write_grids(images: dict[str, Tensor], folder: Path, per_row: int = 16, scale: int = 2) -> None:
    """One PNG grid per image set (nearest-neighbour upscaled), e.g. for docs/img/."""
    from torchvision.utils import save_image

    folder.mkdir(parents=True, exist_ok=True)
    for name, batch in images.items():
        grid = F.interpolate(batch[:64].clamp(0, 1), scale_factor=scale, mode="nearest")
        save_image(grid, str(folder / f"world_{name}.png"), nrow=per_row, padding=1, pad_value=1.0)

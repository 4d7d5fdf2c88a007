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

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asyrp_bench.diffusion.schedule import (
    alpha_bar,
    alphas_cumprod,
    ddim_update,
    generation_pairs,
    inversion_pairs,
    timestep_grid,
)
from asyrp_bench.world import assets, captions, recipe
from asyrp_bench.world.generator import ATTRIBUTES, render, sample_params, with_attributes

Log = Callable[[str], None]


# -- DDIM on the bare UNet (the Asyrp engine's invert/generate replace these once on main) ----------------------
@torch.no_grad()
def ddim_invert(unet: nn.Module, x0: Tensor, n_steps: int = 40) -> Tensor:
    """x0 in [-1,1] -> x_999 by η=0 DDIM over the n_steps grid (spec §1.3)."""
    abar = alphas_cumprod()
    x = x0
    for t, t_next in inversion_pairs(timestep_grid(n_steps)):
        eps = unet(x, torch.full((x.shape[0],), t)).sample
        x, _ = ddim_update(x, eps, eps, alpha_bar(abar, t), alpha_bar(abar, t_next))
    return x


@torch.no_grad()
def ddim_generate(unet: nn.Module, x_t: Tensor, n_steps: int = 40) -> Tensor:
    """x_999 -> x0 in [-1,1] by η=0 DDIM (the last step returns the predicted x0)."""
    abar = alphas_cumprod()
    x = x_t
    for t, t_next in generation_pairs(timestep_grid(n_steps)):
        eps = unet(x, torch.full((x.shape[0],), t)).sample
        x, _ = ddim_update(x, eps, eps, alpha_bar(abar, t), alpha_bar(abar, t_next))
    return x


def batched(fn: Callable[[Tensor], Tensor], x: Tensor, batch: int = 64) -> Tensor:
    return torch.cat([fn(x[i: i + batch]) for i in range(0, x.shape[0], batch)])


def psnr_db(a: Tensor, b: Tensor) -> Tensor:
    """Per-image PSNR in dB of images in [0,1], [B]."""
    mse = (a.clamp(0, 1) - b.clamp(0, 1)).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


def recon(unet: nn.Module, images: Tensor, n_steps: int = 40) -> Tensor:
    """DDIM inversion + regeneration of images in [0,1]; returns the reconstructions in [0,1]."""
    x_t = batched(lambda x: ddim_invert(unet, x * 2 - 1, n_steps), images)
    return (batched(lambda x: ddim_generate(unet, x, n_steps), x_t) + 1) / 2


def sample(unet: nn.Module, n: int, seed: int = 0, n_steps: int = 40) -> Tensor:
    """n DDIM samples (η=0) in [0,1] from noise drawn with ``torch.Generator().manual_seed(seed)``."""
    noise = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    return ((batched(lambda x: ddim_generate(unet, x, n_steps), noise) + 1) / 2).clamp(0, 1)


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
class ClipJudge:
    """The tiny CLIP with template-averaged text embeddings (spec §4.4) and tensor preprocessing."""

    def __init__(self, root: Path | None = None) -> None:
        self.model, self.preprocess, self.tokenizer = assets.load_clip(root)
        cfg = json.loads((assets.asset_path("clip", root) / "open_clip_config.json").read_text())["preprocess_cfg"]
        self.mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
        self.size = int(cfg["size"])

    @torch.no_grad()
    def image_embeddings(self, images: Tensor) -> Tensor:
        if images.shape[-1] != self.size:
            images = F.interpolate(images, size=(self.size, self.size), mode="bicubic", align_corners=False)
        return F.normalize(self.model.encode_image((images - self.mean) / self.std), dim=1)

    @torch.no_grad()
    def text_embedding(self, phrase: str) -> Tensor:
        """normalize(mean over the 79 templates of normalize(E_T(template(phrase)))), [D]."""
        tokens = self.tokenizer([t(phrase) for t in captions.templates()])
        emb = F.normalize(self.model.encode_text(tokens), dim=1).mean(0)
        return F.normalize(emb, dim=0)

    def direction(self, source: str, target: str) -> Tensor:
        """Asyrp's text direction: the template-averaged (target − source), normalised (spec §4.4)."""
        tokens_s = self.tokenizer([t(source) for t in captions.templates()])
        tokens_t = self.tokenizer([t(target) for t in captions.templates()])
        with torch.no_grad():
            es = F.normalize(self.model.encode_text(tokens_s), dim=1)
            et = F.normalize(self.model.encode_text(tokens_t), dim=1)
        return F.normalize((et - es).mean(0), dim=0)


def clip_top1(judge: ClipJudge, n: int = 400) -> dict[str, float]:
    """Zero-shot top-1 per attribute on held-out faces inside the class bands (captions.ZERO_SHOT)."""
    params = eval_faces(n)
    emb = judge.image_embeddings(render(params).images)
    words = captions.attribute_words(params)
    out = {}
    for attr, classes in captions.ZERO_SHOT.items():
        names = list(classes)
        text = torch.stack([judge.text_embedding(classes[c]) for c in names])
        pred = (emb @ text.T).argmax(1).numpy()
        truth = np.asarray(words[attr])
        keep = np.isin(truth, names)
        out[attr] = float(np.mean(np.asarray(names)[pred[keep]] == truth[keep]))
    return out


def clip_direction_cos(judge: ClipJudge, n: int = 128) -> dict[str, float]:
    """cos(mean_i [E_I(edit_i) − E_I(src_i)], text direction) for ground-truth edits of held-out faces."""
    params = eval_faces(n, offset=10_000)
    src = judge.image_embeddings(render(params).images)
    cases = {"smiling": {"smile": 0.9}, "sad": {"smile": -0.9}, "tanned": {"tan": 1.0}, "pale": {"tan": 0.0},
             "glasses": {"glasses": 1.0}}
    out = {}
    for edit, attrs in cases.items():
        moved = judge.image_embeddings(render(with_attributes(params, **attrs)).images)
        d_img = F.normalize((moved - src).mean(0), dim=0)
        out[edit] = float(d_img @ judge.direction(*captions.EDIT_PROMPTS[edit]))
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


def run_check(root: Path | None = None, n_samples: int = 256, n_steps: int = 40, log: Log | None = None,
              samples_out: Path | None = None) -> dict[str, Any]:
    """Measure the world; ``root`` is a trained world folder (default: the shipped files)."""
    from asyrp_bench.world.split import render_split

    log = log or (lambda message: None)
    out: dict[str, Any] = {"n_steps": n_steps}
    unet = assets.load_unet(root)
    split = render_split()
    log("DDIM inversion + regeneration of the world split")
    rec = recon(unet, split.images, n_steps)
    psnr = psnr_db(rec, split.images)
    out["recon_psnr_db"] = float(psnr.mean())
    out["recon_psnr_db_min"] = float(psnr.min())
    out["recon_parser_miou"] = parser_miou(root, images=rec, masks=split.masks)
    log(f"{n_samples} DDPM samples")
    samples = sample(unet, n_samples, seed=0, n_steps=n_steps)
    if samples_out is not None:
        torch.save(samples, samples_out)
    reference = render(eval_faces(n_samples, offset=50_000)).images
    other = render(eval_faces(n_samples, offset=60_000)).images
    log("FID under the asyrp-world extractor")
    out["fid_samples"] = fid_world(samples, reference, root)
    out["fid_floor"] = fid_world(other, reference, root)
    out["n_fid"] = n_samples
    log("CLIP")
    judge = ClipJudge(root)
    per_attr = clip_top1(judge)
    out["clip_top1"] = min(per_attr.values())
    out["clip_top1_per_attribute"] = per_attr
    out["clip_direction_cos"] = clip_direction_cos(judge)
    log("judges")
    out["oracle"] = oracle_errors(root)
    out["identity"] = identity_stats(root)
    out["parser_miou"] = parser_miou(root)
    for key in EDIT_KEYS:
        out[key] = None
    out["edits"] = "pending: needs the additive editor trained by the quickstart recipe (issue 3)"
    out["attributes"] = list(ATTRIBUTES)
    return out

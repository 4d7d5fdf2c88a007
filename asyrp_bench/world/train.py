"""Training of the world's models (``asyrp-bench world train``), resumable from checkpoints.

Every step's data and noise are pure functions of (model seed, step): the faces of step k are the seeds
``TRAIN_SEED_BASE[name] + k·B ... + (k+1)·B - 1`` (always fresh faces: infinite data), and the noise / timesteps
come from a ``torch.Generator`` seeded with (seed, k). A run stopped and resumed from its checkpoint therefore
sees exactly the same batches as an uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asyrp_bench.diffusion.schedule import alphas_cumprod
from asyrp_bench.errors import InputError
from asyrp_bench.world import recipe
from asyrp_bench.world.generator import RenderedFaces, render, sample_params
from asyrp_bench.world.recipe import TrainSpec

Logger = Callable[[dict[str, Any]], None]


def step_faces(name: str, step: int, batch: int) -> RenderedFaces:
    """The training faces of ``step`` for model ``name`` (fresh seeds every step)."""
    base = recipe.TRAIN_SEED_BASE[name] + step * batch
    return render(sample_params(np.arange(base, base + batch)))


def step_generator(spec: TrainSpec, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(spec.seed * 1_000_003 + step)


def lr_at(spec: TrainSpec, step: int) -> float:
    """Linear warm-up, then a cosine decay to 10 % of the peak over the run."""
    if step < spec.warmup:
        return spec.lr * (step + 1) / spec.warmup
    progress = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return spec.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


class Checkpoint:
    """Atomic save / load of a training state (weights_only-safe: tensors, numbers, lists, dicts)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(p, 1.0 - decay)
        for e, b in zip(ema.buffers(), model.buffers(), strict=True):
            e.copy_(b)


def _run_loop(
    name: str,
    model: nn.Module,
    spec: TrainSpec,
    work_dir: Path,
    loss_fn: Callable[[int, torch.Generator], Tensor],
    log: Logger,
    params: list[nn.Parameter] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The shared resumable loop: AdamW, warm-up + cosine LR, optional EMA, gradient clipping at 1."""
    opt = torch.optim.AdamW(params if params is not None else model.parameters(), lr=spec.lr, weight_decay=0.0)
    ema = copy.deepcopy(model).requires_grad_(False) if spec.ema_decay else None
    ckpt = Checkpoint(work_dir / f"{name}.ckpt.pt")
    state = ckpt.load()
    start, wall, history = 0, 0.0, []
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        start, wall, history = int(state["step"]), float(state["wall"]), list(state["history"])
        log({"model": name, "event": "resumed", "step": start})
    model.train()
    t0, window = time.perf_counter(), []
    for step in range(start, spec.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(spec, step)
        loss = loss_fn(step, step_generator(spec, step))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name}: loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if ema is not None:
            _ema_update(ema, model, min(spec.ema_decay or 0.0, (1.0 + step) / (10.0 + step)))
        window.append(float(loss.detach()))
        done = step + 1
        if done % 20 == 0 or done == spec.steps:
            elapsed = wall + time.perf_counter() - t0
            history.append([done, float(np.mean(window))])
            log({"model": name, "step": done, "of": spec.steps, "loss": round(float(np.mean(window)), 5),
                 "lr": round(lr_at(spec, step), 6), "elapsed_s": round(elapsed, 1)})
            window = []
        if done % spec.checkpoint_every == 0 or done == spec.steps:
            ckpt.save({"model": model.state_dict(), "opt": opt.state_dict(),
                       "ema": ema.state_dict() if ema is not None else {}, "step": done,
                       "wall": wall + time.perf_counter() - t0, "history": history})
    final = ckpt.load() or {}
    info = {"steps": spec.steps, "batch_size": spec.batch_size, "lr": spec.lr, "seed": spec.seed,
            "warmup": spec.warmup, "ema_decay": spec.ema_decay,
            "faces_seen": spec.steps * spec.batch_size, "wall_s": round(float(final.get("wall", 0.0)), 1),
            "final_loss": history[-1][1] if history else None}
    model.eval()
    return (ema if ema is not None else model), info


# -- DDPM ------------------------------------------------------------------------------------------------------
def build_ddpm() -> nn.Module:
    from diffusers import UNet2DModel

    return UNet2DModel(**recipe.DDPM_CONFIG)


def train_ddpm(out_dir: Path, work_dir: Path, spec: TrainSpec, log: Logger) -> dict[str, Any]:
    """ε-prediction on the linear T=1000 schedule of the Asyrp code (spec §1.1); saves the EMA weights in fp16."""
    torch.manual_seed(spec.seed)
    model = build_ddpm()
    abar = alphas_cumprod()

    def loss_fn(step: int, gen: torch.Generator) -> Tensor:
        x0 = step_faces("ddpm", step, spec.batch_size).to_minus1_1()
        t = torch.randint(0, len(abar), (x0.shape[0],), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        a = abar[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        return F.mse_loss(model(x_t, t).sample, noise)

    final, info = _run_loop("ddpm", model, spec, work_dir, loss_fn, log)
    target = out_dir / recipe.ASSET_DIRS["ddpm"]
    # fp16 storage halves the file; from_pretrained casts back to the float32 it builds (checked in tests)
    from diffusers.utils import logging as diffusers_logging

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # its "keep modules in float32" notice: none are, nothing to keep
    try:
        final.to(torch.float16).save_pretrained(target, safe_serialization=True)
    finally:
        diffusers_logging.set_verbosity(verbosity)
    final.float()
    _write_scheduler_config(target)
    info["n_params"] = sum(p.numel() for p in final.parameters())
    info["config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in recipe.DDPM_CONFIG.items()}
    return info


def _write_scheduler_config(folder: Path) -> None:
    """A diffusers DDIMScheduler config with the Asyrp schedule, so the folder also works with pipelines."""
    from diffusers import DDIMScheduler

    DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                  clip_sample=False, set_alpha_to_one=True).save_pretrained(folder)


# -- augmentation shared by the judges --------------------------------------------------------------------------
_KERNEL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def blur(images: Tensor, passes: int = 1) -> Tensor:
    """``passes`` applications of the 5-tap binomial filter (σ ≈ 1 px each), edges replicated."""
    k2 = (_KERNEL[:, None] * _KERNEL[None, :]).expand(3, 1, 5, 5)
    for _ in range(passes):
        images = F.conv2d(F.pad(images, (2, 2, 2, 2), mode="replicate"), k2, groups=3)
    return images


def augment(images: Tensor, gen: torch.Generator, masks: Tensor | None = None, noise_max: float = 0.04,
            blur_passes: int = 1) -> tuple[Tensor, Tensor | None]:
    """Robustness to DDPM outputs and Asyrp's blurry predicted x0 (spec §4.3): a random mix with a blurred copy,
    Gaussian noise of a random σ ≤ ``noise_max`` and a shift of up to one pixel (applied to the masks too). No
    colour changes: skin tone is an attribute. ``images`` float [B,3,H,W] in [0,1]."""
    b = images.shape[0]
    blurred = blur(images, blur_passes)
    mix = torch.rand(b, 1, 1, 1, generator=gen) * (torch.rand(b, 1, 1, 1, generator=gen) < 0.5)
    out = images + mix * (blurred - images)
    out = out + torch.rand(b, 1, 1, 1, generator=gen) * noise_max * torch.randn(out.shape, generator=gen)
    shifts = torch.randint(-1, 2, (b, 2), generator=gen)
    padded = F.pad(out, (1, 1, 1, 1), mode="replicate")
    h, w = images.shape[-2:]
    out = torch.stack([padded[i, :, 1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]
                       for i, (dy, dx) in enumerate(shifts.tolist())])
    if masks is not None:
        mpad = F.pad(masks[:, None].float(), (1, 1, 1, 1), mode="replicate")[:, 0].long()
        masks = torch.stack([mpad[i, 1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]
                             for i, (dy, dx) in enumerate(shifts.tolist())])
    return out.clamp(0.0, 1.0), masks


def degrade(images: Tensor, gen: torch.Generator, max_passes: int = 3, noise_max: float = 0.15) -> Tensor:
    """What Asyrp's CLIP loss sees on the edited side: a predicted x0 P̃_t, blurrier and noisier than the real
    x0 it is compared with (spec §4.3). Per image: 0..max_passes blur passes and noise of σ ≤ noise_max."""
    levels = torch.stack([blur(images, k) for k in range(max_passes + 1)])  # [K+1, B, 3, H, W]
    pick = torch.randint(0, max_passes + 1, (images.shape[0],), generator=gen)
    out = levels[pick, torch.arange(images.shape[0])]
    sigma = torch.rand(images.shape[0], 1, 1, 1, generator=gen) * noise_max
    return (out + sigma * torch.randn(out.shape, generator=gen)).clamp(0.0, 1.0)


# -- CLIP ------------------------------------------------------------------------------------------------------
def build_clip() -> nn.Module:
    import open_clip

    return open_clip.CLIP(**copy.deepcopy(recipe.CLIP_CONFIG))


def clip_preprocess_cfg() -> dict[str, Any]:
    """open_clip's standard preprocessing at the model's input size (OpenAI mean/std, bicubic resize)."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    return {"size": recipe.CLIP_CONFIG["vision_cfg"]["image_size"], "mean": list(OPENAI_DATASET_MEAN),
            "std": list(OPENAI_DATASET_STD), "interpolation": "bicubic", "resize_mode": "shortest"}


def clip_normalize(images: Tensor) -> Tensor:
    cfg = clip_preprocess_cfg()
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    return (images - mean) / std


def save_clip(folder: Path, model: nn.Module) -> None:
    """An open_clip ``local-dir:`` folder: open_clip_config.json + open_clip_model.safetensors (fp16)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": recipe.CLIP_CONFIG, "preprocess_cfg": clip_preprocess_cfg()}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))


#: edits whose image changes the CLIP must align with Asyrp's text direction (captions.EDIT_PROMPTS): the
#: source faces get the attribute outside the target band, the edited copies inside it
CLIP_EDITS: dict[str, tuple[str, tuple[float, float], tuple[float, float]]] = {
    "smiling": ("smile", (-1.0, 0.2), (0.6, 1.0)),
    "sad": ("smile", (-0.2, 1.0), (-1.0, -0.6)),
    "tanned": ("tan", (0.0, 0.45), (0.75, 1.0)),
    "pale": ("tan", (0.55, 1.0), (0.0, 0.25)),
    "glasses": ("glasses", (0.0, 0.0), (1.0, 1.0)),
}
_OPPOSITE = {"smiling": "sad", "sad": "smiling", "tanned": "pale", "pale": "tanned"}
#: noise augmentation of the CLIP's images: strong enough that pixel noise cannot steer the directional loss
CLIP_NOISE_MAX = 0.15


def clip_direction_pairs(step: int, k: int, gen: torch.Generator) -> dict[str, tuple[Tensor, Tensor]]:
    """Ground-truth image pairs per edit (plus ``identity``: another face with the same attributes, and
    ``blur``: the face against a blurred copy), [k,3,32,32] each, for the directional terms of train_clip."""
    from asyrp_bench.world.generator import with_attributes

    base = recipe.TRAIN_SEED_BASE["clip"] + 10**8 + step * k * (len(CLIP_EDITS) + 2)
    pairs: dict[str, tuple[Tensor, Tensor]] = {}
    for i, (edit, (attr, src_range, tgt_range)) in enumerate(CLIP_EDITS.items()):
        params = sample_params(np.arange(base + i * k, base + (i + 1) * k))

        def draw(lo_hi: tuple[float, float]) -> np.ndarray:
            lo, hi = lo_hi
            return (lo + (hi - lo) * torch.rand(k, generator=gen)).double().numpy()

        src = with_attributes(params, **{attr: draw(src_range)})
        pairs[edit] = (render(src).images, render(with_attributes(src, **{attr: draw(tgt_range)})).images)
    j = len(CLIP_EDITS)
    a = sample_params(np.arange(base + j * k, base + (j + 1) * k))
    b = with_attributes(sample_params(np.arange(base + (j + 1) * k, base + (j + 2) * k)),
                        smile=a.smile, tan=a.tan, glasses=a.glasses)
    pairs["identity"] = (render(a).images, render(b).images)
    faces = pairs["smiling"][0]
    pairs["blur"] = (faces, degrade(faces, gen))
    return pairs


def train_clip(out_dir: Path, work_dir: Path, spec: TrainSpec, log: Logger) -> dict[str, Any]:
    """Contrastive training on (face, caption) pairs with multi-positive targets (captions.consistent), plus
    directional terms: the image-embedding change of a ground-truth edit must point along Asyrp's text
    direction (spec §4.4) and be orthogonal to the other edits' directions, while identity changes and blur
    must be orthogonal to every edit direction. Without them the directional CLIP loss is happy with colour
    shifts of the whole face (measured: a 'smiling' editor that tanned the skin)."""
    import open_clip

    from asyrp_bench.world import captions

    torch.manual_seed(spec.seed)
    model = build_clip()
    context = recipe.CLIP_CONFIG["text_cfg"]["context_length"]
    temps = captions.templates()
    phrases = sorted({p for e in CLIP_EDITS for p in captions.EDIT_PROMPTS[e]})
    k_pairs, n_templates = max(2, spec.batch_size // 10), 8

    def loss_fn(step: int, gen: torch.Generator) -> Tensor:
        base = recipe.TRAIN_SEED_BASE["clip"] + step * spec.batch_size
        params = sample_params(np.arange(base, base + spec.batch_size), glasses_prob=0.5)
        images, _ = augment(render(params).images, gen, noise_max=CLIP_NOISE_MAX, blur_passes=2)
        rng = np.random.default_rng([spec.seed, step])
        texts, used = captions.sample_captions(params, rng)
        tokens = open_clip.tokenize(texts, context_length=context)
        img, txt, scale = model(clip_normalize(images), tokens)[:3]
        logits = scale * img @ txt.T
        pos = torch.from_numpy(captions.consistent(used, params)).float()
        loss_i = -(pos / pos.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
        loss_t = -(pos / pos.sum(0, keepdim=True) * F.log_softmax(logits, dim=0)).sum(0).mean()
        # directional terms on a random subset of the 79 templates
        chosen = rng.choice(len(temps), size=n_templates, replace=False)
        prompt_tokens = open_clip.tokenize([temps[t](p) for p in phrases for t in chosen], context_length=context)
        emb = F.normalize(model.encode_text(prompt_tokens), dim=1).view(len(phrases), n_templates, -1)
        dirs = {e: F.normalize((emb[phrases.index(captions.EDIT_PROMPTS[e][1])]
                                - emb[phrases.index(captions.EDIT_PROMPTS[e][0])]).mean(0), dim=0)
                for e in CLIP_EDITS}
        pairs = clip_direction_pairs(step, k_pairs, gen)
        names = list(pairs)
        sources, _ = augment(torch.cat([pairs[n][0] for n in names]), gen)
        # the edited side looks like Asyrp's P̃_t: blurred and noisy (the blur pair is degraded already)
        targets = torch.cat([pairs[n][1] if n in ("blur", "identity") else degrade(pairs[n][1], gen)
                             for n in names])
        both = torch.stack([sources.view(len(names), k_pairs, 3, 32, 32),
                            targets.view(len(names), k_pairs, 3, 32, 32)], dim=1).flatten(0, 2)
        e_all = F.normalize(model.encode_image(clip_normalize(both)), dim=1).view(len(names), 2, k_pairs, -1)
        align, ortho = [], []
        for i, name in enumerate(names):
            delta = F.normalize(e_all[i, 1] - e_all[i, 0], dim=1)
            for e, d in dirs.items():
                cos = delta @ d
                if e == name:
                    align.append(1.0 - cos.mean())
                elif _OPPOSITE.get(name) != e:
                    ortho.append(cos.pow(2).mean())
        directional = torch.stack(align).mean() + torch.stack(ortho).mean()
        return 0.5 * (loss_i + loss_t) + directional

    final, info = _run_loop("clip", model, spec, work_dir, loss_fn, log)
    save_clip(out_dir / recipe.ASSET_DIRS["clip"], final)
    info["n_params"] = sum(p.numel() for p in final.parameters())
    info["config"] = recipe.CLIP_CONFIG
    return info


# -- face parser -----------------------------------------------------------------------------------------------
def build_parser() -> nn.Module:
    import segmentation_models_pytorch as smp

    from asyrp_bench.world.generator import CLASSES

    cfg = dict(recipe.PARSER_CONFIG)
    arch = cfg.pop("arch")
    cfg["decoder_channels"] = tuple(cfg["decoder_channels"])
    return smp.create_model(arch, encoder_weights=None, in_channels=3, classes=len(CLASSES), **cfg)


PARSER_MEAN = (0.5, 0.5, 0.5)
PARSER_STD = (0.5, 0.5, 0.5)


def train_parser(out_dir: Path, work_dir: Path, spec: TrainSpec, log: Logger) -> dict[str, Any]:
    """Per-pixel cross-entropy on the generator's part masks; saved with save_pretrained + segmenter.json."""
    from asyrp_bench.world.generator import CLASSES, IMAGE_SIZE

    torch.manual_seed(spec.seed)
    model = build_parser()
    mean = torch.tensor(PARSER_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(PARSER_STD).view(1, 3, 1, 1)

    def loss_fn(step: int, gen: torch.Generator) -> Tensor:
        faces = step_faces("parser", step, spec.batch_size)
        images, masks = augment(faces.images, gen, faces.masks)
        return F.cross_entropy(model((images - mean) / std), masks)

    final, info = _run_loop("parser", model, spec, work_dir, loss_fn, log)
    folder = out_dir / recipe.ASSET_DIRS["parser"]
    final.to(torch.float16).save_pretrained(str(folder))
    final.float()
    sidecar = {"classes": list(CLASSES), "input_size": IMAGE_SIZE, "mean": list(PARSER_MEAN), "std": list(PARSER_STD)}
    (folder / "segmenter.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    info["n_params"] = sum(p.numel() for p in final.parameters())
    info["config"] = recipe.PARSER_CONFIG
    return info


# -- identity embedder -----------------------------------------------------------------------------------------
IDENTITY_DIM = 64
IDENTITY_TEMPERATURE = 0.1


def random_attributes(n: int, gen: torch.Generator) -> dict[str, np.ndarray]:
    return {"smile": (torch.rand(n, generator=gen) * 2 - 1).double().numpy(),
            "tan": torch.rand(n, generator=gen).double().numpy(),
            "glasses": (torch.rand(n, generator=gen) < 0.5).double().numpy()}


def train_identity(out_dir: Path, work_dir: Path, spec: TrainSpec, log: Logger) -> dict[str, Any]:
    """NT-Xent over two views of each identity with independently drawn attributes (smile, tan, glasses)."""
    from asyrp_bench.world.generator import with_attributes
    from asyrp_bench.world.nets import SmallCNN, save_small_net

    torch.manual_seed(spec.seed)
    net = SmallCNN(out_dim=IDENTITY_DIM)
    n_id = spec.batch_size // 2

    def loss_fn(step: int, gen: torch.Generator) -> Tensor:
        base = recipe.TRAIN_SEED_BASE["identity"] + step * n_id
        params = sample_params(np.arange(base, base + n_id))
        views = [render(with_attributes(params, **random_attributes(n_id, gen))).images for _ in range(2)]
        images, _ = augment(torch.cat(views), gen)
        z = F.normalize(net(images * 2 - 1)[1], dim=1)
        sim = z @ z.T / IDENTITY_TEMPERATURE
        sim = sim.masked_fill(torch.eye(len(z), dtype=torch.bool), float("-inf"))
        target = torch.cat([torch.arange(n_id, 2 * n_id), torch.arange(n_id)])
        return F.cross_entropy(sim, target)

    final, info = _run_loop("identity", net, spec, work_dir, loss_fn, log)
    save_small_net(out_dir / recipe.ASSET_DIRS["identity"], final,
                   {"kind": "identity", "input_size": 32, "input_range": "[0,1] RGB, resized to 32 px",
                    "temperature": IDENTITY_TEMPERATURE})
    info["n_params"] = sum(p.numel() for p in final.parameters())
    return info


# -- attribute oracle ------------------------------------------------------------------------------------------
def oracle_targets(params: Any) -> Tensor:
    """smile, tan, glasses, then the identity parameters scaled to about [-1, 1] (an auxiliary task that makes
    the trunk feature describe the whole face: it is also the FID feature)."""
    from asyrp_bench.world.generator import HAIR_STYLES

    ident = torch.as_tensor(params.identity_vector(), dtype=torch.float32)
    cols = [torch.as_tensor(params.smile, dtype=torch.float32), torch.as_tensor(params.tan, dtype=torch.float32),
            torch.as_tensor(params.glasses, dtype=torch.float32)]
    style = F.one_hot(torch.as_tensor(params.hair_style), len(HAIR_STYLES)).float()
    names = params.identity_names
    keep = [i for i, n in enumerate(_identity_columns(names)) if n != "hair_style"]
    scaled = (ident[:, keep] - _ID_CENTER[keep]) / _ID_SCALE[keep]
    return torch.cat([torch.stack(cols, 1), scaled, style * 2 - 1], dim=1)


def _identity_columns(names: tuple[str, ...]) -> list[str]:
    out = []
    for n in names:
        out += [n] * (3 if n.endswith("_color") else 1)
    return out


# centre / half-range of each identity column (colours in [0,1], the rest from the generator's ranges)
_ID_CENTER = torch.tensor([0.5] * 9 + [0.28, 0.335, 2.6, 0.15, 2.0, 0.19, 0.1125, 0.051, 0.495, 0.13])
_ID_SCALE = torch.tensor([0.5] * 9 + [0.03, 0.025, 0.6, 0.15, 2.0, 0.11, 0.0225, 0.009, 0.025, 0.02])


def train_oracle(out_dir: Path, work_dir: Path, spec: TrainSpec, log: Logger) -> dict[str, Any]:
    """MSE on smile and tan, BCE on glasses, plus the identity parameters as an auxiliary target."""
    from asyrp_bench.world.nets import SmallCNN, save_small_net

    torch.manual_seed(spec.seed)
    probe = sample_params([0])
    n_out = oracle_targets(probe).shape[1]
    net = SmallCNN(out_dim=n_out)

    def loss_fn(step: int, gen: torch.Generator) -> Tensor:
        base = recipe.TRAIN_SEED_BASE["oracle"] + step * spec.batch_size
        params = sample_params(np.arange(base, base + spec.batch_size), glasses_prob=0.5)
        images, _ = augment(render(params).images, gen)
        target = oracle_targets(params)
        out = net(images * 2 - 1)[1]
        attr = F.mse_loss(out[:, 0], target[:, 0]) + 4.0 * F.mse_loss(out[:, 1], target[:, 1])
        attr = attr + F.binary_cross_entropy_with_logits(out[:, 2], target[:, 2])
        return attr + 0.3 * F.mse_loss(out[:, 3:], target[:, 3:])

    final, info = _run_loop("oracle", net, spec, work_dir, loss_fn, log)
    save_small_net(out_dir / recipe.ASSET_DIRS["oracle"], final,
                   {"kind": "oracle", "input_size": 32, "outputs": ["smile", "tan", "glasses_logit", "identity..."]})
    info["n_params"] = sum(p.numel() for p in final.parameters())
    return info


# -- the whole world -------------------------------------------------------------------------------------------
TRAINERS: dict[str, Callable[[Path, Path, TrainSpec, Logger], dict[str, Any]]] = {
    "ddpm": train_ddpm,
    "clip": train_clip,
    "parser": train_parser,
    "identity": train_identity,
    "oracle": train_oracle,
}


def train_world(
    out_dir: Path,
    only: list[str] | None = None,
    work_dir: Path | None = None,
    specs: dict[str, TrainSpec] | None = None,
    threads: int | None = None,
    log: Logger | None = None,
) -> dict[str, Any]:
    """Train (or resume) the world's models into ``out_dir`` and update ``out_dir/world_card.json``."""
    names = list(only or recipe.MODEL_NAMES)
    unknown = [n for n in names if n not in recipe.MODEL_NAMES]
    if unknown:
        raise InputError(f"unknown world model(s) {unknown}; choose from {list(recipe.MODEL_NAMES)}")
    specs = specs or recipe.TRAIN_SPECS
    if threads:
        torch.set_num_threads(threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    if work_dir is None:
        from asyrp_bench.weights import home

        work_dir = home() / "world_train"
    log = log or (lambda record: print(json.dumps(record), flush=True))
    card_path = out_dir / "world_card.json"
    card: dict[str, Any] = {"models": {}}
    for name in names:
        if name not in TRAINERS:
            raise InputError(f"world model {name!r} has no trainer yet")
        info = TRAINERS[name](out_dir, work_dir, specs[name], log)
        info["spec"] = asdict(specs[name])
        info["threads"] = torch.get_num_threads()
        info["torch"] = torch.__version__
        info["machine"] = platform.machine()
        info["train_seed_base"] = recipe.TRAIN_SEED_BASE[name]
        # re-read: another process may have trained other models into the same folder meanwhile
        card = json.loads(card_path.read_text()) if card_path.is_file() else {"models": {}}
        card.setdefault("models", {})[name] = info
        card_path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return card

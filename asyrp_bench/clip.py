"""Frozen CLIP for the directional loss (training) and the ``clip_directional`` metric (S_dir).

One module, shared by both, so the loss that trains an editor and the number that scores it use the same model,
preprocessing, templates and text direction (spec §4.4; metrics_and_peers.md §1).

Models come from open_clip and are never downloaded:

* a built-in open_clip name with a ``pretrained`` tag (default ``ViT-B-16-quickgelu`` / ``openai``, the Asyrp
  default). The tag's weights file is looked up offline: a weights-registry artifact with the tag's HF repo
  (``clip_vit_b16_openai``), then the HF hub cache (``$HF_HOME/hub/models--<org>--<repo>/snapshots/*``).
  The tag's own preprocessing (mean/std/interpolation) and its QuickGELU flag are applied, so ``ViT-B-16`` +
  ``openai`` builds QuickGELU like ``ViT-B-16-quickgelu`` (open_clip itself would only warn: environment.md);
* a built-in name with ``pretrained`` = a local weights file (``.safetensors``/``.pt``/``.bin``) or a weights key.
  A file carries no activation flag: use the ``-quickgelu`` names for OpenAI weights;
* ``local-dir:PATH``: an open_clip folder (``open_clip_config.json`` with ``model_cfg`` + ``preprocess_cfg``, and
  ``open_clip_model.safetensors``);
* a weights-registry key of kind ``clip``: a folder artifact is loaded as ``local-dir:``; a file artifact with a
  known architecture (:data:`CLIP_ARTIFACT_MODELS`) is loaded into that architecture.

Everything loaded is frozen (eval mode, ``requires_grad`` False) and cached per process by
``(model, pretrained, device)``.

Image preprocessing, two paths with the same steps (model input size S, the model's own mean/std):

* :meth:`ClipModel.encode_images` (training, differentiable, spec §4.4): ``[-1, 1]`` → ``[0, 1]``; resize the
  shorter side to S with bicubic interpolation, ``antialias=True`` set explicitly (torchvision's tensor default
  changed across versions, metrics_and_peers.md §1.4; antialiasing is also what PIL does); centre crop S×S; CLIP
  normalisation. For square 256 px images this is a 256 → 224 bicubic resize.
* :meth:`ClipModel.encode_pil` / :meth:`ClipModel.encode_uint8` (the metric): open_clip's own evaluation
  transform on PIL images: PIL bicubic resize of the shorter side to S, centre crop, CLIP normalisation. This is
  the "CLIP preprocessing from PIL/uint8 images" that fixes the metric's numbers (issue 4).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from asyrp_bench import weights
from asyrp_bench.errors import CheckpointError, ConfigError, InputError, WeightsNotFoundError

if TYPE_CHECKING:
    from PIL import Image

DEFAULT_MODEL = "ViT-B-16-quickgelu"
DEFAULT_PRETRAINED = "openai"

# Added to the norm of the image edit direction, as the official CLIPLoss does (1e-7, spec §4.4). With identical
# images the direction is 0/(0 + eps) = 0, so the cosine is 0 (not NaN): 1 − cos = 1 and −log((1+cos)/2) = log 2.
DIRECTION_EPS = 1e-7

# Weights-registry file artifacts that are whole CLIP checkpoints of a known open_clip architecture.
CLIP_ARTIFACT_MODELS: dict[str, str] = {"clip_vit_b16_openai": "ViT-B-16-quickgelu"}

_LOCAL_DIR = "local-dir:"
_CHECKPOINT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                     "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth")
_HF_FILENAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def imagenet_templates() -> tuple[Callable[[str], str], ...]:
    """The 79 prompt templates of the NADA/DiffusionCLIP/Asyrp ``imagenet_templates`` list.

    open_clip's ``OPENAI_IMAGENET_TEMPLATES`` (80 callables) without its second entry, "a photo of many {}.", in
    the library's order (metrics_and_peers.md §1.1). Taken from the library, never retyped.
    """
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    templates = tuple(OPENAI_IMAGENET_TEMPLATES)
    if len(templates) != 80 or templates[1]("{}") != "a photo of many {}.":
        raise RuntimeError(
            "open_clip's OPENAI_IMAGENET_TEMPLATES changed (expected 80 entries with 'a photo of many {}.' second); "
            "the 79-template text direction cannot be built. Pin open_clip_torch==3.3.0."
        )
    return templates[:1] + templates[2:]


# -- the model wrapper --------------------------------------------------------------------------------------------


class ClipModel:
    """A frozen open_clip model with the preprocessing and text directions of spec §4.4.

    Attributes:
        model: the open_clip ``CLIP`` module (eval, no grad on parameters).
        model_id: a string naming model + weights (cache key of text directions; written into metric params).
        device: the device the model lives on.
        image_size: the model's square input size S (224 for ViT-B/16).
        mean, std: CLIP normalisation from the model's preprocess config.
        interpolation, resize_mode: from the preprocess config (``bicubic`` / ``shortest`` for OpenAI CLIP).
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Callable[..., torch.Tensor], model_id: str,
                 device: str | torch.device) -> None:
        from open_clip import get_model_preprocess_cfg

        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.device = torch.device(device)
        cfg = dict(get_model_preprocess_cfg(model))
        size = cfg.get("size", 224)
        if isinstance(size, (tuple, list)):
            if size[0] != size[1]:
                raise ConfigError(f"CLIP model {model_id} has a non-square input {tuple(size)}; not supported")
            size = size[0]
        self.image_size = int(size)
        self.mean = tuple(float(v) for v in cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)))
        self.std = tuple(float(v) for v in cfg.get("std", (0.26862954, 0.26130258, 0.27577711)))
        self.interpolation = str(cfg.get("interpolation", "bicubic"))
        self.resize_mode = str(cfg.get("resize_mode", "shortest"))
        if self.interpolation not in ("bicubic", "bilinear") or self.resize_mode not in ("shortest", "squash"):
            raise ConfigError(
                f"CLIP model {model_id}: preprocessing interpolation={self.interpolation!r}, "
                f"resize_mode={self.resize_mode!r} is not supported (bicubic/bilinear and shortest/squash are)"
            )
        self._preprocess_cfg = cfg
        self._pil_transform: Callable[[Any], torch.Tensor] | None = None
        self._directions: dict[tuple[str, str, str], torch.Tensor] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ClipModel({self.model_id!r}, image_size={self.image_size}, device={self.device})"

    # -- images ---------------------------------------------------------------------------------------------------
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable CLIP preprocessing of ``x`` [B,3,H,W] in [-1, 1] -> [B,3,S,S], CLIP-normalised."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"CLIP expects images [B,3,H,W], got shape {tuple(x.shape)}")
        x = (x.float() + 1) / 2
        s = self.image_size
        h, w = x.shape[-2:]
        if self.resize_mode == "squash":
            out_hw = (s, s)
        else:  # shorter side -> S, keeping the aspect ratio (torchvision Resize(int) rounding)
            out_hw = (s, max(s, int(s * w / h))) if h <= w else (max(s, int(s * h / w)), s)
        if (h, w) != out_hw:
            x = F.interpolate(x, size=out_hw, mode=self.interpolation, align_corners=False, antialias=True)
        if out_hw != (s, s):  # centre crop as torchvision's CenterCrop
            top = round((out_hw[0] - s) / 2.0)
            left = round((out_hw[1] - s) / 2.0)
            x = x[..., top:top + s, left:left + s]
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std

    def encode_images(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Image embeddings of ``x`` [B,3,H,W] in [-1, 1] -> [B,D]; differentiable w.r.t. ``x`` (spec §4.4)."""
        return self.model.encode_image(self.preprocess(x.to(self.device)), normalize=normalize)

    def pil_transform(self) -> Callable[[Any], torch.Tensor]:
        """open_clip's evaluation transform for this model (PIL image -> normalised [3,S,S])."""
        if self._pil_transform is None:
            from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict

            cfg = PreprocessCfg(**merge_preprocess_dict(PreprocessCfg(), self._preprocess_cfg))
            self._pil_transform = image_transform_v2(cfg, is_train=False)
        return self._pil_transform

    @torch.no_grad()
    def encode_pil(self, images: Sequence[Image.Image], normalize: bool = True) -> torch.Tensor:
        """Embeddings [B,D] of PIL images through open_clip's own evaluation preprocessing (no gradient)."""
        if len(images) == 0:
            raise InputError("encode_pil got no images")
        transform = self.pil_transform()
        batch = torch.stack([transform(image) for image in images]).to(self.device)
        return self.model.encode_image(batch, normalize=normalize)

    @torch.no_grad()
    def encode_uint8(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Embeddings [B,D] of uint8 images [B,3,H,W] (as read from PNG), via PIL as :meth:`encode_pil`."""
        from PIL import Image

        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"encode_uint8 expects uint8 [B,3,H,W], got {x.dtype} {tuple(x.shape)}")
        arrays = x.permute(0, 2, 3, 1).cpu().numpy()
        return self.encode_pil([Image.fromarray(a, mode="RGB") for a in arrays], normalize=normalize)

    # -- text -----------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """Text embeddings [N,D] of raw strings (no templates)."""
        if isinstance(texts, str) or len(texts) == 0:
            raise InputError("encode_text expects a non-empty list of strings")
        tokens = self.tokenizer(list(texts)).to(self.device)
        return self.model.encode_text(tokens, normalize=normalize)

    def text_direction(self, source: str, target: str) -> torch.Tensor:
        """Unit text direction [D] from ``source`` to ``target``, averaged over the 79 templates (spec §4.4).

        Each template's embeddings are L2-normalised, the per-template differences (target − source) averaged and
        the mean re-normalised. Cached per (model_id, source, target); no gradient.
        """
        key = (self.model_id, source, target)
        with self._lock:
            if key not in self._directions:
                templates = imagenet_templates()
                src = self.encode_text([t(source) for t in templates])
                tgt = self.encode_text([t(target) for t in templates])
                direction = (tgt - src).mean(dim=0)
                self._directions[key] = direction / direction.norm()
            return self._directions[key]

    def text_cosine(self, source: str, target: str) -> float:
        """Cosine of the raw ``source`` and ``target`` prompts' embeddings (no templates; spec §4.3 L1 weight)."""
        emb = self.encode_text([source, target])
        return float((emb[0] * emb[1]).sum())

    def cached_direction_keys(self) -> list[tuple[str, str, str]]:
        return list(self._directions)


# -- directional similarity and losses -------------------------------------------------------------------------


def edit_direction(img_src_emb: torch.Tensor, img_edit_emb: torch.Tensor, eps: float = DIRECTION_EPS) -> torch.Tensor:
    """(E(edit) − E(source)) / (‖·‖ + eps), per row: [B,D] (the official +1e-7, spec §4.4)."""
    diff = img_edit_emb - img_src_emb
    return diff / (diff.norm(dim=-1, keepdim=True) + eps)


def directional_cosine(img_src_emb: torch.Tensor, img_edit_emb: torch.Tensor, text_dir: torch.Tensor,
                       eps: float = DIRECTION_EPS) -> torch.Tensor:
    """Per-image S_dir: cos(edit direction, text direction) -> [B], in [-1, 1].

    Args:
        img_src_emb, img_edit_emb: L2-normalised image embeddings [B,D] of the source and edited images.
        text_dir: the unit text direction [D] (or [1,D]) from :meth:`ClipModel.text_direction`.
        eps: added to the edit direction's norm. Identical embeddings give a zero direction and cos = 0 (defined).
            Note: two forward passes of the same image may differ by float noise (PyTorch picks other attention
            kernels when the input requires grad); such a near-zero difference is normalised like any other and
            gives an arbitrary cosine, as in the official code. Compare embeddings computed the same way.
    """
    if img_src_emb.shape != img_edit_emb.shape or img_src_emb.ndim != 2:
        raise InputError(f"embeddings must both be [B,D], got {tuple(img_src_emb.shape)} and "
                         f"{tuple(img_edit_emb.shape)}")
    direction = edit_direction(img_src_emb, img_edit_emb, eps)
    text = text_dir.reshape(1, -1).to(direction)
    return F.cosine_similarity(direction, text.expand_as(direction), dim=-1)


def directional_loss(img_src_emb: torch.Tensor, img_edit_emb: torch.Tensor, text_dir: torch.Tensor,
                     form: Literal["neg_log", "one_minus"] = "neg_log", eps: float = DIRECTION_EPS) -> torch.Tensor:
    """Per-image directional CLIP loss [B] (take ``.mean()`` for a batch loss).

    ``neg_log``: −log((1 + cos) / 2), the DiffusionCLIP/Asyrp training form (spec §4.3), in [0, ∞);
    ``one_minus``: 1 − cos, NADA's ``DirectionLoss('cosine')``, in [0, 2]. Identical images: cos = 0, so
    log 2 and 1 respectively.
    """
    cos = directional_cosine(img_src_emb, img_edit_emb, text_dir, eps)
    if form == "neg_log":
        return -torch.log((1 + cos) / 2)
    if form == "one_minus":
        return 1 - cos
    raise ConfigError(f"unknown directional loss form {form!r}; choose 'neg_log' or 'one_minus'")


# -- loading ----------------------------------------------------------------------------------------------------

_CACHE: dict[tuple[str, str | None, str], ClipModel] = {}
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Resolved:
    open_clip_name: str        # what goes to open_clip.create_model ("ViT-B-16-quickgelu" or "local-dir:/abs")
    checkpoint: str | None     # weights file for built-in names
    model_id: str
    force_quick_gelu: bool = False
    preprocess: tuple[tuple[str, Any], ...] = ()


def load_clip(model: str = DEFAULT_MODEL, pretrained: str | None = DEFAULT_PRETRAINED,
              device: str | torch.device = "cpu") -> ClipModel:
    """Load (once per process) a frozen open_clip model; see the module docstring for what ``model`` may be.

    Args:
        model: open_clip built-in name, ``local-dir:PATH`` or a weights key of kind ``clip``.
        pretrained: for built-in names: an open_clip tag (``openai``), a weights file path or a weights key.
            Ignored for ``local-dir:`` and folder keys (the folder holds its weights). ``None`` is refused: a
            randomly initialised CLIP would score silently wrong.
    Raises:
        WeightsNotFoundError: a weights file or folder is missing (names it and where it goes).
        ConfigError: unknown model name / tag.
        CheckpointError: the weights do not fit the architecture.
    """
    key = (model, pretrained, str(torch.device(device)))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load_uncached(model, pretrained, device)
        return _CACHE[key]


def clear_cache() -> None:
    """Forget every loaded CLIP model (tests; freeing memory between runs)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _load_uncached(model: str, pretrained: str | None, device: str | torch.device) -> ClipModel:
    import open_clip

    resolved = _resolve(model, pretrained)
    kwargs: dict[str, Any] = {"device": device, "force_quick_gelu": resolved.force_quick_gelu}
    if resolved.preprocess:
        kwargs["force_preprocess_cfg"] = dict(resolved.preprocess)
    # open_clip logs at WARNING level for unrelated defaults; keep our CLI output clean.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        net = open_clip.create_model(resolved.open_clip_name, pretrained=resolved.checkpoint, **kwargs)
        tokenizer = open_clip.get_tokenizer(resolved.open_clip_name)
    except RuntimeError as error:
        where = resolved.checkpoint or resolved.open_clip_name
        raise CheckpointError(f"could not load CLIP {resolved.model_id} from {where}: {error}") from error
    finally:
        logging.disable(previous)
    net.eval().requires_grad_(False)
    return ClipModel(net, tokenizer, resolved.model_id, device)


def _resolve(model: str, pretrained: str | None) -> _Resolved:
    import open_clip

    if model.startswith(_LOCAL_DIR):
        return _local_dir(Path(model[len(_LOCAL_DIR):]).expanduser())
    if model in weights.ARTIFACTS:
        artifact = weights.get_artifact(model)
        if artifact.kind != "clip":
            raise ConfigError(f"weights key {model!r} is a {artifact.kind} artifact, not a CLIP model")
        path = weights.require(model)
        if artifact.is_dir:
            return _local_dir(path)
        if model not in CLIP_ARTIFACT_MODELS:
            raise ConfigError(f"weights key {model!r} is a CLIP weights file of unknown architecture; pass "
                              f"model=<open_clip name>, pretrained={model!r}")
        return _Resolved(CLIP_ARTIFACT_MODELS[model], str(path), f"{CLIP_ARTIFACT_MODELS[model]}/{model}")
    if Path(model).expanduser().is_dir():
        raise ConfigError(f"model {model!r} is a folder; write model: 'local-dir:{model}' to load an open_clip folder")
    name = model.replace("/", "-")  # OpenAI spelling ViT-B/16 -> ViT-B-16
    if open_clip.get_model_config(name) is None:
        raise ConfigError(
            f"unknown open_clip model {model!r}. Use a built-in name (`python -c \"import open_clip; "
            f"print(open_clip.list_models())\"`), 'local-dir:PATH', or a weights key of kind clip "
            f"({', '.join(k for k, a in weights.ARTIFACTS.items() if a.kind == 'clip') or 'none registered'})."
        )
    if pretrained is None:
        raise ConfigError(f"CLIP model {model!r} needs `pretrained` (a tag such as 'openai', a weights file or a "
                          "weights key); a randomly initialised CLIP is never used for scoring or training")
    path = Path(pretrained).expanduser()
    if path.is_file():
        return _Resolved(name, str(path), f"{name}/{path.name}")
    if pretrained in weights.ARTIFACTS:
        artifact = weights.get_artifact(pretrained)
        if artifact.kind != "clip" or artifact.is_dir:
            raise ConfigError(f"weights key {pretrained!r} is not a CLIP weights file")
        return _Resolved(name, str(weights.require(pretrained)), f"{name}/{pretrained}")
    tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if tag_cfg:
        return _from_tag(name, pretrained, tag_cfg)
    if os.sep in pretrained or "/" in pretrained or path.suffix:
        raise WeightsNotFoundError(f"CLIP weights file {path} does not exist")
    tags = open_clip.list_pretrained_tags_by_model(name)
    raise ConfigError(f"{pretrained!r} is neither a pretrained tag of {name} ({', '.join(tags) or 'none'}), "
                      "a weights file, nor a weights key")


def _from_tag(name: str, tag: str, tag_cfg: dict[str, Any]) -> _Resolved:
    """Find the tag's weights offline (weights registry, then the HF cache); never download."""
    # open_clip writes hf_hub as "org/repo/" (default file) or "org/repo/filename" (pretrained.py).
    parts = str(tag_cfg.get("hf_hub", "")).strip("/").split("/")
    repo = "/".join(parts[:2]) if len(parts) >= 2 else ""
    filename = "/".join(parts[2:]) if len(parts) > 2 else ""
    looked: list[str] = []
    found: Path | None = None
    for key, artifact in sorted(weights.ARTIFACTS.items()):
        if artifact.kind == "clip" and repo and artifact.hf_repo == repo:
            found = weights.find(key)
            looked.extend(str(p) for p in weights.candidates(artifact))
            if found is not None:
                break
    if found is None and repo:
        from huggingface_hub import try_to_load_from_cache

        cache_dir = weights._hf_cache_dir()
        for candidate in ((filename,) if filename else _HF_FILENAMES):
            hit = try_to_load_from_cache(repo, candidate, cache_dir=str(cache_dir))
            looked.append(str(cache_dir / ("models--" + repo.replace("/", "--")) / "snapshots" / "*" / candidate))
            if isinstance(hit, str) and Path(hit).is_file():
                found = Path(hit)
                break
    if found is None:
        origin = f"huggingface.co/{repo} (file {filename or _HF_FILENAMES[0]})" if repo else tag_cfg.get("url", "?")
        raise WeightsNotFoundError(
            f"CLIP weights for {name} / pretrained={tag!r} were not found (nothing is downloaded). Looked in: "
            f"{'; '.join(dict.fromkeys(looked)) or '(no offline location known for this tag)'}. Get them from "
            f"{origin} on a machine with network and put the file at one of those places (or pass "
            "pretrained=PATH). Run `asyrp-bench doctor` to see every file the harness looks for."
        )
    keys = ("mean", "std", "interpolation", "resize_mode")
    preprocess = tuple((k, tag_cfg[k]) for k in keys if tag_cfg.get(k) is not None)
    return _Resolved(name, str(found), f"{name}/{tag}", force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
                     preprocess=preprocess)


def _local_dir(folder: Path) -> _Resolved:
    folder = folder.resolve()
    if not folder.is_dir():
        raise WeightsNotFoundError(f"open_clip folder {folder} does not exist (model 'local-dir:{folder}')")
    if not (folder / "open_clip_config.json").is_file():
        raise WeightsNotFoundError(
            f"{folder} is not an open_clip folder: open_clip_config.json (with model_cfg and preprocess_cfg) is missing"
        )
    if not any(p.suffix in (".safetensors", ".bin", ".pth") for p in folder.iterdir() if p.is_file()):
        # open_clip would silently build a random model here; a random CLIP must never score or train.
        raise WeightsNotFoundError(
            f"open_clip folder {folder} has no weights file; expected one of {', '.join(_CHECKPOINT_NAMES)}"
        )
    return _Resolved(f"{_LOCAL_DIR}{folder}", None, f"{_LOCAL_DIR}{folder}")

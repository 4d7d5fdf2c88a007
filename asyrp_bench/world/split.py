"""The ``world`` data split: 64 fixed faces of the generator, with ground-truth parameters and part masks.

Rule: face ``world-NNN`` is the generator's face of seed NNN, for NNN = 0..63 (``recipe.SPLIT_SEEDS``), rendered at
32 px with the default attribute distribution (smile uniform in [-1,1], tan uniform in [0,1], glasses with
probability 0.35). No world model was trained on these seeds (``recipe.TRAIN_SEED_BASE`` starts at 1e8).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from asyrp_bench.errors import InputError
from asyrp_bench.world import recipe
from asyrp_bench.world.generator import CLASSES, IMAGE_SIZE, FaceParams, render, sample_params

SPLIT_NAME = "world"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class WorldSplit:
    """ids [N], params (FaceParams of N), images [N,3,32,32] float in [0,1], masks [N,32,32] int64."""

    ids: list[str]
    seeds: list[int]
    params: FaceParams
    images: Tensor
    masks: Tensor


def split_ids(seeds: range | list[int] | None = None) -> list[str]:
    return [f"world-{s:03d}" for s in (recipe.SPLIT_SEEDS if seeds is None else seeds)]


def render_split(n: int | None = None) -> WorldSplit:
    """The first ``n`` faces of the split (all 64 by default)."""
    seeds = list(recipe.SPLIT_SEEDS)
    if n is not None:
        if not 1 <= n <= len(seeds):
            raise InputError(f"the world split has {len(seeds)} faces; asked for {n}")
        seeds = seeds[:n]
    params = sample_params(seeds)
    faces = render(params)
    return WorldSplit(ids=split_ids(seeds), seeds=seeds, params=params, images=faces.images, masks=faces.masks)


def to_uint8_hwc(image: Tensor) -> np.ndarray:
    """[3,H,W] float in [0,1] -> [H,W,3] uint8 (round half up, as PIL / torchvision's save_image do)."""
    return (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def write_split(folder: Path, n: int | None = None) -> Path:
    """Write the split to ``folder``: images/<id>.png, masks/<id>.png (label = pixel value, see ``classes``),
    params.json (ground truth per id) and manifest.json (ids, sha256 of every image and mask, the rule).
    Returns the manifest path. Byte-identical on every machine (PNG written by Pillow without timestamps)."""
    split = render_split(n)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    entries = []
    for i, face_id in enumerate(split.ids):
        img = png_bytes(to_uint8_hwc(split.images[i]))
        mask = png_bytes(split.masks[i].to(torch.uint8).numpy())
        (folder / "images" / f"{face_id}.png").write_bytes(img)
        (folder / "masks" / f"{face_id}.png").write_bytes(mask)
        entries.append({"id": face_id, "seed": split.seeds[i], "image": f"images/{face_id}.png",
                        "image_sha256": hashlib.sha256(img).hexdigest(), "mask": f"masks/{face_id}.png",
                        "mask_sha256": hashlib.sha256(mask).hexdigest()})
    params = {face_id: {k: v[i] for k, v in split.params.to_dict().items()} for i, face_id in enumerate(split.ids)}
    (folder / "params.json").write_text(json.dumps(params, indent=1, sort_keys=True) + "\n")
    manifest = {"schema_version": MANIFEST_VERSION, "name": SPLIT_NAME, "image_size": IMAGE_SIZE,
                "classes": list(CLASSES), "rule": (__doc__ or "").split("\n\n")[1].replace("\n", " "),
                "items": entries}
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path

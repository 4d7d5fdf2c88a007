"""Where the world's trained files are and how each is loaded through its normal path.

Every loader takes an optional folder; by default it uses the weights registry (``world_ddpm``, ``world_clip``,
``world_parser``, ``world_identity``, ``world_oracle``), which finds the copies shipped under
``asyrp_bench/assets/world/`` unless the user put others in ``$ASYRP_BENCH_HOME/weights``.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from torch import nn

from asyrp_bench import weights
from asyrp_bench.errors import CheckpointError

ASSETS_WORLD = weights.ASSETS_DIR / "world"

#: model name (recipe.MODEL_NAMES) -> weights key
WEIGHTS_KEYS: dict[str, str] = {
    "ddpm": "world_ddpm", "clip": "world_clip", "parser": "world_parser", "identity": "world_identity",
    "oracle": "world_oracle",
}


def asset_path(name: str, root: Path | None = None) -> Path:
    """The folder of world model ``name``: under ``root`` when given (e.g. a fresh ``world train --out``),
    else through the weights registry."""
    if root is not None:
        from asyrp_bench.world.recipe import ASSET_DIRS

        path = Path(root) / ASSET_DIRS[name]
        if not path.is_dir():
            raise CheckpointError(f"world model folder {path} does not exist (train it: asyrp-bench world train "
                                  f"--only {name} --out {root})")
        return path
    return weights.require(WEIGHTS_KEYS[name])


def load_unet(root: Path | None = None) -> nn.Module:
    """The world DDPM as a float32 diffusers UNet2DModel (stored in fp16)."""
    from diffusers import UNet2DModel

    return UNet2DModel.from_pretrained(str(asset_path("ddpm", root)), low_cpu_mem_usage=False).float().eval()


def load_clip(root: Path | None = None) -> tuple[nn.Module, Any, Any]:
    """(model, preprocess, tokenizer) of the tiny CLIP through open_clip's ``local-dir:`` schema."""
    import open_clip

    spec = f"local-dir:{asset_path('clip', root)}"
    model, _, preprocess = open_clip.create_model_and_transforms(spec)
    return model.float().eval(), preprocess, open_clip.get_tokenizer(spec)


def load_parser(root: Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """(smp model, segmenter.json sidecar) of the face parser."""
    import segmentation_models_pytorch as smp

    folder = asset_path("parser", root)
    sidecar = folder / "segmenter.json"
    if not sidecar.is_file():
        raise CheckpointError(f"{folder} has no segmenter.json sidecar (classes, input_size, mean, std)")
    with contextlib.redirect_stdout(io.StringIO()):  # smp prints "Loading weights from local directory"
        model = smp.from_pretrained(str(folder))
    return model.float().eval(), json.loads(sidecar.read_text())


def total_size_bytes(root: Path = ASSETS_WORLD) -> int:
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())

"""Small models in the real file formats of the metric stack, built for tests (no download, seconds to build).

Each builder writes what a user would have on disk (an open_clip folder or checkpoint, an smp folder, a
vggface2-format state dict, a torch-fidelity Inception file) so tests go through the user-facing loaders.
Random networks are made discriminative where that matters (BatchNorm statistics set from data, DESIGN §8).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_CLIP_NAME = "AsyrpTinyCLIP"
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def register_tiny_clip_config(folder: Path) -> str:
    """Register the tiny config as a named open_clip built-in (add_model_config takes a JSON file)."""
    import open_clip

    if open_clip.get_model_config(TINY_CLIP_NAME) is None:
        path = folder / f"{TINY_CLIP_NAME}.json"
        path.write_text(json.dumps(TINY_CLIP_CFG))
        open_clip.add_model_config(path)
    return TINY_CLIP_NAME


def tiny_clip_module(seed: int = 0, quick_gelu: bool = False) -> torch.nn.Module:
    import open_clip

    torch.manual_seed(seed)
    return open_clip.CLIP(**TINY_CLIP_CFG, quick_gelu=quick_gelu).eval()


def save_tiny_clip_checkpoint(path: Path, seed: int = 0, quick_gelu: bool = False) -> Path:
    """An open_clip checkpoint file (safetensors state dict, as open_clip_model.safetensors on the HF hub)."""
    import safetensors.torch

    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(tiny_clip_module(seed, quick_gelu).state_dict(), str(path))
    return path


def save_tiny_clip_dir(folder: Path, seed: int = 0) -> Path:
    """An open_clip ``local-dir:`` folder: open_clip_config.json + open_clip_model.safetensors."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CFG, "preprocess_cfg": {}}))
    save_tiny_clip_checkpoint(folder / "open_clip_model.safetensors", seed)
    return folder

"""The fixed recipe of the shipped world: model configs, seeds, steps and data sizes in one place.

``asyrp-bench world train`` reads only this module, so the shipped files are reproducible from it (on the same
torch build and thread count; float summation order differs across CPUs). Face seeds of the different uses
are drawn from disjoint ranges, so no model is trained on the faces it is checked on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: face-seed ranges (half-open) by use; the world split is SPLIT_SEEDS
SPLIT_SEEDS = range(0, 64)
EVAL_SEED_BASE = 1_000_000  # held-out faces for checks (CLIP top-1, embedder, oracle, FID reference)
TRAIN_SEED_BASE = {  # each model draws its training faces from its own range
    "ddpm": 100_000_000,
    "clip": 200_000_000,
    "parser": 300_000_000,
    "identity": 400_000_000,
    "oracle": 500_000_000,
}

DDPM_CONFIG: dict[str, Any] = {
    "sample_size": 32,
    "in_channels": 3,
    "out_channels": 3,
    "layers_per_block": 1,
    "block_out_channels": (32, 64, 96, 128),
    "down_block_types": ("DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
    "norm_num_groups": 16,
    "attention_head_dim": 32,  # the middle block (h-space, spec §2.1) keeps its self-attention: 4 heads at 4×4
}

# open_clip custom config: a ViT with 8-px patches (4×4 tokens) over the 32-px faces; the text tower must keep the
# BPE vocabulary (49408) so open_clip's own tokenizer works, which is why its width stays small.
CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 4, "width": 128, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 3},
}

PARSER_CONFIG: dict[str, Any] = {
    "arch": "Unet",
    "encoder_name": "tu-resnet10t",
    "encoder_depth": 3,
    "decoder_channels": (64, 32, 16),
}


@dataclass(frozen=True)
class TrainSpec:
    """Steps, batch size, learning rate and seed of one model's training run."""

    steps: int
    batch_size: int
    lr: float
    seed: int
    warmup: int = 100
    ema_decay: float | None = None
    checkpoint_every: int = 100


TRAIN_SPECS: dict[str, TrainSpec] = {
    "ddpm": TrainSpec(steps=3000, batch_size=32, lr=4e-4, seed=61, warmup=200, ema_decay=0.999),
    "clip": TrainSpec(steps=2000, batch_size=64, lr=1e-3, seed=62, warmup=150),
    "parser": TrainSpec(steps=800, batch_size=32, lr=3e-3, seed=63),
    "identity": TrainSpec(steps=1000, batch_size=64, lr=2e-3, seed=64),
    "oracle": TrainSpec(steps=1000, batch_size=64, lr=2e-3, seed=65),
}

MODEL_NAMES: tuple[str, ...] = ("ddpm", "clip", "parser", "identity", "oracle")

#: folder names under asyrp_bench/assets/world/ (the weights registry's ``packaged=`` paths)
ASSET_DIRS: dict[str, str] = {
    "ddpm": "ddpm", "clip": "clip", "parser": "parser", "identity": "identity", "oracle": "oracle",
}


def tiny_specs(steps: int = 3) -> dict[str, TrainSpec]:
    """A few steps of every model at small batch sizes: exercises the train command in tests."""
    return {name: TrainSpec(steps=steps, batch_size=8, lr=spec.lr, seed=spec.seed, warmup=1,
                            ema_decay=spec.ema_decay, checkpoint_every=2)
            for name, spec in TRAIN_SPECS.items()}

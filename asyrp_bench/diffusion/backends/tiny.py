"""A seeded random small DDPM U-Net for tests and the quick start (DESIGN §4, §8).

It is the real :class:`~asyrp_bench.diffusion.backends.ddpm.DDPMBackend` code path at a small config, so every
test on ``tiny`` exercises the same encode/decode, attention, resampling and skip bookkeeping as the 256 px
models. Weights come from a private ``torch.Generator`` seeded by the config's ``seed``: two loads with one seed
are bit-identical and the global RNG is never touched.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from asyrp_bench.diffusion.backends.checkpoint import check_state_dict, load_torch_file, to_float32
from asyrp_bench.diffusion.backends.ddpm import (
    IGNORED_KEYS,
    OPTIONAL_KEYS,
    REQUIRED_KEYS,
    DDPMBackend,
    DDPMConfig,
    extract_state_dict,
)
from asyrp_bench.errors import ConfigError

TINY_KEYS = {"seed": 0, "out_scale": 0.01}


def init_weights_(module: nn.Module, generator: torch.Generator, out_scale: float = 1.0) -> None:
    """PyTorch's default init law (U(±1/√fan_in) for conv/linear weights and biases, GroupNorm 1/0), drawn
    from ``generator`` in module order, then conv_out scaled by ``out_scale``."""
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, (nn.Conv2d, nn.Linear)):
                bound = 1.0 / sub.weight[0].numel() ** 0.5
                sub.weight.uniform_(-bound, bound, generator=generator)
                if sub.bias is not None:
                    sub.bias.uniform_(-bound, bound, generator=generator)
            elif isinstance(sub, nn.GroupNorm):
                nn.init.ones_(sub.weight)
                nn.init.zeros_(sub.bias)
        conv_out = getattr(module, "conv_out", None)
        if isinstance(conv_out, nn.Conv2d) and out_scale != 1.0:
            conv_out.weight.mul_(out_scale)
            if conv_out.bias is not None:
                conv_out.bias.mul_(out_scale)


_TINY_BASE = {
    "ch": 16, "out_ch": 3, "ch_mult": [1, 2, 2], "num_res_blocks": 1, "dropout": 0.0, "in_channels": 3,
    "resamp_with_conv": True, "num_groups": 8,
}


class TinyBackend(DDPMBackend):
    """The ddpm architecture at test size, initialised deterministically from ``seed``.

    Config keys: those of :class:`DDPMConfig` (a dict overrides the ``tiny`` preset key by key) plus ``seed``
    (default 0) and ``out_scale`` (default 0.01), a factor on conv_out's initial weights and bias.

    Why scale conv_out: a random net is no denoiser. Its ε (std ≈ 0.3 at scale 1) changes with t and with the
    shrinking x_t along the DDIM path, and η=0 inversion amplifies every mismatch between the ε used going up
    and the ε used coming down by Δσ = Δ√((1-ᾱ)/ᾱ), up to 64 per step near t=999 on a 20-step grid. At scale 1
    a 100-step round trip still misses [-1, 1] inputs by ~7 (mean abs); the error shrinks roughly with the
    square of the scale, and at 0.01 (ε std ≈ 0.003) it is ≈ 0.33 / 0.19 / 0.09 / 0.05 for 5 / 10 / 20 / 40
    steps (tiny16), halving with each doubling as DDIM inversion should. h and temb are unaffected.
    Tests should prefer ``tiny16``: a batch-4 forward pass takes ~10-25 ms on one CPU core, ``tiny`` ~30-80 ms
    (``benchmarks/bench_backends.py``).
    """

    name: ClassVar[str] = "tiny"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {**_TINY_BASE, "resolution": 32, "attn_resolutions": [16], "seed": 0},
        "tiny16": {**_TINY_BASE, "resolution": 16, "ch_mult": [1, 2], "attn_resolutions": [8], "seed": 0},
    }
    default_preset: ClassVar[str] = "tiny"
    seed: int | None = None

    @classmethod
    def preset_summary(cls, preset: str) -> str:
        cfg, extra = cls.split_config(preset)
        return f"{DDPMBackend.summarize(cfg)}, random seed {extra['seed']}"

    @classmethod
    def split_config(cls, config: str | Mapping[str, Any] | None) -> tuple[DDPMConfig, dict[str, Any]]:
        """(architecture, tiny-only keys) from a preset name, a partial dict over ``tiny``, or None."""
        if config is None or isinstance(config, str):
            name = config or cls.default_preset
            if name not in cls.presets:
                raise ConfigError(f"unknown tiny preset {name!r}; presets: {', '.join(cls.presets)} (or a dict)")
            merged = copy.deepcopy(cls.presets[name])
        elif isinstance(config, Mapping):
            base = copy.deepcopy(cls.presets[cls.default_preset])
            valid = {*REQUIRED_KEYS, *OPTIONAL_KEYS, *IGNORED_KEYS, *TINY_KEYS}
            unknown = sorted(set(config) - valid)
            if unknown:
                raise ConfigError(f"tiny config: unknown key(s) {unknown}. Valid keys: {', '.join(sorted(valid))}.")
            merged = {**base, **config}
        else:
            raise ConfigError(f"tiny config must be a preset name or a dict, got {type(config).__name__}")
        extra = {k: merged.pop(k, default) for k, default in TINY_KEYS.items()}
        if isinstance(extra["seed"], bool) or not isinstance(extra["seed"], int):
            raise ConfigError(f"tiny config: seed must be an integer, got {extra['seed']!r}")
        extra["out_scale"] = float(extra["out_scale"])
        return DDPMConfig.from_mapping(merged, where="tiny config"), extra

    @classmethod
    def load(
        cls, weights: str | None = None, config: str | dict[str, Any] | None = None, device: str = "cpu"
    ) -> TinyBackend:
        """A seeded random net (``weights=None``) or one saved from it (a path to its ``state_dict()``).

        Args:
            weights: None, or a path to a state dict saved with ``torch.save(backend.state_dict(), path)``.
            config: ``tiny`` (32 px, default), ``tiny16`` (16 px) or a dict overriding ``tiny`` key by key,
                with ``seed`` and ``out_scale``.
            device: torch device string.
        """
        cfg, extra = cls.split_config(config)
        model = cls.build(cfg, device="meta")
        if weights is None:
            model = model.to_empty(device="cpu")
            generator = torch.Generator().manual_seed(extra["seed"])
            init_weights_(model, generator, out_scale=extra["out_scale"])
        else:
            from asyrp_bench.weights import resolve

            path = resolve(weights)
            state_dict = extract_state_dict(load_torch_file(path), str(path), prefer_ema=cfg.ema)
            check_state_dict({k: tuple(v.shape) for k, v in model.state_dict().items()}, state_dict, str(path))
            model.load_state_dict(to_float32(state_dict), strict=True, assign=True)
        model.seed = extra["seed"] if weights is None else None
        return model.to(device).freeze()

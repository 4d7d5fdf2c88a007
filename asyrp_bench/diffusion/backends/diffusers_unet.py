"""Any diffusers ``UNet2DModel`` folder behind the encode/decode split (DESIGN §4).

The split is at ``mid_block``, the diffusers counterpart of the ermongroup middle block (spec §2.1): encode =
time projection + time embedding + conv_in + down blocks (their residuals are the skips) + mid_block; decode =
up blocks with the same residuals, then norm / act / conv_out. ``encode`` -> ``decode`` equals
``unet(x, t).sample`` (tested), including the skip-sample branch of ``Skip*Block2D`` models.

Loading never touches the network: a folder path (or a weights key that names one) is read with
``local_files_only=True``; a hub id is refused with directions. diffusers itself loads non-strictly (missing keys
are newly initialised with a warning), so the loading report is checked and any mismatch is an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor, nn

from asyrp_bench.diffusion.backends.base import Backend, Bottleneck
from asyrp_bench.errors import CheckpointError, ConfigError, WeightsNotFoundError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
CONFIG_KEYS = ("weights", "subfolder")


class DiffusersBackend(Backend):
    """A frozen diffusers ``UNet2DModel`` (pixel space), split at ``mid_block``.

    ``h`` is the mid block's output [B, block_out_channels[-1], S/2^(n-1), S/2^(n-1)]; ``temb`` the output of
    ``time_embedding`` [B, time_embed_dim]. ``learn_sigma`` models (out_channels = 2·in_channels) return only
    the ε half. Fourier time embeddings (score-SDE models with continuous σ) and class-conditional models are
    rejected: they are not the integer-timestep ε-prediction U-Nets the Asyrp process drives.
    """

    name: ClassVar[str] = "diffusers"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "ddpm_ema_celebahq_256": {"weights": "diffusers_ddpm_ema_celebahq_256"},
    }

    @classmethod
    def preset_summary(cls, preset: str) -> str:
        return "architecture from the folder's config.json (UNet2DModel)"

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        check_unet_config(unet.config, where="UNet2DModel config")
        self.unet = unet
        cfg = unet.config
        size = cfg.sample_size
        if isinstance(size, (list, tuple)):
            size = size[0]
        n_down = len(cfg.block_out_channels) - 1  # every down block but the last halves the resolution
        self.image_size = int(size)
        self.in_channels = int(cfg.in_channels)
        self.h_shape = (int(cfg.block_out_channels[-1]), self.image_size // 2**n_down, self.image_size // 2**n_down)
        self.temb_dim = int(cfg.time_embedding_dim or cfg.block_out_channels[0] * 4)
        self.learn_sigma = int(cfg.out_channels) == 2 * self.in_channels

    # -- encode / decode -----------------------------------------------------------------------------------------
    def _encode(self, x_t: Tensor, t: Tensor) -> Bottleneck:
        unet = self.unet
        if unet.config.center_input_sample:
            x_t = 2 * x_t - 1.0
        temb = unet.time_embedding(unet.time_proj(t).to(dtype=unet.conv_in.weight.dtype))
        skip_sample = x_t
        sample = unet.conv_in(x_t)
        skips: tuple[Tensor, ...] = (sample,)
        for block in unet.down_blocks:
            if hasattr(block, "skip_conv"):
                sample, res, skip_sample = block(hidden_states=sample, temb=temb, skip_sample=skip_sample)
            else:
                sample, res = block(hidden_states=sample, temb=temb)
            skips += res
        if unet.mid_block is not None:
            sample = unet.mid_block(sample, temb)
        return Bottleneck(h=sample, skips=skips, temb=temb, t=t)

    def _decode(self, bottleneck: Bottleneck, h: Tensor) -> Tensor:
        unet = self.unet
        temb = bottleneck.temb
        skips = bottleneck.skips
        sample = h
        skip_sample = None
        for block in unet.up_blocks:
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            if hasattr(block, "skip_conv"):
                sample, skip_sample = block(sample, res, temb, skip_sample)
            else:
                sample = block(sample, res, temb)
        sample = unet.conv_out(unet.conv_act(unet.conv_norm_out(sample)))
        if skip_sample is not None:
            sample = sample + skip_sample
        return sample[:, : self.in_channels] if self.learn_sigma else sample

    # -- loading -------------------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls, weights: str | None = None, config: str | dict[str, Any] | None = None, device: str = "cpu"
    ) -> DiffusersBackend:
        """Load a ``UNet2DModel`` folder (``config.json`` + ``diffusion_pytorch_model.safetensors``).

        Args:
            weights: a model folder, a pipeline folder with a ``unet/`` subfolder, or a weights key naming one
                (``asyrp-bench ls weights``). A hub id is never fetched.
            config: None, a preset name (``ddpm_ema_celebahq_256``: supplies the default weights key) or a dict
                with ``weights`` and/or ``subfolder``.
            device: torch device string.
        """
        from diffusers import UNet2DModel

        options = cls._options(config)
        weights = weights if weights is not None else options.get("weights")
        if weights is None:
            raise ConfigError(
                "diffusers backend: pass weights= (a UNet2DModel folder or a weights key); presets: "
                + ", ".join(cls.presets)
            )
        folder = resolve_folder(weights, options.get("subfolder"))
        from diffusers.utils import logging as diffusers_logging

        verbosity = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()  # its "newly initialized" warnings become our error below
        try:
            unet, info = UNet2DModel.from_pretrained(
                folder, local_files_only=True, low_cpu_mem_usage=False, output_loading_info=True
            )
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
            shapes = [line for line in lines if "size mismatch" in line]
            reason = "; ".join(shapes[:10]) if shapes else (lines[0][:300] if lines else type(exc).__name__)
            raise CheckpointError(f"{folder} could not be loaded as a UNet2DModel folder: {reason}") from exc
        finally:
            diffusers_logging.set_verbosity(verbosity)
        problems = []
        for what in ("missing_keys", "unexpected_keys", "mismatched_keys"):
            keys = sorted(str(k) for k in info.get(what) or [])
            if keys:
                shown = ", ".join(keys[:10]) + (f", ... ({len(keys) - 10} more)" if len(keys) > 10 else "")
                problems.append(f"{len(keys)} {what.replace('_', ' ')}: {shown}")
        if problems:
            raise CheckpointError(
                f"{folder}: the weights do not match its config.json ({'; '.join(problems)}). diffusers would "
                "initialise these randomly; refusing."
            )
        return cls(unet.float()).to(device).freeze()

    @classmethod
    def _options(cls, config: str | Mapping[str, Any] | None) -> dict[str, Any]:
        if config is None:
            return {}
        if isinstance(config, str):
            if config not in cls.presets:
                raise ConfigError(
                    f"unknown diffusers preset {config!r}; presets: {', '.join(cls.presets)}. The architecture "
                    "comes from the folder's config.json; pass weights=<folder>."
                )
            return dict(cls.presets[config])
        if isinstance(config, Mapping):
            unknown = sorted(set(config) - set(CONFIG_KEYS))
            if unknown:
                raise ConfigError(
                    f"diffusers config: unknown key(s) {unknown}. Valid keys: {', '.join(CONFIG_KEYS)} (the "
                    "architecture comes from the folder's config.json)."
                )
            return dict(config)
        raise ConfigError(f"diffusers config must be a preset name or a dict, got {type(config).__name__}")


def check_unet_config(cfg: Any, where: str) -> None:
    """Reject UNet2DModel configs the encode/decode split or the Asyrp process cannot drive."""
    get = cfg.get if isinstance(cfg, Mapping) else lambda key, default=None: getattr(cfg, key, default)
    if get("time_embedding_type", "positional") == "fourier":
        raise ConfigError(
            f"{where}: time_embedding_type 'fourier' (a score-SDE model over continuous σ) is not supported; "
            "the backends take integer DDPM timesteps 0..999"
        )
    if get("class_embed_type") is not None or get("num_class_embeds") is not None:
        raise ConfigError(f"{where}: class-conditional UNet2DModels are not supported (no labels are passed)")
    in_ch, out_ch = int(get("in_channels", 3)), int(get("out_channels", 3))
    if out_ch not in (in_ch, 2 * in_ch):
        raise ConfigError(
            f"{where}: out_channels={out_ch} must equal in_channels={in_ch} (ε) or twice it (learn_sigma: ε, variance)"
        )
    size = get("sample_size")
    if isinstance(size, (list, tuple)) and (len(size) != 2 or size[0] != size[1]):
        raise ConfigError(f"{where}: only square sample_size is supported, got {size}")
    if size is None:
        raise ConfigError(f"{where}: sample_size is not set")


def resolve_folder(weights: str, subfolder: str | None = None) -> Path:
    """A UNet2DModel folder from a path or weights key; a pipeline folder resolves to its ``unet/``."""
    from asyrp_bench.weights import ARTIFACTS, resolve

    text = str(weights)
    if not Path(text).expanduser().exists() and text not in ARTIFACTS and _HUB_ID.match(text):
        raise WeightsNotFoundError(
            f"{text!r} looks like a Hugging Face hub id, and asyrp-bench never downloads. On a machine with network "
            f"run `huggingface-cli download {text} --local-dir <folder>` (or `save_pretrained`), copy the folder "
            "here and pass its path as weights (or put it under $ASYRP_BENCH_HOME/weights and use a weights key)."
        )
    folder = resolve(text, kind="diffusion")
    if not folder.is_dir():
        raise CheckpointError(
            f"{folder} is a file; the diffusers backend expects a UNet2DModel folder with config.json and "
            f"{_WEIGHT_FILES[0]} (for a single .ckpt state dict use the ddpm backend)"
        )
    if subfolder:
        folder = folder / subfolder
    elif not (folder / "config.json").is_file() and (folder / "unet" / "config.json").is_file():
        folder = folder / "unet"  # a pipeline folder (model_index.json, unet/, scheduler/)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{folder} has no config.json; expected a diffusers UNet2DModel folder")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON: {exc}") from exc
    class_name = config.get("_class_name", "UNet2DModel")
    if class_name != "UNet2DModel":
        raise ConfigError(f"{config_path} describes a {class_name}; the diffusers backend loads UNet2DModel only")
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        raise WeightsNotFoundError(f"{folder} has config.json but no weights file ({' or '.join(_WEIGHT_FILES)})")
    check_unet_config(config, where=str(config_path))
    return folder

"""The ermongroup / SDEdit DDPM U-Net (``Model``) behind the encode/decode split (spec §2.1, §8.2).

Written from the architecture description, key for key compatible with the SDEdit / DiffusionCLIP files
``celeba_hq.ckpt``, ``church_outdoor.ckpt`` and ``bedroom.ckpt``: the modules hang directly off the backend,
so ``backend.state_dict()`` has exactly the checkpoint's keys (``temb.dense.0.weight``, ``down.4.attn.0.q.weight``,
``mid.block_2.conv2.bias``, ``up.5.upsample.conv.weight``, ...).

Architecture facts that matter for equivalence (spec §8.2): sinusoidal time embedding in **[sin, cos]** order
(dim ``ch``) -> Linear -> swish -> Linear (dim ``4·ch``); GroupNorm(32, eps 1e-6); ResnetBlock with a 1×1
``nin_shortcut`` where channels change; single-head attention with 1×1 convs and scale c^-0.5; stride-2 3×3
downsampling after an asymmetric zero pad (0, 1, 0, 1); nearest ×2 upsampling then a 3×3 conv.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asyrp_bench.diffusion.backends.base import Backend, Bottleneck
from asyrp_bench.diffusion.backends.checkpoint import (
    check_state_dict,
    is_state_dict,
    load_torch_file,
    strip_prefix,
    to_float32,
)
from asyrp_bench.errors import CheckpointError, ConfigError

# -- config ------------------------------------------------------------------------------------------------------
REQUIRED_KEYS = (
    "ch", "out_ch", "ch_mult", "num_res_blocks", "attn_resolutions", "dropout", "in_channels", "resolution",
    "resamp_with_conv",
)
# num_groups: GroupNorm groups (32 in every released model; smaller for the tiny test nets).
# ema: take the EMA weights from an ermongroup training checkpoint when it has them (as their sampler does).
OPTIONAL_KEYS = {"num_groups": 32, "ema": True}
# Keys of the ermongroup ``model:`` YAML section that do not change the network; accepted so that section can be
# passed verbatim, and ignored.
IGNORED_KEYS = ("type", "var_type", "ema_rate", "weights")


@dataclass(frozen=True)
class DDPMConfig:
    """The ``model:`` section of the ermongroup / SDEdit configs (spec §8.2)."""

    ch: int
    out_ch: int
    ch_mult: tuple[int, ...]
    num_res_blocks: int
    attn_resolutions: tuple[int, ...]
    dropout: float
    in_channels: int
    resolution: int
    resamp_with_conv: bool
    num_groups: int = 32
    ema: bool = True

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any], where: str = "ddpm config") -> DDPMConfig:
        """Validate a config dict: every required key present, no unknown key, consistent sizes."""
        valid = (*REQUIRED_KEYS, *OPTIONAL_KEYS, *IGNORED_KEYS)
        listing = (
            f"Required keys: {', '.join(REQUIRED_KEYS)}; optional: "
            f"{', '.join(f'{k} (default {v})' for k, v in OPTIONAL_KEYS.items())}; ignored: {', '.join(IGNORED_KEYS)}."
        )
        unknown = sorted(set(config) - set(valid))
        missing = [k for k in REQUIRED_KEYS if k not in config]
        if unknown or missing:
            parts = [f"unknown key(s) {unknown}"] if unknown else []
            parts += [f"missing key(s) {missing}"] if missing else []
            raise ConfigError(f"{where}: {' and '.join(parts)}. {listing}")
        try:
            cfg = cls(
                ch=_int(config["ch"], "ch"),
                out_ch=_int(config["out_ch"], "out_ch"),
                ch_mult=tuple(_int(m, "ch_mult") for m in config["ch_mult"]),
                num_res_blocks=_int(config["num_res_blocks"], "num_res_blocks"),
                attn_resolutions=tuple(_int(r, "attn_resolutions") for r in config["attn_resolutions"]),
                dropout=float(config["dropout"]),
                in_channels=_int(config["in_channels"], "in_channels"),
                resolution=_int(config["resolution"], "resolution"),
                resamp_with_conv=bool(config["resamp_with_conv"]),
                num_groups=_int(config.get("num_groups", OPTIONAL_KEYS["num_groups"]), "num_groups"),
                ema=bool(config.get("ema", OPTIONAL_KEYS["ema"])),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}. {listing}") from exc
        cfg._check(where)
        return cfg

    def _check(self, where: str) -> None:
        def fail(msg: str) -> None:
            raise ConfigError(f"{where}: {msg}")

        if min(self.ch, self.out_ch, self.num_res_blocks, self.in_channels, self.num_groups) < 1:
            fail("ch, out_ch, num_res_blocks, in_channels and num_groups must be positive integers")
        if not self.ch_mult or min(self.ch_mult) < 1:
            fail(f"ch_mult must be a non-empty list of positive integers, got {list(self.ch_mult)}")
        if not 0.0 <= self.dropout < 1.0:
            fail(f"dropout must lie in [0, 1), got {self.dropout}")
        widths = {self.ch * m for m in (1, *self.ch_mult)}
        if any(w % self.num_groups for w in widths):
            fail(f"every channel width {sorted(widths)} must be divisible by num_groups={self.num_groups}")
        down = 2 ** (len(self.ch_mult) - 1)
        if self.resolution < down or self.resolution % down:
            fail(f"resolution {self.resolution} must be divisible by 2^(len(ch_mult)-1) = {down}")
        levels = self.level_resolutions
        stray = [r for r in self.attn_resolutions if r not in levels]
        if stray:
            fail(f"attn_resolutions {stray} never occur; the levels run at resolutions {levels}")

    @property
    def level_resolutions(self) -> list[int]:
        return [self.resolution // 2**i for i in range(len(self.ch_mult))]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ch_mult"] = list(self.ch_mult)
        out["attn_resolutions"] = list(self.attn_resolutions)
        return out


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    return value


# -- layers -------------------------------------------------------------------------------------------------------
def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding [B, dim] in the ermongroup order: [sin | cos] (spec §2.2; iDDPM uses [cos | sin])."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -(math.log(10000) / (half - 1)))
    args = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """norm1 -> swish -> conv1 (+ temb_proj(swish(temb))) -> norm2 -> swish -> dropout -> conv2, plus shortcut."""

    def __init__(self, in_ch: int, out_ch: int, temb_ch: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = _norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_proj = nn.Linear(temb_ch, out_ch)
        self.norm2 = _norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        # The released models never use the 3×3 conv_shortcut variant; only the 1×1 nin_shortcut exists.
        self.nin_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H·W positions, q/k/v/proj_out as 1×1 convs, scale c^-0.5."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = _norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, hh, ww = x.shape
        y = self.norm(x)
        q = self.q(y).reshape(b, c, hh * ww).transpose(1, 2)  # [B, HW, C]
        k = self.k(y).reshape(b, c, hh * ww)  # [B, C, HW]
        v = self.v(y).reshape(b, c, hh * ww)  # [B, C, HW]
        weights = torch.softmax(torch.bmm(q, k) * (c ** -0.5), dim=2)  # [B, HW_q, HW_k]
        out = torch.bmm(v, weights.transpose(1, 2)).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Halve H and W: zero pad right/bottom by one then a 3×3 stride-2 conv (or 2×2 average pooling)."""

    def __init__(self, channels: int, with_conv: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2) if with_conv else None

    def forward(self, x: Tensor) -> Tensor:
        if self.conv is None:
            return F.avg_pool2d(x, 2, stride=2)
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Double H and W: nearest neighbour ×2, then a 3×3 conv when ``with_conv``."""

    def __init__(self, channels: int, with_conv: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if with_conv else None

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x if self.conv is None else self.conv(x)


class _Level(nn.Module):
    """One resolution level: ``block`` (ResnetBlocks), ``attn`` (AttnBlocks, may be empty), a resampler."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()
        self.downsample: Downsample | None = None
        self.upsample: Upsample | None = None


class _Mid(nn.Module):
    def __init__(self, channels: int, temb_ch: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, temb_ch, dropout, groups)
        self.attn_1 = AttnBlock(channels, groups)
        self.block_2 = ResnetBlock(channels, channels, temb_ch, dropout, groups)


class _TimeEmbedding(nn.Module):
    def __init__(self, ch: int, temb_ch: int) -> None:
        super().__init__()
        self.dense = nn.ModuleList([nn.Linear(ch, temb_ch), nn.Linear(temb_ch, temb_ch)])


# -- the backend --------------------------------------------------------------------------------------------------
_LSUN_AND_CELEBA = {
    "ch": 128, "out_ch": 3, "ch_mult": [1, 1, 2, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [16],
    "dropout": 0.0, "in_channels": 3, "resolution": 256, "resamp_with_conv": True,
}


class DDPMBackend(Backend):
    """The ermongroup ``Model`` (SDEdit / DiffusionCLIP / Asyrp's ``DDPM``), split at the middle block.

    encode: time embedding, conv_in, the down path (every output pushed to ``skips``), mid.block_1 -> mid.attn_1
    -> mid.block_2; h = mid.block_2's output ([B, ch·ch_mult[-1], res/2^(L-1), ...], 512×8×8 at 256 px),
    temb = the [B, 4·ch] embedding after ``temb.dense``. decode: the up path from any h, popping the same skips.
    """

    name: ClassVar[str] = "ddpm"
    # The SDEdit / DiffusionCLIP configs (celeba.yml, church.yml, bedroom.yml) share one model section.
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "celeba_hq": {**_LSUN_AND_CELEBA, "weights": "ddpm_celeba_hq"},
        "church_outdoor": {**_LSUN_AND_CELEBA, "weights": "ddpm_church_outdoor"},
        "bedroom": {**_LSUN_AND_CELEBA, "weights": "ddpm_bedroom"},
    }
    default_preset: ClassVar[str] = "celeba_hq"

    @classmethod
    def preset_summary(cls, preset: str) -> str:
        return cls.summarize(cls.resolve_config(preset)[0])

    @staticmethod
    def summarize(cfg: DDPMConfig) -> str:
        """One line: resolution, widths, blocks per level, attention resolutions, h shape."""
        bottom = cfg.resolution // 2 ** (len(cfg.ch_mult) - 1)
        attn = ",".join(str(r) for r in cfg.attn_resolutions) or "none"
        mult = ",".join(str(m) for m in cfg.ch_mult)
        return (
            f"{cfg.resolution} px, ch {cfg.ch}×({mult}), {cfg.num_res_blocks} res/level, attn {attn}, "
            f"h {cfg.ch * cfg.ch_mult[-1]}×{bottom}×{bottom}"
        )

    def __init__(self, config: DDPMConfig) -> None:
        super().__init__()
        self.config = config
        ch, groups, drop = config.ch, config.num_groups, config.dropout
        temb_ch = 4 * ch
        in_ch_mult = (1, *config.ch_mult)
        n_levels = len(config.ch_mult)

        self.temb = _TimeEmbedding(ch, temb_ch)
        self.conv_in = nn.Conv2d(config.in_channels, ch, 3, padding=1)

        self.down = nn.ModuleList()
        res = config.resolution
        block_in = ch
        for level in range(n_levels):
            down = _Level()
            block_in = ch * in_ch_mult[level]
            block_out = ch * config.ch_mult[level]
            for _ in range(config.num_res_blocks):
                down.block.append(ResnetBlock(block_in, block_out, temb_ch, drop, groups))
                block_in = block_out
                if res in config.attn_resolutions:
                    down.attn.append(AttnBlock(block_in, groups))
            if level != n_levels - 1:
                down.downsample = Downsample(block_in, config.resamp_with_conv)
                res //= 2
            self.down.append(down)

        self.mid = _Mid(block_in, temb_ch, drop, groups)

        ups: list[_Level] = []
        for level in reversed(range(n_levels)):
            up = _Level()
            block_out = ch * config.ch_mult[level]
            for i_block in range(config.num_res_blocks + 1):
                # The last block of a level takes the skip pushed before that level's first down block.
                skip_in = ch * (in_ch_mult[level] if i_block == config.num_res_blocks else config.ch_mult[level])
                up.block.append(ResnetBlock(block_in + skip_in, block_out, temb_ch, drop, groups))
                block_in = block_out
                if res in config.attn_resolutions:
                    up.attn.append(AttnBlock(block_in, groups))
            if level != 0:
                up.upsample = Upsample(block_in, config.resamp_with_conv)
                res *= 2
            ups.insert(0, up)
        self.up = nn.ModuleList(ups)

        self.norm_out = _norm(block_in, groups)
        self.conv_out = nn.Conv2d(block_in, config.out_ch, 3, padding=1)

        self.image_size = config.resolution
        self.in_channels = config.in_channels
        bottom = config.resolution // 2 ** (n_levels - 1)
        self.h_shape = (ch * config.ch_mult[-1], bottom, bottom)
        self.temb_dim = temb_ch

    # -- encode / decode -----------------------------------------------------------------------------------------
    def time_embedding(self, t: Tensor) -> Tensor:
        """[B] integer timesteps -> [B, 4·ch] (sinusoid, dense.0, swish, dense.1)."""
        emb = timestep_embedding(t, self.config.ch).to(self.conv_in.weight.dtype)
        return self.temb.dense[1](F.silu(self.temb.dense[0](emb)))

    def _encode(self, x_t: Tensor, t: Tensor) -> Bottleneck:
        temb = self.time_embedding(t)
        hs = [self.conv_in(x_t)]
        for down in self.down:
            for i_block, block in enumerate(down.block):
                h = block(hs[-1], temb)
                if len(down.attn) > 0:
                    h = down.attn[i_block](h)
                hs.append(h)
            if down.downsample is not None:
                hs.append(down.downsample(hs[-1]))
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(hs[-1], temb)), temb)
        return Bottleneck(h=h, skips=tuple(hs), temb=temb, t=t)

    def _decode(self, bottleneck: Bottleneck, h: Tensor) -> Tensor:
        skips = list(bottleneck.skips)
        temb = bottleneck.temb
        for up in reversed(self.up):
            for i_block, block in enumerate(up.block):
                h = block(torch.cat([h, skips.pop()], dim=1), temb)
                if len(up.attn) > 0:
                    h = up.attn[i_block](h)
            if up.upsample is not None:
                h = up.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))

    # -- building and loading ------------------------------------------------------------------------------------
    @classmethod
    def resolve_config(cls, config: str | Mapping[str, Any] | None) -> tuple[DDPMConfig, str | None]:
        """(config, default weights key) from a preset name, a dict, or None (the default preset)."""
        if config is None:
            config = cls.default_preset
        if isinstance(config, str):
            if config not in cls.presets:
                raise ConfigError(
                    f"unknown {cls.name} preset {config!r}; presets: {', '.join(cls.presets)} (or pass a config dict)"
                )
            preset = cls.presets[config]
            return DDPMConfig.from_mapping(preset, where=f"{cls.name} preset {config!r}"), preset.get("weights")
        if isinstance(config, Mapping):
            return DDPMConfig.from_mapping(config, where=f"{cls.name} config"), config.get("weights")
        raise ConfigError(f"{cls.name} config must be a preset name or a dict, got {type(config).__name__}")

    @classmethod
    def build(cls, config: str | Mapping[str, Any] | DDPMConfig | None = None, device: str = "meta") -> DDPMBackend:
        """The architecture alone. On ``meta`` (the default) nothing is allocated and no RNG is consumed."""
        cfg = config if isinstance(config, DDPMConfig) else cls.resolve_config(config)[0]
        with torch.device(device):
            return cls(cfg)

    @classmethod
    def load(
        cls, weights: str | None = None, config: str | dict[str, Any] | None = None, device: str = "cpu"
    ) -> DDPMBackend:
        """Build from a preset (``celeba_hq``, ``church_outdoor``, ``bedroom``) or config dict and load weights.

        Args:
            weights: a checkpoint path or a weights key (``asyrp-bench ls weights``); default: the preset's key.
                Plain state dicts (``celeba_hq.ckpt``), ``module.``-prefixed DataParallel dicts and ermongroup
                training checkpoints ``[state_dict, optimizer, epoch, step(, ema)]`` are accepted.
            config: a preset name or a dict with the ermongroup ``model:`` keys (see :class:`DDPMConfig`).
            device: torch device string.
        """
        from asyrp_bench.weights import resolve

        cfg, default_weights = cls.resolve_config(config)
        if weights is None:
            if default_weights is None:
                raise ConfigError(f"{cls.name}: pass weights= (a checkpoint path or weights key) with a config dict")
            weights = default_weights
        path = resolve(weights, kind="diffusion")
        state_dict = extract_state_dict(load_torch_file(path), str(path), prefer_ema=cfg.ema)
        model = cls.build(cfg, device="meta")
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        check_state_dict(expected, state_dict, where=str(path))
        model.load_state_dict(to_float32(state_dict), strict=True, assign=True)
        return model.to(device).freeze()


def extract_state_dict(obj: Any, where: str, prefer_ema: bool = True) -> dict[str, Tensor]:
    """The model weights inside a loaded ermongroup-family checkpoint.

    * a plain state dict (``celeba_hq.ckpt``, ``church_outdoor.ckpt``, ``bedroom.ckpt``);
    * the ermongroup/ddim training format, a list ``[model, optimizer, epoch, step]`` plus the EMA shadow
      (``ema_helper.state_dict()``, parameter name -> tensor) appended when EMA was on; their sampler
      overwrites the parameters with that last entry, so we do the same unless ``prefer_ema`` is False;
    * keys prefixed ``module.`` (``nn.DataParallel``) are unprefixed.
    """
    if is_state_dict(obj):
        return strip_prefix(obj)
    if isinstance(obj, (list, tuple)) and obj and is_state_dict(obj[0]):
        state = strip_prefix(obj[0])
        last = obj[-1]
        if prefer_ema and len(obj) >= 5 and is_state_dict(last):
            ema = strip_prefix(last)
            unknown = sorted(set(ema) - set(state))
            if unknown:
                raise CheckpointError(f"{where}: the EMA entry has keys the model entry lacks: {unknown[:10]}")
            state.update(ema)  # the shadow holds parameters only; buffers come from the model entry
        return state
    if isinstance(obj, Mapping):
        top = ", ".join(repr(k) for k in list(obj)[:10])
        raise CheckpointError(
            f"{where} is a dict but not a state dict of tensors (top-level keys: {top}). Expected the plain "
            "state dict of the ermongroup Model (like celeba_hq.ckpt) or an ermongroup training checkpoint."
        )
    raise CheckpointError(
        f"{where} holds a {type(obj).__name__}, not a state dict. Expected the plain state dict of the "
        "ermongroup Model (like celeba_hq.ckpt) or an ermongroup training checkpoint (a list)."
    )

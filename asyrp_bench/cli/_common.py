"""Helpers shared by ``train`` and ``edit``: KEY=VALUE options and backend loading."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyrp_bench.errors import ConfigError

if TYPE_CHECKING:
    from asyrp_bench.diffusion.backends.base import Backend


def parse_assignments(items: list[str] | None, what: str) -> dict[str, Any]:
    """``["lr=0.2", "shuffle=true"]`` -> {"lr": 0.2, "shuffle": True}; values are read as YAML scalars/lists."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{what} must look like KEY=VALUE, got {item!r}")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as error:
            raise ConfigError(f"{what} {item!r}: cannot read the value ({error})") from None
    return out


def backend_config(config: str | None) -> str | dict[str, Any] | None:
    """A preset name, or a YAML/JSON file holding a config dict."""
    if config is None:
        return None
    path = Path(config).expanduser()
    if path.suffix.lower() in {".yaml", ".yml", ".json"}:
        import yaml

        if not path.is_file():
            raise ConfigError(f"backend config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text())
        if not isinstance(loaded, dict):
            raise ConfigError(f"backend config file {path} must hold a mapping")
        return loaded
    return config


def load_cli_backend(name: str, weights: str | None, config: str | None, device: str) -> Backend:
    from asyrp_bench.diffusion.backends.base import load_backend

    return load_backend(name, weights=weights, config=backend_config(config), device=device)


def load_image_folder(folder: str | Path, size: int, limit: int | None = None) -> tuple[list[str], Any, list[str]]:
    """(ids, images [N, 3, size, size] in [-1, 1], notes on resized files) of the first ``limit`` images of a
    folder in id order (``asyrp_bench.images``: id = file name without suffix, its resize rule, unreadable files
    named in the error)."""
    from asyrp_bench.images import list_images, load_images, to_unit_range

    listing = list_images(folder)
    ids = sorted(listing.images)[:limit]
    paths = [listing.images[i] for i in ids]
    batch, resized = load_images(paths, (size, size))
    notes = [f"{paths[i].name}: {h}x{w} -> {size}x{size}" for i, (h, w) in resized]
    return ids, to_unit_range(batch), notes


def speed_options(net: Any, precision: str, compile_: bool, channels_last: bool, cudnn_benchmark: bool) -> str:
    """Apply --precision / --compile / --channels-last / --cudnn-benchmark to a loaded backend.

    Returns the resolved precision (``auto``: bf16 on CUDA where supported, else fp32; docs/performance.md).
    Inversions and reconstructions stay fp32: the inversion cache key does not include a precision.
    """
    from asyrp_bench.precision import prepare_model, resolve_precision, set_cudnn_benchmark

    resolved = resolve_precision(precision, net.device)
    set_cudnn_benchmark(cudnn_benchmark)
    prepare_model(net, channels_last=channels_last, compile=compile_)
    return resolved

"""Editor files: the released Asyrp ``.pth`` format (spec §8.3) and the harness's own safetensors format.

The released checkpoints are ``{"0": DeltaBlock state_dict, "optimizer": SGD state, "scheduler": StepLR state}``
(zip pickles saved from CUDA tensors). Their DeltaBlock keys are exactly the ``additive`` editor's. They record
neither the backend, the prompts, nor the interval they were trained for (spec §10 B8).

Our format is a safetensors file of the editor's state dict whose string metadata holds, each value JSON-encoded:

* ``asyrp_bench.format`` = ``"editor"``, ``asyrp_bench.format_version`` = ``1``;
* ``variant`` and ``config`` (the variant's own parameters), ``h_shape`` [C, H, W], ``temb_dim``;
* provenance, the keys of ``editor.metadata``: ``backend`` {name, weights_hash, h_shape, temb_dim, ...},
  ``prompts`` {source, target, edit}, ``n_train_step``, ``t_edit``, ``t_boost``, ``recipe`` {name, values},
  ``clip``, ``seed``, ``package_version``, ``created`` (UTC ISO time), and whatever else training recorded.

Loading rebuilds the variant through the registry, checks keys strictly, and, given a backend, checks the
backend's weights hash and bottleneck shape, so an editor is never silently run on the wrong model.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from asyrp_bench.editors.additive import AdditiveEditor
from asyrp_bench.editors.base import Editor, build_editor
from asyrp_bench.errors import AsyrpBenchError, CheckpointError, ConfigError

if TYPE_CHECKING:
    from asyrp_bench.diffusion.backends.base import Backend

FORMAT_NAME = "editor"
FORMAT_VERSION = 1
_FORMAT_KEY = "asyrp_bench.format"
_VERSION_KEY = "asyrp_bench.format_version"
# Header entries that describe the network itself; everything else in the header is editor.metadata.
_STRUCTURE_KEYS = ("variant", "config", "h_shape", "temb_dim")

DELTABLOCK_KEYS = (
    "conv1.weight", "conv1.bias", "temb_proj.weight", "temb_proj.bias",
    "norm2.weight", "norm2.bias", "conv2.weight", "conv2.bias",
)
# The released files are all for the 256 px models, whose bottleneck is 8×8 (spec §2.1); a 1×1-conv DeltaBlock
# works at any spatial size, so this only records provenance.
RELEASED_SPATIAL = (8, 8)


def torch_load_checked(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with errors that name the file."""
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint ({type(error).__name__}: {str(error).splitlines()[0]})"
        ) from None


def check_keys(state_dict: dict[str, Any], expected: tuple[str, ...] | list[str], source: str) -> None:
    """Strict key check: missing or unexpected keys are an error listing them (never silently ignored)."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        raise CheckpointError(f"{source}: {'; '.join(parts)}")


def load_released_deltablock(path: str | os.PathLike[str]) -> AdditiveEditor:
    """Load a released Asyrp DeltaBlock ``.pth`` as an ``additive`` editor (key-for-key, strict)."""
    path = Path(path)
    checkpoint = torch_load_checked(path)
    if not isinstance(checkpoint, dict) or "0" not in checkpoint:
        found = sorted(checkpoint)[:10] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(
            f"{path} is not a released Asyrp checkpoint: expected a dict with key '0' holding the DeltaBlock "
            f"state dict (spec §8.3), found {found}"
        )
    state_dict = checkpoint["0"]
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: entry '0' is a {type(state_dict).__name__}, not a state dict")
    check_keys(state_dict, DELTABLOCK_KEYS, str(path))
    weight = state_dict["conv1.weight"]
    if weight.ndim != 4 or weight.shape[2:] != (1, 1) or weight.shape[0] != weight.shape[1]:
        raise CheckpointError(f"{path}: conv1.weight has shape {list(weight.shape)}, expected [C, C, 1, 1]")
    channels = int(weight.shape[0])
    temb_dim = int(state_dict["temb_proj.weight"].shape[1])
    editor = AdditiveEditor((channels, *RELEASED_SPATIAL), temb_dim)
    try:
        editor.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: {error}") from None
    editor.metadata = {"format": "asyrp_released_pth", "source_file": path.name}
    return editor


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def editor_header(editor: Editor, metadata: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The safetensors string metadata of ``editor``: structure + ``editor.metadata`` updated by ``metadata``."""
    from asyrp_bench import __version__

    provenance: dict[str, Any] = {"package_version": __version__,
                                  "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    provenance.update(editor.metadata)
    provenance.update(metadata or {})
    # A loaded .pth carries format/source_file; they describe where it came from, not this file.
    provenance.pop("format", None)
    structure = {"variant": editor.variant, "config": editor.config, "h_shape": list(editor.h_shape),
                 "temb_dim": editor.temb_dim}
    clash = sorted(set(structure) & set(provenance))
    if clash:
        raise ConfigError(f"editor metadata may not override the structure keys {clash}")
    header = {_FORMAT_KEY: json.dumps(FORMAT_NAME), _VERSION_KEY: json.dumps(FORMAT_VERSION)}
    for key, value in {**structure, **provenance}.items():
        try:
            header[key] = json.dumps(value, default=_json_default, sort_keys=True)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"editor metadata {key!r} cannot be written as JSON: {error}") from None
    return header


def save_editor(
    editor: Editor, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``editor`` as safetensors with its structure and provenance (see the module docstring).

    ``metadata`` adds to / overrides ``editor.metadata`` in the file (the editor object is not changed). The
    file is written under a temporary name and renamed, so a crash never leaves a half-written editor.
    Returns the path written.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ConfigError(f"editor files are written as .safetensors, got {path.name!r}")
    header = editor_header(editor, metadata)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in editor.state_dict().items()}
    for key, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"refusing to save editor: parameter {key!r} holds NaN or Inf")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=header)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_editor_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The decoded metadata of one of our editor files (structure + provenance), without loading tensors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
    except Exception as error:  # safetensors raises its own SafetensorError / OSError types
        raise CheckpointError(f"{path} is not a readable safetensors file ({type(error).__name__}: {error})") from None
    if raw.get(_FORMAT_KEY) != json.dumps(FORMAT_NAME):
        raise CheckpointError(
            f"{path} is a safetensors file but not an asyrp-bench editor (no {_FORMAT_KEY!r} metadata); "
            "editor files are written by `asyrp-bench train` or asyrp_bench.editors.io.save_editor"
        )
    header: dict[str, Any] = {}
    for key, text in raw.items():
        try:
            header[key] = json.loads(text)
        except json.JSONDecodeError:
            raise CheckpointError(f"{path}: metadata entry {key!r} is not valid JSON") from None
    version = header.pop(_VERSION_KEY, None)
    header.pop(_FORMAT_KEY)
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: editor format version {version!r}; this asyrp-bench reads {FORMAT_VERSION}")
    missing = [k for k in _STRUCTURE_KEYS if k not in header]
    if missing:
        raise CheckpointError(f"{path}: editor metadata lacks {missing}")
    return header


def _load_safetensors_editor(path: Path) -> Editor:
    from safetensors.torch import load_file

    header = read_editor_header(path)
    config = header["config"]
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: metadata 'config' must be a JSON object, got {config!r}")
    try:
        editor = build_editor(str(header["variant"]), tuple(header["h_shape"]), int(header["temb_dim"]), **config)
    except AsyrpBenchError as error:
        raise CheckpointError(f"{path}: cannot rebuild the editor from its metadata: {error}") from None
    state_dict = load_file(str(path))
    check_keys(state_dict, list(editor.state_dict()), str(path))
    try:
        editor.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: {error}") from None
    editor.metadata = {k: v for k, v in header.items() if k not in _STRUCTURE_KEYS}
    return editor


def check_editor_backend(editor: Editor, backend: Backend, check_hash: bool = True, source: str = "editor") -> None:
    """Raise ConfigError when ``editor`` does not fit ``backend``: bottleneck shape, temb width, weights hash.

    The hash is checked only when the editor records one (released ``.pth`` files do not). ``check_hash=False``
    skips it deliberately (e.g. the same network re-saved in another format).
    """
    channels = tuple(backend.h_shape)
    if editor.h_shape[0] != channels[0] or editor.temb_dim != backend.temb_dim:
        raise ConfigError(
            f"{source} was built for a bottleneck of {editor.h_shape[0]} channels and temb_dim {editor.temb_dim}, "
            f"but backend {backend.name!r} has h_shape {list(channels)} and temb_dim {backend.temb_dim}"
        )
    # Released .pth files cannot know their spatial size (recorded as 8×8); our files record the real one.
    if editor.metadata.get("format") != "asyrp_released_pth" and tuple(editor.h_shape) != channels:
        raise ConfigError(
            f"{source} was trained on a bottleneck {list(editor.h_shape)}, backend {backend.name!r} gives "
            f"{list(channels)}"
        )
    recorded = (editor.metadata.get("backend") or {}).get("weights_hash")
    if check_hash and recorded and recorded != backend.weights_hash:
        name = (editor.metadata.get("backend") or {}).get("name", "?")
        raise ConfigError(
            f"{source} was trained on backend {name!r} with weights hash {recorded[:12]}…, but the loaded "
            f"{backend.name!r} backend has {backend.weights_hash[:12]}…: different U-Net weights. Load the "
            "matching weights, or pass check_hash=False (CLI: --ignore-backend-hash) to use it anyway."
        )


def load_editor(
    path: str | os.PathLike[str], backend: Backend | None = None, check_hash: bool = True
) -> Editor:
    """Load an editor file: our ``.safetensors`` (any variant, with metadata) or a released Asyrp ``.pth``.

    Args:
        path: the file.
        backend: when given, the editor must fit it (bottleneck shape, temb width and, when the file records it,
            the backend's weights hash); mismatches raise ConfigError.
        check_hash: False skips the weights-hash check on purpose.

    Returns the editor in eval mode with ``metadata`` from the file (``edit`` reads n_train_step, t_edit and
    t_boost from it, fixing spec §10 B8).
    """
    path = Path(path)
    if path.suffix in {".pth", ".pt", ".ckpt"}:
        editor: Editor = load_released_deltablock(path)
    elif path.suffix == ".safetensors":
        editor = _load_safetensors_editor(path)
    else:
        raise CheckpointError(
            f"{path}: unsupported editor file type {path.suffix!r} (expected .safetensors or a released .pth)"
        )
    editor.eval()
    if backend is not None:
        check_editor_backend(editor, backend, check_hash=check_hash, source=str(path))
    return editor

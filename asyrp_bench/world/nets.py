"""The world's small judge networks and their loaders: identity embedder, attribute oracle, FID extractor.

The identity embedder and the oracle share one architecture (:class:`SmallCNN`): four 3×3 convolutions (three
with stride 2) with GroupNorm and SiLU over the 32-px face, global average pooling to a 128-d feature and a
linear head. Each is stored as a folder with ``config.json`` and ``model.safetensors`` (fp16; loaded back into
float32).

* :class:`WorldFaceEmbedder` plugs into the identity metric's embedder registry (``load`` / ``embed``).
* :class:`WorldOracle` regresses the ground-truth attributes (``smile``, ``tan``, ``glasses``) of a face; it is
  used only to check edits, never to train them.
* :class:`WorldFeatureExtractor` is the oracle's 128-d trunk feature behind torch-fidelity's extractor contract,
  registered as ``asyrp-world`` by :func:`register_fid_extractor`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asyrp_bench.errors import CheckpointError, ConfigError, InputError
from asyrp_bench.metrics.face_embedders import FaceEmbedder

WORLD_SIZE = 32
FID_EXTRACTOR_NAME = "asyrp-world"


class SmallCNN(nn.Module):
    """[B,3,32,32] in [-1,1] -> (feature [B,width[-1]], head output [B,out_dim])."""

    def __init__(self, out_dim: int, widths: tuple[int, ...] = (32, 64, 96, 128), groups: int = 8) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [nn.Conv2d(c_in, w, 3, stride=stride, padding=1), nn.GroupNorm(groups, w), nn.SiLU()]
            c_in = w
        layers += [nn.Conv2d(c_in, c_in, 3, padding=1), nn.GroupNorm(groups, c_in), nn.SiLU()]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, out_dim)
        self.config = {"out_dim": out_dim, "widths": list(widths), "groups": groups}

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feat = self.features(x)
        return feat, self.head(feat)


def to_world_input(images: Tensor) -> Tensor:
    """Float RGB [B,3,H,W] in [0,1] (any size) -> [B,3,32,32] in [-1,1] (antialiased bilinear resize)."""
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise InputError(f"expected float RGB images [B,3,H,W] in [0,1], got {shape}")
    if not images.is_floating_point():
        raise InputError(f"expected float images in [0,1], got dtype {images.dtype} (divide uint8 by 255)")
    x = images.float()
    if x.shape[-2:] != (WORLD_SIZE, WORLD_SIZE):
        x = F.interpolate(x, size=(WORLD_SIZE, WORLD_SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x * 2.0 - 1.0


def save_small_net(folder: Path, net: SmallCNN, meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({**net.config, **meta}, indent=2, sort_keys=True) + "\n")


def load_small_net(folder: Path, kind: str, device: str = "cpu") -> tuple[SmallCNN, dict[str, Any]]:
    """Load a :class:`SmallCNN` folder written by :func:`save_small_net` and check it is a ``kind`` model."""
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path, weights_path = folder / "config.json", folder / "model.safetensors"
    for path in (cfg_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"{folder} is not a world {kind} folder: {path.name} is missing")
    config = json.loads(cfg_path.read_text())
    if config.get("kind") != kind:
        raise CheckpointError(f"{folder} holds a world {config.get('kind')!r} model, not a {kind!r} one")
    net = SmallCNN(out_dim=int(config["out_dim"]), widths=tuple(config["widths"]), groups=int(config["groups"]))
    state = load_file(str(weights_path))
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as error:
        raise CheckpointError(f"{weights_path} does not match its config.json: {error}") from None
    return net.to(device).eval().requires_grad_(False), config


def _resolve(weights: str | Path | None, key: str) -> Path:
    """A weights key / folder / a file inside the folder (e.g. its model.safetensors) -> the folder."""
    from asyrp_bench import weights as registry

    path = registry.require(key) if weights is None else registry.resolve(weights)
    return path.parent if path.is_file() else path


class WorldFaceEmbedder(FaceEmbedder):
    """Identity embedder of the world's faces (identity metric registry name ``world``).

    ``embed`` takes float RGB [B,3,H,W] in [0,1] of any size (resized to 32 px inside, antialiased bilinear) and
    returns (L2-normalised embeddings [B,D], face_found [B] bool — always True: every world image is a face).
    Faces with the same identity parameters and different attributes embed close together.
    """

    def __init__(self, net: SmallCNN, config: dict[str, Any], device: str = "cpu") -> None:
        self.net = net
        self.config = config
        self.device = device
        self.dim = int(config["out_dim"])

    default_weights = "world_identity"

    @classmethod
    def load(cls, weights: str | None = None, device: str = "cpu", **params: Any) -> WorldFaceEmbedder:
        if params:
            raise ConfigError(f"face embedder world takes no parameters, got {sorted(params)}")
        net, config = load_small_net(_resolve(weights, cls.default_weights), "identity", device)
        return cls(net, config, device)

    @torch.no_grad()
    def embed(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = to_world_input(images).to(self.device)
        _, out = self.net(x)
        return F.normalize(out, dim=1), torch.ones(x.shape[0], dtype=torch.bool, device=x.device)


class WorldOracle:
    """Regressor of the ground-truth attributes of world faces (used only to check edits).

    ``predict`` takes float RGB [B,3,H,W] in [0,1] and returns ``{"smile": [B] in ~[-1,1], "tan": [B] in ~[0,1],
    "glasses": [B] probability}``.
    """

    #: output columns of the head: smile, tan, glasses logit, then the standardised identity parameters
    ATTRIBUTE_COLUMNS = ("smile", "tan", "glasses")

    def __init__(self, net: SmallCNN, config: dict[str, Any], device: str = "cpu") -> None:
        self.net = net
        self.config = config
        self.device = device

    @classmethod
    def load(cls, weights: str | None = None, device: str = "cpu") -> WorldOracle:
        net, config = load_small_net(_resolve(weights, "world_oracle"), "oracle", device)
        return cls(net, config, device)

    @torch.no_grad()
    def predict(self, images: Tensor) -> dict[str, Tensor]:
        _, out = self.net(to_world_input(images).to(self.device))
        return {"smile": out[:, 0], "tan": out[:, 1], "glasses": torch.sigmoid(out[:, 2])}

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """The 128-d trunk feature (what the FID extractor returns)."""
        return self.net.features(to_world_input(images).to(self.device))


def _extractor_base() -> type:
    import torch_fidelity

    return torch_fidelity.FeatureExtractorBase


def _make_extractor_class() -> type:
    base = _extractor_base()

    class WorldFeatureExtractor(base):  # type: ignore[misc, valid-type]
        """torch-fidelity extractor ``asyrp-world``: uint8 [B,3,H,W] -> the oracle's 128-d trunk feature.

        ``feature_extractor_weights_path`` may name an oracle folder, its model.safetensors or a weights key; the
        shipped ``world_oracle`` otherwise.
        """

        def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None,
                     **kwargs: Any) -> None:
            super().__init__(name, features_list)
            net, _ = load_small_net(_resolve(feature_extractor_weights_path, "world_oracle"), "oracle")
            self.net = net

        @staticmethod
        def get_provided_features_list() -> tuple[str, ...]:
            return ("feat",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric: str) -> str:
            if metric not in ("fid", "kid", "prc"):
                raise InputError(f"the {FID_EXTRACTOR_NAME} extractor supports fid, kid and prc, not {metric!r}")
            return "feat"

        @staticmethod
        def can_be_compiled() -> bool:
            return False

        @staticmethod
        def get_dummy_input_for_compile() -> Tensor:
            return torch.zeros(1, 3, WORLD_SIZE, WORLD_SIZE, dtype=torch.uint8)

        def forward(self, x: Tensor) -> tuple[Tensor, ...]:
            if x.dtype != torch.uint8:
                raise InputError(f"torch-fidelity extractors take uint8 images, got {x.dtype}")
            feat = self.net.features(to_world_input(x.float() / 255.0).to(next(self.net.parameters()).device))
            return tuple(feat for _ in self.features_list)

    return WorldFeatureExtractor


_EXTRACTOR_CLASS: type | None = None


def register_fid_extractor() -> str:
    """Register the ``asyrp-world`` feature extractor with torch-fidelity (idempotent); returns its name."""
    global _EXTRACTOR_CLASS
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if FID_EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        if _EXTRACTOR_CLASS is None:
            _EXTRACTOR_CLASS = _make_extractor_class()
        register_feature_extractor(FID_EXTRACTOR_NAME, _EXTRACTOR_CLASS)
    return FID_EXTRACTOR_NAME


def __getattr__(name: str) -> Any:
    # The extractor subclasses torch_fidelity's base class; build it on first use so that importing this module
    # (e.g. for the identity embedder) does not import torch-fidelity.
    global _EXTRACTOR_CLASS
    if name == "WorldFeatureExtractor":
        if _EXTRACTOR_CLASS is None:
            _EXTRACTOR_CLASS = _make_extractor_class()
        return _EXTRACTOR_CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

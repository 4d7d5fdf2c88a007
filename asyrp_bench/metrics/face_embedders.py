"""Face embedders for the ``identity`` metric: one contract, a registry, and facenet-pytorch's VGGFace2 model.

Contract (:class:`FaceEmbedder`): ``load(weights, device, **params)`` builds an instance; ``embed(images)`` takes
float RGB ``[B,3,H,W]`` in [0, 1] and returns ``(embeddings [B,D] L2-normalised, face_found [B] bool)``. For an
image where no face is found the embedding is the one of the embedder's documented fallback crop and
``face_found`` is False, so the metric decides (count or use the fallback). Other embedders register a lazy
target in :data:`FACE_EMBEDDERS` (e.g. the toy world's ``world``).

``facenet_vggface2`` (the default): MTCNN with facenet-pytorch's defaults (image_size 160, margin 0,
min_face_size 20, thresholds (0.6, 0.7, 0.7), factor 0.709, post_process True, select_largest True) on PIL
images (the facenet-pytorch README path), giving 160 px crops standardised as (x − 127.5)/128; then
InceptionResnetV1 with the VGGFace2 weights (``logits.*`` keys dropped), L2-normalised 512-d embeddings.
Fallback crop when MTCNN finds no face: the fixed region rows 35:223, cols 32:220 of a 256 px aligned face
(scaled to the image size; the DiffusionCLIP/StyleCLIP ID crop, metrics_and_peers.md §4.1), PIL-bilinear resized
to 160 px as MTCNN's own crops are, same standardisation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from asyrp_bench import weights as weights_registry
from asyrp_bench.errors import CheckpointError, ConfigError, InputError
from asyrp_bench.registry import Registry

# The DiffusionCLIP/StyleCLIP ID crop of a 256 px aligned face: rows 35:223, cols 32:220.
FALLBACK_CROP_256 = (35, 223, 32, 220)


class FaceEmbedder(ABC):
    """Contract of an identity embedder (see module docstring)."""

    #: weights key used when the metric's ``weights`` parameter is None (None: the embedder needs no file).
    default_weights: str | None = None

    @classmethod
    @abstractmethod
    def load(cls, weights: str | None, device: str, **params: Any) -> FaceEmbedder:
        """Build the embedder; ``weights`` is a path, a weights key, or None for :attr:`default_weights`."""

    @abstractmethod
    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """float RGB ``[B,3,H,W]`` in [0, 1] -> (L2-normalised embeddings ``[B,D]``, face_found ``[B]`` bool)."""


FACE_EMBEDDERS: Registry[type[FaceEmbedder]] = Registry("face embedder", base_cls=FaceEmbedder)
FACE_EMBEDDERS.register("facenet_vggface2", target="asyrp_bench.metrics.face_embedders:FacenetVGGFace2")
FACE_EMBEDDERS.register("arcface_irse50", target="asyrp_bench.metrics.irse50:ArcFaceIRSE50")
FACE_EMBEDDERS.register("world", target="asyrp_bench.world.nets:WorldFaceEmbedder")  # the shipped toy world


def load_vggface2_state_dict(path: Any) -> dict[str, torch.Tensor]:
    """A ``20180402-114759-vggface2.pt``-format file -> InceptionResnetV1 state dict without ``logits.*``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"cannot read {path} as a torch state dict (weights_only=True): {error}") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not an InceptionResnetV1 state dict")
    # the release file carries the 8631-class VGGFace2 classifier; embeddings do not use it (environment.md)
    return {k: v for k, v in state.items() if not k.startswith("logits.")}


class FacenetVGGFace2(FaceEmbedder):
    default_weights = "facenet_vggface2"

    def __init__(self, mtcnn: Any, net: torch.nn.Module, device: str) -> None:
        self.mtcnn, self.net, self.device = mtcnn, net, device

    @classmethod
    def load(cls, weights: str | None, device: str, **params: Any) -> FacenetVGGFace2:
        if params:
            raise ConfigError(f"face embedder facenet_vggface2 takes no parameters, got {sorted(params)}")
        from facenet_pytorch import MTCNN, InceptionResnetV1

        if weights is None:
            path = weights_registry.require(cls.default_weights)
        else:
            path = weights_registry.resolve(weights, kind="face")
        state = load_vggface2_state_dict(path)
        net = InceptionResnetV1(pretrained=None, classify=False)
        result = net.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise CheckpointError(
                f"{path} does not fit InceptionResnetV1: missing {result.missing_keys[:8]}"
                f"{'...' if len(result.missing_keys) > 8 else ''}, unexpected {result.unexpected_keys[:8]}"
            )
        net = net.to(device).eval().requires_grad_(False)
        # facenet-pytorch's defaults, spelled out because they fix the numbers (issue 4)
        mtcnn = MTCNN(image_size=160, margin=0, min_face_size=20, thresholds=[0.6, 0.7, 0.7], factor=0.709,
                      post_process=True, select_largest=True, keep_all=False, device=device)
        return cls(mtcnn, net, device)

    @staticmethod
    def fallback_crop(image: Any) -> torch.Tensor:
        """The fixed centre crop of a PIL image -> standardised ``[3,160,160]`` (as MTCNN's crops)."""
        import numpy as np
        from PIL import Image

        w, h = image.size
        top, bottom, left, right = FALLBACK_CROP_256
        box = (round(left * w / 256), round(top * h / 256), round(right * w / 256), round(bottom * h / 256))
        face = image.crop(box).resize((160, 160), Image.Resampling.BILINEAR)
        array = torch.from_numpy(np.asarray(face, dtype=np.float32).copy()).permute(2, 0, 1)
        return (array - 127.5) / 128.0

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"face embedder expects [B,3,H,W] in [0, 1], got {tuple(images.shape)}")
        arrays = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        pil = [Image.fromarray(a, mode="RGB") for a in arrays]
        # one image per MTCNN call: facenet-pytorch's batch mode fails under numpy 2 when a batch mixes images
        # with and without a face (np.array of ragged boxes), and per-image calls cannot depend on batch size
        crops = [self.mtcnn(image) for image in pil]
        found = torch.tensor([c is not None for c in crops], dtype=torch.bool)
        batch = torch.stack([c if c is not None else self.fallback_crop(p) for c, p in zip(crops, pil, strict=True)])
        return self.net(batch.to(self.device)).cpu(), found

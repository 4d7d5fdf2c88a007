"""ArcFace IR-SE50 (TreB1eN/InsightFace_Pytorch ``model_ir_se50.pth``), written here, and its identity embedder.

Layout as documented in docs/metrics.md ("ArcFace IR-SE50"): input 112 px, 50 layers in four stages of 3/4/14/3
SE bottleneck units (first unit of each stage stride 2), output BN2d -> Dropout -> Flatten -> Linear(512·7·7, 512)
-> BN1d, L2-normalised. Key names equal the released file's, so it loads strictly.

Embedder recipe (DiffusionCLIP's IDLoss): RGB in [-1, 1]; an image that is not 256x256 is first average-pooled
to 256x256 (``AdaptiveAvgPool2d``, as StyleCLIP's IDLoss does; DiffusionCLIP assumes 256 px input); crop rows
35:223, cols 32:220; adaptive average pool to 112x112; embed. No face detector: CelebA-HQ faces are aligned, and
the crop assumes that (every image counts as a found face).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from asyrp_bench import weights as weights_registry
from asyrp_bench.errors import ConfigError, InputError
from asyrp_bench.metrics.face_embedders import FALLBACK_CROP_256, FaceEmbedder
from asyrp_bench.metrics.strict_load import load_strict, read_state_dict

STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))  # (in, depth, units) for 50 layers


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))


class BottleneckIRSE(nn.Module):
    def __init__(self, cin: int, depth: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.shortcut_layer: nn.Module | None = None
        if cin != depth:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin), nn.Conv2d(cin, depth, 3, 1, 1, bias=False), nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False), nn.BatchNorm2d(depth), SqueezeExcite(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # equal widths: the original's MaxPool2d(1, stride) shortcut, i.e. plain subsampling
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.shortcut_layer is None else self.shortcut_layer(x)
        return self.res_layer(x) + shortcut


class IRSE50(nn.Module):
    """``forward(x [B,3,112,112] in [-1, 1])`` -> L2-normalised embeddings ``[B, 512]``."""

    def __init__(self) -> None:
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units = [BottleneckIRSE(cin if u == 0 else depth, depth, 2 if u == 0 else 1)
                 for cin, depth, n in STAGES for u in range(n)]
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(0.6), nn.Flatten(),
                                          nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (112, 112):
            raise InputError(f"IR-SE50 takes 112x112 inputs, got {tuple(x.shape[-2:])}")
        return F.normalize(self.output_layer(self.body(self.input_layer(x))), dim=1)


def load_irse50(path: Path, device: str = "cpu") -> IRSE50:
    """A ``model_ir_se50.pth``-format file -> IRSE50 (eval, frozen); strict keys."""
    net = IRSE50()
    load_strict(net, read_state_dict(path, "ArcFace IR-SE50"), path, "the ArcFace IR-SE50 backbone")
    return net.to(device).eval().requires_grad_(False)


def arcface_input(images: torch.Tensor) -> torch.Tensor:
    """float RGB ``[B,3,H,W]`` in [0, 1] -> the 112 px crop of DiffusionCLIP's IDLoss, in [-1, 1]."""
    x = images * 2 - 1
    if tuple(x.shape[-2:]) != (256, 256):
        x = F.adaptive_avg_pool2d(x, (256, 256))  # StyleCLIP's rule for other sizes (docs/metrics.md)
    top, bottom, left, right = FALLBACK_CROP_256
    return F.adaptive_avg_pool2d(x[:, :, top:bottom, left:right], (112, 112))


class ArcFaceIRSE50(FaceEmbedder):
    """The ``arcface_irse50`` face embedder (no detector; every face counts as found)."""

    default_weights = "arcface_irse50"

    def __init__(self, net: IRSE50, device: str) -> None:
        self.net, self.device = net, device

    @classmethod
    def load(cls, weights: str | None, device: str, **params: Any) -> ArcFaceIRSE50:
        if params:
            raise ConfigError(f"face embedder arcface_irse50 takes no parameters, got {sorted(params)}")
        if weights is None:
            path = weights_registry.require(cls.default_weights)
        else:
            path = weights_registry.resolve(weights, kind="face")
        return cls(load_irse50(path, device), device)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"face embedder expects [B,3,H,W] in [0, 1], got {tuple(images.shape)}")
        emb = self.net(arcface_input(images.float().to(self.device)))
        return emb.cpu(), torch.ones(images.shape[0], dtype=torch.bool)

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


# -- torch-fidelity: a tiny registered extractor and an Inception file ------------------------------------------

TINY_EXTRACTOR = "asyrp-test-tiny"


def tiny_extractor_class() -> type:
    """A small, deterministic, discriminative torch-fidelity extractor (colour statistics + a fixed random conv)."""
    import torch_fidelity

    class TinyExtractor(torch_fidelity.FeatureExtractorBase):
        def __init__(self, name, features_list, **kwargs):
            super().__init__(name, features_list)
            generator = torch.Generator().manual_seed(1234)  # same weights in every instance
            self.conv = torch.nn.Conv2d(3, 12, 3, stride=2)
            with torch.no_grad():
                self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator) * 0.5)
                self.conv.bias.copy_(torch.randn(12, generator=generator) * 0.1)

        @staticmethod
        def get_provided_features_list():
            return ("feat",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return "feat"

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)

        def forward(self, x):
            x = x.float() / 255
            stats = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
            feat = torch.cat([stats, self.conv(x).relu().mean(dim=(2, 3))], dim=1)
            return tuple(feat for _ in self.features_list)

    return TinyExtractor


def ensure_tiny_extractor() -> str:
    """Register the tiny extractor once per process (torch-fidelity refuses a second registration)."""
    import torch_fidelity
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    if TINY_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(TINY_EXTRACTOR, tiny_extractor_class())
    return TINY_EXTRACTOR


def _set_batchnorm_stats_from_data(net: torch.nn.Module, batch: torch.Tensor) -> None:
    """Random nets give near-constant features until BatchNorm statistics come from data (DESIGN §8)."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for module in norms:
        module.reset_running_stats()
        module.momentum = None  # cumulative average over this one batch
    net.train()
    with torch.no_grad():
        net(batch)
    net.eval()


def varied_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """uint8 [n,3,size,size] images that differ in colour, contrast and structure (for discriminative stats)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    x = x * torch.rand(n, 1, 1, 1, generator=g) * 1.5 + torch.rand(n, 3, size, size, generator=g) * 0.15
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def save_inception_compat(path: Path, seed: int = 0) -> Path:
    """A structurally valid torch-fidelity ``inception-v3-compat`` weights file (a state dict, torch.save)."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    cls = fe.FeatureExtractorInceptionV3
    real_url, real_load = fe.load_state_dict_from_url, cls.load_state_dict
    fe.load_state_dict_from_url = lambda *args, **kwargs: {}  # never fetch: layers only, random init
    cls.load_state_dict = lambda self, state_dict, strict=True, assign=False: None
    try:
        torch.manual_seed(seed)
        net = cls("inception-v3-compat", ["2048"])
    finally:
        fe.load_state_dict_from_url, cls.load_state_dict = real_url, real_load
    _set_batchnorm_stats_from_data(net, varied_images(3, 32, seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


# -- facenet-pytorch: a vggface2-format file -------------------------------------------------------------------


def save_vggface2_format(path: Path, seed: int = 0) -> Path:
    """An InceptionResnetV1 state dict with ``logits.*`` (8631 classes), as 20180402-114759-vggface2.pt."""
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(seed)
    net = InceptionResnetV1(pretrained=None)
    batch = varied_images(4, 160, seed).float()
    _set_batchnorm_stats_from_data(net, (batch - 127.5) / 128)
    state = dict(net.state_dict())
    state["logits.weight"] = torch.randn(8631, 512) * 0.01
    state["logits.bias"] = torch.zeros(8631)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


# -- segmentation-models-pytorch: a tiny segmenter folder ------------------------------------------------------

SEG_CLASSES = ["background", "skin", "hair", "mouth"]


def save_smp_folder(folder: Path, seed: int = 0, sidecar: dict | None = None) -> Path:
    """``model.save_pretrained(folder)`` of a 0.4 M-parameter Unet (4 classes) plus segmenter.json."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(seed)
    model = smp.Unet(encoder_name="tu-resnet10t", encoder_weights=None, encoder_depth=3,
                     decoder_channels=(32, 16, 8), classes=len(SEG_CLASSES))
    model.eval()
    model.save_pretrained(str(folder))
    if sidecar is None:
        sidecar = {"classes": SEG_CLASSES, "input_size": None, "mean": [0.485, 0.456, 0.406],
                   "std": [0.229, 0.224, 0.225]}
    if sidecar:
        (folder / "segmenter.json").write_text(json.dumps(sidecar))
    return folder


# -- a registered face embedder without weights (fast identity tests) ---------------------------------------------

TEST_EMBEDDER = "test_mean_colour"


def ensure_test_embedder() -> str:
    """Register a tiny FaceEmbedder: mean colour as the embedding, 'no face' for (nearly) black images."""
    import torch.nn.functional as F

    from asyrp_bench.metrics.face_embedders import FACE_EMBEDDERS, FaceEmbedder

    class MeanColourEmbedder(FaceEmbedder):
        @classmethod
        def load(cls, weights, device, **params):
            return cls()

        def embed(self, images):
            emb = F.normalize(images.mean(dim=(2, 3)) + 0.1, dim=-1)
            return emb, images.mean(dim=(1, 2, 3)) > 0.05

    if TEST_EMBEDDER not in FACE_EMBEDDERS:
        FACE_EMBEDDERS.register(TEST_EMBEDDER)(MeanColourEmbedder)
    return TEST_EMBEDDER


# -- the literature's metric models: BiSeNet, IR-SE50, torchvision AlexNet (issue 10) ------------------------------


def _randomise_affine(net: torch.nn.Module, seed: int) -> None:
    """BatchNorm weight 1 / bias 0 and PReLU 0.25 would hide a swapped parameter: give them random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=g))
                module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=g))
            elif isinstance(module, torch.nn.PReLU):
                module.weight.copy_(0.25 + 0.1 * torch.randn(module.weight.shape, generator=g))
            elif isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=g))


def save_bisenet_format(path: Path, calibration: torch.Tensor, seed: int = 0, with_tracked: bool = True) -> Path:
    """A random BiSeNet in the 79999_iter.pth layout (plain state dict, torch.save), BatchNorm stats from
    ``calibration`` (float [B,3,H,W] as the metric feeds them)."""
    from asyrp_bench.metrics.bisenet import BiSeNet

    torch.manual_seed(seed)
    net = BiSeNet()
    _randomise_affine(net, seed)
    _set_batchnorm_stats_from_data(net, calibration)
    state = {k: v for k, v in net.state_dict().items() if with_tracked or not k.endswith("num_batches_tracked")}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def save_irse50_format(path: Path, calibration: torch.Tensor, seed: int = 0) -> Path:
    """A random IR-SE50 in the model_ir_se50.pth layout, BatchNorm stats from ``calibration`` ([B,3,112,112])."""
    from asyrp_bench.metrics.irse50 import IRSE50

    torch.manual_seed(seed)
    net = IRSE50()
    _randomise_affine(net, seed)
    _set_batchnorm_stats_from_data(net, calibration)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


def save_torchvision_alexnet(path: Path, seed: int = 0) -> Path:
    """A random torchvision AlexNet state dict (features + classifier), as alexnet-owt-7be5be79.pth."""
    import torchvision

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path

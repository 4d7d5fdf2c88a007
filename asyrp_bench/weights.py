"""Registry of pretrained artifacts: what each file is, where it goes, where a user gets it.

Nothing here downloads. Each artifact is looked for, in order, in

1. ``$ASYRP_BENCH_HOME/weights/<filename>`` (``ASYRP_BENCH_HOME`` defaults to ``~/.cache/asyrp_bench``),
2. the library cache its own loader would use (the HF hub cache, the torch hub ``checkpoints`` folder, or
   ``$TORCH_HOME/checkpoints`` for facenet-pytorch),
3. the package's own ``assets/`` folder for the shipped toy world.

A missing artifact raises :class:`~asyrp_bench.errors.WeightsNotFoundError` naming the file, where to put it,
where to get it, and ``asyrp-bench doctor``. Any loader also accepts an explicit path instead of a key.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from asyrp_bench.errors import CheckpointError, WeightsNotFoundError

ASSETS_DIR = Path(__file__).parent / "assets"


@dataclass(frozen=True)
class Artifact:
    """One pretrained file or folder the harness can use.

    Attributes:
        name: registry key (snake_case), used in suites as ``weights: <name>``.
        filename: the expected file (or folder) name.
        kind: what it is for: diffusion, editor, clip, inception, face, segmenter, data, oracle (the world).
        description: one line for ``doctor``.
        source: where a user gets it (no URL is ever fetched by the harness).
        sha256: the file's checksum when known (verified on request, shown by ``doctor``).
        is_dir: the artifact is a folder (diffusers / smp model folders, datasets).
        hf_repo: HF hub repo whose cache snapshot may hold ``hf_filename`` (open_clip's own lookup path).
        hf_filename: file inside that snapshot (defaults to ``filename``).
        torch_hub: also look in ``torch.hub.get_dir()/checkpoints`` (torch-fidelity's cache).
        torch_home_checkpoints: also look in ``$TORCH_HOME/checkpoints`` (facenet-pytorch's cache).
        packaged: path relative to ``asyrp_bench/assets`` when the package ships it.
        env_var: an environment variable that points straight at the file or folder.
    """

    name: str
    filename: str
    kind: str
    description: str
    source: str
    sha256: str | None = None
    is_dir: bool = False
    hf_repo: str | None = None
    hf_filename: str | None = None
    torch_hub: bool = False
    torch_home_checkpoints: bool = False
    packaged: str | None = None
    env_var: str | None = None
    extra_locations: tuple[str, ...] = field(default_factory=tuple)


ARTIFACTS: dict[str, Artifact] = {}


def register_artifact(artifact: Artifact) -> Artifact:
    if artifact.name in ARTIFACTS:
        raise ValueError(f"artifact {artifact.name!r} is already registered")
    ARTIFACTS[artifact.name] = artifact
    return artifact


def home() -> Path:
    """The harness's own cache root (``$ASYRP_BENCH_HOME``, default ``~/.cache/asyrp_bench``)."""
    return Path(os.environ.get("ASYRP_BENCH_HOME", Path.home() / ".cache" / "asyrp_bench")).expanduser()


def weights_dir() -> Path:
    return home() / "weights"


def _hf_cache_dir() -> Path:
    if "HF_HUB_CACHE" in os.environ:
        return Path(os.environ["HF_HUB_CACHE"])
    hf_home = os.environ.get("HF_HOME", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface")
    return Path(hf_home) / "hub"


def _torch_home() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch"
    return Path(os.environ.get("TORCH_HOME", default))


def candidates(artifact: Artifact) -> list[Path]:
    """Every place ``artifact`` is looked for, in order."""
    paths: list[Path] = []
    if artifact.env_var and os.environ.get(artifact.env_var):
        paths.append(Path(os.environ[artifact.env_var]).expanduser())
    paths.append(weights_dir() / artifact.filename)
    if artifact.hf_repo:
        repo_dir = _hf_cache_dir() / ("models--" + artifact.hf_repo.replace("/", "--"))
        target = artifact.hf_filename or artifact.filename
        ref = repo_dir / "refs" / "main"
        if ref.is_file():
            paths.append(repo_dir / "snapshots" / ref.read_text().strip() / target)
        snapshots = repo_dir / "snapshots"
        if snapshots.is_dir():
            paths.extend(sorted(snap / target for snap in snapshots.iterdir()))
    if artifact.torch_hub:
        paths.append(_torch_home() / "hub" / "checkpoints" / artifact.filename)
    if artifact.torch_home_checkpoints:
        paths.append(_torch_home() / "checkpoints" / artifact.filename)
    if artifact.packaged:
        paths.append(ASSETS_DIR / artifact.packaged)
    paths.extend(Path(p).expanduser() for p in artifact.extra_locations)
    return paths


def find(name: str) -> Path | None:
    """The first existing location of artifact ``name``, or None."""
    artifact = get_artifact(name)
    for path in candidates(artifact):
        if (path.is_dir() if artifact.is_dir else path.is_file()):
            return path
    return None


def get_artifact(name: str) -> Artifact:
    if name not in ARTIFACTS:
        from asyrp_bench.registry import Registry

        reg: Registry[object] = Registry("weights key")
        for key in ARTIFACTS:
            reg.register(key)(object())
        raise WeightsNotFoundError(
            reg.unknown_message(name) + " A weights entry may also be a path to an existing file or folder."
        )
    return ARTIFACTS[name]


def missing_message(artifact: Artifact) -> str:
    where = weights_dir() / artifact.filename
    return (
        f"{artifact.description} ({artifact.name!r}) was not found. Expected "
        f"{'folder' if artifact.is_dir else 'file'} {artifact.filename!r}; put it at {where} "
        f"(or set ASYRP_BENCH_HOME, or pass a path). Get it from: {artifact.source}. "
        "Run `asyrp-bench doctor` to see every file the harness looks for."
    )


def require(name: str) -> Path:
    """The path of artifact ``name``; raises WeightsNotFoundError with directions when it is absent."""
    path = find(name)
    if path is None:
        raise WeightsNotFoundError(missing_message(get_artifact(name)))
    return path


def resolve(spec: str | os.PathLike[str], *, kind: str | None = None) -> Path:
    """Resolve a user's ``weights`` entry: an existing path wins, else a registry key.

    A string that looks like a path (has a separator or a file suffix) but does not exist is reported as a
    missing path, not as an unknown key.
    """
    path = Path(spec).expanduser()
    if path.exists():
        return path
    text = os.fspath(spec)
    if text in ARTIFACTS:
        artifact = ARTIFACTS[text]
        if kind is not None and artifact.kind != kind:
            raise WeightsNotFoundError(f"weights key {text!r} is a {artifact.kind} artifact, not a {kind} one")
        return require(text)
    if os.sep in text or "/" in text or path.suffix:
        raise WeightsNotFoundError(f"no such file or folder: {path} (run `asyrp-bench doctor` to see what is where)")
    return require(text)  # raises with a "did you mean"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(name: str, path: Path | None = None) -> Path:
    """Check a file against the registered sha256 (when one is known)."""
    artifact = get_artifact(name)
    path = path or require(name)
    if artifact.sha256 and not artifact.is_dir:
        actual = sha256_file(path)
        if actual != artifact.sha256:
            raise CheckpointError(f"{path} has sha256 {actual}, expected {artifact.sha256} for {name!r}")
    return path


# -- the artifacts --------------------------------------------------------------------------------------------
_DIFFUSIONCLIP = "the SDEdit / DiffusionCLIP release (DiffusionCLIP README, 'Pretrained Models')"

register_artifact(Artifact(
    name="ddpm_celeba_hq", filename="celeba_hq.ckpt", kind="diffusion",
    description="CelebA-HQ 256 DDPM (ermongroup layout)", source=_DIFFUSIONCLIP,
))
register_artifact(Artifact(
    name="ddpm_church_outdoor", filename="church_outdoor.ckpt", kind="diffusion",
    description="LSUN church 256 DDPM (ermongroup layout)", source=_DIFFUSIONCLIP,
))
register_artifact(Artifact(
    name="ddpm_bedroom", filename="bedroom.ckpt", kind="diffusion",
    description="LSUN bedroom 256 DDPM (ermongroup layout)", source=_DIFFUSIONCLIP,
))
register_artifact(Artifact(
    name="diffusers_ddpm_ema_celebahq_256", filename="ddpm-ema-celebahq-256", kind="diffusion", is_dir=True,
    description="CelebA-HQ 256 DDPM as a diffusers UNet2DModel folder",
    source="huggingface.co/google/ddpm-ema-celebahq-256 (download the folder on a machine with network)",
))

_ASYRP_SHA = {
    "smiling": "6694632ef848d12e595ec1291df734ef3e9850d94a08632f06dc8fdd459b7703",
    "sad": "3b1fbc22602043d8748fd444ef4a9f993175ad02196c56e7e0d4270ca2e5eea3",
    "tanned": "ac4e6eeb1c3aad92aa495a448d5ddf878c38b482b1feba08d8adaf1a856ec7f7",
    "pixar": "fb5b77b60221872c8ba9dd9af9f40a92c6eba5bb716585c0e7e75f996659b67e",
    "neanderthal": "f159a7ea48939f149a63de105e56c34d42ced887c712004139c950e5e8ac043b",
}
for _attr, _sha in _ASYRP_SHA.items():
    register_artifact(Artifact(
        name=f"asyrp_{_attr}", filename=f"{_attr}_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth", kind="editor",
        description=f"released Asyrp DeltaBlock '{_attr}' (CelebA-HQ, 40 steps)", sha256=_sha,
        source="kwonminki/Asyrp_official README, 'Pretrained checkpoints' (checkpoint/ folder)",
    ))

# -- metric models (issue 4) ------------------------------------------------------------------------------------
register_artifact(Artifact(
    name="clip_vit_b16_openai", filename="clip_vit_b16_openai.safetensors", kind="clip",
    description="OpenAI CLIP ViT-B/16 as an open_clip checkpoint (load as ViT-B-16-quickgelu; S_dir and training)",
    source="huggingface.co/timm/vit_base_patch16_clip_224.openai, file open_clip_model.safetensors (≈599 MB; "
           "rename it, or leave it in the HF hub cache where open_clip would put it)",
    hf_repo="timm/vit_base_patch16_clip_224.openai", hf_filename="open_clip_model.safetensors",
))
register_artifact(Artifact(
    name="inception_v3_compat", filename="weights-inception-2015-12-05-6726825d.pth", kind="inception",
    description="torch-fidelity's TF-compatible InceptionV3 (FID/KID feature extractor inception-v3-compat)",
    source="github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth "
           "(≈95 MB; '6726825d' is the start of its sha256, torch hub convention)",
    torch_hub=True,
))
register_artifact(Artifact(
    name="facenet_vggface2", filename="20180402-114759-vggface2.pt", kind="face",
    description="facenet-pytorch InceptionResnetV1 trained on VGGFace2 (identity metric)",
    source="github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt (≈110 MB)",
    torch_home_checkpoints=True,
))
register_artifact(Artifact(
    name="face_parsing_smp", filename="face_parsing_smp", kind="segmenter", is_dir=True,
    description="a face-parsing segmenter (19 CelebAMask-HQ classes) as a segmentation-models-pytorch folder "
                "(seg_consistency)",
    source="no public smp face parser exists: train one on CelebAMask-HQ (19 classes) with "
           "segmentation-models-pytorch and save it with model.save_pretrained(DIR) plus a segmenter.json "
           "(classes, input_size, mean, std); the Asyrp script used BiSeNet 79999_iter.pth, which is not an smp model",
))

# -- the tiny world shipped with the package (asyrp_bench/assets/world, docs/world.md) ------------------------
_WORLD = "shipped with asyrp-bench (asyrp-bench world train)"
# (asset folder under assets/world, kind, what it is); the key is world_<folder>
_WORLD_ASSETS = (
    ("ddpm", "diffusion", "32 px cartoon-face DDPM (diffusers UNet2DModel folder)"),
    ("clip", "clip", "CLIP (open_clip local-dir folder)"),
    ("parser", "segmenter", "face parser (segmentation-models-pytorch folder + segmenter.json)"),
    ("identity", "face", "identity embedder (WorldFaceEmbedder folder)"),
    ("oracle", "oracle", "attribute oracle and FID feature net (asyrp-world extractor)"),
)
for _folder, _kind, _what in _WORLD_ASSETS:
    register_artifact(Artifact(
        name=f"world_{_folder}", filename=f"world_{_folder}", kind=_kind, is_dir=True, packaged=f"world/{_folder}",
        description=f"the tiny world's {_what}", source=_WORLD,
    ))

# -- data folders (asyrp_bench/data.py documents the split rules) ---------------------------------------------
_CELEBAHQ_SOURCE = ("DiffusionCLIP's `bash data_download.sh celeba_hq` (StyleMapGAN's CelebA-HQ split), its folder "
                    "data/celeba_hq/raw_images/{part}/images")
for _part in ("test", "train"):
    register_artifact(Artifact(
        name=f"celebahq_{_part}_images", filename=f"celeba_hq/raw_images/{_part}/images", kind="data", is_dir=True,
        description=f"CelebA-HQ {_part} images (the DiffusionCLIP/Asyrp {_part} split)",
        source=_CELEBAHQ_SOURCE.format(part=_part), env_var=f"ASYRP_BENCH_CELEBAHQ_{_part.upper()}",
    ))

# -- the literature's metric models (issue 10; docs/metrics.md "Metric models") ---------------------------------
register_artifact(Artifact(
    name="face_parsing_bisenet", filename="79999_iter.pth", kind="segmenter",
    description="face-parsing.PyTorch BiSeNet face parser, 19 CelebAMask-HQ classes (seg_consistency, the "
                "Asyrp-lineage SC parser); facexlib's parsing_bisenet.pth has the same layout",
    source="github.com/zllrunning/face-parsing.PyTorch README (Google Drive link to res/cp/79999_iter.pth, "
           "≈53 MB); or github.com/xinntao/facexlib/releases/download/v0.2.0/parsing_bisenet.pth (rename it)",
))
register_artifact(Artifact(
    name="arcface_irse50", filename="model_ir_se50.pth", kind="face",
    description="ArcFace IR-SE50 (TreB1eN/InsightFace_Pytorch), the DiffusionCLIP / StyleCLIP / Asyrp ID model",
    source="github.com/TreB1eN/InsightFace_Pytorch README ('IR-SE50 @ Onedrive'), the file DiffusionCLIP's "
           "README lists as pretrained/model_ir_se50.pth (≈175 MB)",
))
for _net, _key, _file in (("AlexNet", "lpips_alexnet", "alexnet-owt-7be5be79.pth"),
                          ("VGG16", "lpips_vgg", "vgg16-397923af.pth"),
                          ("SqueezeNet 1.1", "lpips_squeezenet", "squeezenet1_1-b8a52dc0.pth")):
    register_artifact(Artifact(
        name=_key, filename=_file, kind="lpips", torch_hub=True,
        description=f"torchvision ImageNet {_net} (the lpips metric's backbone; its linear heads ship in the "
                    "lpips wheel)",
        source=f"download.pytorch.org/models/{_file} (torchvision's own file; the 8 hex digits are the start of "
               "its sha256, torch hub convention)",
    ))

"""Image files <-> tensors, and pairing of image folders by file name.

Conventions used everywhere in the package:

* an **image id** is the file name without its suffix (``000123.jpg`` and ``000123.png`` are the same image), so
  edits saved as PNG pair with JPEG sources; two files with the same id in one folder are an error;
* images in memory are ``uint8`` tensors ``[3,H,W]`` / ``[N,3,H,W]`` in RGB (what a PNG holds), or float tensors in
  ``[-1, 1]`` for the diffusion models; :func:`to_uint8` is the one quantisation rule between the two (round to
  nearest), so scores computed from tensors in memory equal scores of the same images saved as PNG;
* **reference size**: given by the backend (its image size) or, when scoring folders, the most common source
  size (ties: the largest), never the first file; an image with a side below :data:`MIN_SIDE` pixels or below a
  quarter of the reference side is refused (upsampling it that far gives meaningless scores);
* **modes** (:func:`read_image`): 8-bit RGB/L/P/CMYK/YCbCr/1 are converted by PIL; 16-bit grayscale (``I;16``) is
  scaled to 8 bits (v / 257, rounded); 32-bit integer and float modes (``I``, ``F``) have no fixed range and are
  refused; an alpha channel (RGBA, LA, PA, P with transparency) is dropped only when fully opaque, otherwise the
  image is refused (the colour under transparent pixels is undefined);
* **resize rule** (:data:`RESIZE_RULE`): every image of a scored set is brought to the reference size. Same aspect ratio: PIL bicubic resize (antialiased). Other aspect ratio: PIL bicubic
  resize of the shorter side, then a centre crop. Every resized file is reported, never silently changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from asyrp_bench.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MIN_SIDE = 8
RESIZE_RULE = ("resized to the reference size with PIL bicubic (shorter side + centre crop when the "
               "aspect ratio differs)")
_MAX_LISTED = 12


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


@dataclass
class FolderListing:
    """Images of one folder by id, plus the files that are not images (reported, not read)."""

    folder: Path
    images: dict[str, Path]
    ignored: list[Path] = field(default_factory=list)


def list_images(folder: str | Path) -> FolderListing:
    """Image files of ``folder`` (not recursive) by id; hidden files are skipped, other non-images listed."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"image folder {folder} does not exist or is not a folder")
    images: dict[str, Path] = {}
    ignored: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            ignored.append(path)
            continue
        if path.stem in images:
            raise InputError(f"{folder} holds two images with the id {path.stem!r}: {images[path.stem].name} and "
                             f"{path.name}; keep one (images are paired by file name without suffix)")
        images[path.stem] = path
    if not images:
        raise InputError(f"no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return FolderListing(folder, images, ignored)


def _to_rgb_array(image, path: Path):  # type: ignore[no-untyped-def]
    """PIL image of any mode -> uint8 [H,W,3] by the mode rules of the module docstring."""
    import numpy as np

    mode = image.mode
    if mode.startswith("I;16"):
        values = np.array(image, dtype=np.float64)
        gray = np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode in ("I", "F") or mode.startswith(("I;", "F;")):
        raise InputError(f"image {path} is in mode {mode} (32-bit integer or float pixels, no fixed range); "
                         "convert it to 8-bit RGB (or 16-bit grayscale) PNG")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        alpha = np.array(image.getchannel("A"))
        if alpha.min() < 255:
            raise InputError(f"image {path} has transparent pixels ({int((alpha < 255).sum())} of {alpha.size}); "
                             "the colour under them is undefined: flatten it onto a background first")
    try:
        rgb = image.convert("RGB")
    except ValueError as error:
        raise InputError(f"image {path}: mode {mode} cannot be converted to RGB ({error})") from error
    return np.array(rgb, dtype=np.uint8)


def read_image(path: str | Path) -> torch.Tensor:
    """One image file -> uint8 ``[3,H,W]`` RGB. Unreadable, truncated, tiny or unconvertible files raise
    InputError naming the file (mode rules: module docstring)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later inside a metric
            rgb = _to_rgb_array(image, path)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"cannot read image {path}: {error or type(error).__name__}") from error
    except Image.DecompressionBombError as error:
        raise InputError(f"cannot read image {path}: {error}") from error
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError(f"image {path} is {h}x{w}: images smaller than {MIN_SIDE} pixels on a side are refused")
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def reference_size(sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The most common (H, W) of a set (ties: the largest area), never simply the first file's."""
    from collections import Counter

    counts = Counter(sizes)
    return max(counts, key=lambda s: (counts[s], s[0] * s[1], s))


def _check_not_tiny(path: Path, original: tuple[int, int], size: tuple[int, int]) -> None:
    if min(original[0] * 4 - size[0], original[1] * 4 - size[1]) < 0:
        raise InputError(f"image {path} is {original[0]}x{original[1]}, far below the reference size "
                         f"{size[0]}x{size[1]} (less than a quarter per side): refused rather than upsampled")


def resize_uint8(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize uint8 ``[3,H,W]`` to ``size`` = (H, W) by :data:`RESIZE_RULE` (PIL bicubic, crop on aspect change)."""
    import numpy as np
    from PIL import Image

    h, w = image.shape[-2:]
    th, tw = size
    if (h, w) == (th, tw):
        return image
    pil = Image.fromarray(image.permute(1, 2, 0).cpu().numpy(), mode="RGB")
    if h * tw == w * th:
        pil = pil.resize((tw, th), Image.Resampling.BICUBIC)
    else:
        scale = max(th / h, tw / w)
        rh, rw = max(th, round(h * scale)), max(tw, round(w * scale))
        pil = pil.resize((rw, rh), Image.Resampling.BICUBIC)
        top, left = (rh - th) // 2, (rw - tw) // 2
        pil = pil.crop((left, top, left + tw, top + th))
    return torch.from_numpy(np.array(pil, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def load_images(paths: Sequence[Path], size: tuple[int, int] | None = None
                ) -> tuple[torch.Tensor, list[tuple[int, tuple[int, int]]]]:
    """Read files into uint8 ``[N,3,H,W]``; images not of ``size`` (default: :func:`reference_size` of the
    files) are resized; images far below it are refused.

    Returns the batch and, for every resized image, (index, original (H, W)).
    """
    if not paths:
        raise InputError("no image files given")
    read = [read_image(path) for path in paths]
    originals = [(int(image.shape[1]), int(image.shape[2])) for image in read]
    size = size if size is not None else reference_size(originals)
    out: list[torch.Tensor] = []
    resized: list[tuple[int, tuple[int, int]]] = []
    for i, (image, original) in enumerate(zip(read, originals, strict=True)):
        if original != size:
            _check_not_tiny(paths[i], original, size)
            image = resize_uint8(image, size)
            resized.append((i, original))
        out.append(image)
    return torch.stack(out), resized


@dataclass
class PairedImages:
    """Source, edited (and optionally reconstructed) images paired by id, sorted by id, all of one size.

    Attributes:
        image_ids: sorted ids.
        sources, edits, reconstructions: uint8 ``[N,3,H,W]`` (reconstructions None when not given).
        resized: human-readable notes "<set>/<file>: HxW -> HxW" for every image that was resized.
        ignored: non-image files found in the folders (not read).
    """

    image_ids: list[str]
    sources: torch.Tensor
    edits: torch.Tensor
    reconstructions: torch.Tensor | None = None
    resized: list[str] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)


def pair_folders(source_dir: str | Path, edited_dir: str | Path,
                 reconstruction_dir: str | Path | None = None) -> tuple[list[str], dict[str, FolderListing]]:
    """Match image ids across folders; any id missing on a side is an InputError listing what is missing where."""
    listings = {"source": list_images(source_dir), "edited": list_images(edited_dir)}
    if reconstruction_dir is not None:
        listings["reconstruction"] = list_images(reconstruction_dir)
    all_ids = sorted(set().union(*(set(listing.images) for listing in listings.values())))
    problems = []
    for role, listing in listings.items():
        missing = [i for i in all_ids if i not in listing.images]
        if missing:
            problems.append(f"missing in the {role} folder {listing.folder} ({len(missing)}): {_names(missing)}")
    if problems:
        raise InputError("image folders do not pair by file name: " + "; ".join(problems))
    return all_ids, listings


def load_paired_folders(source_dir: str | Path, edited_dir: str | Path,
                        reconstruction_dir: str | Path | None = None) -> PairedImages:
    """Pair folders by file name (:func:`pair_folders`) and load them to uint8 tensors of one size."""
    ids, listings = pair_folders(source_dir, edited_dir, reconstruction_dir)
    size: tuple[int, int] | None = None
    tensors: dict[str, torch.Tensor] = {}
    notes: list[str] = []
    for role, listing in listings.items():
        paths = [listing.images[i] for i in ids]
        batch, resized = load_images(paths, size)
        if size is None:
            size = (int(batch.shape[2]), int(batch.shape[3]))
        for index, original in resized:
            notes.append(f"{role}/{paths[index].name}: {original[0]}x{original[1]} -> {size[0]}x{size[1]}")
        tensors[role] = batch
    ignored = [p for listing in listings.values() for p in listing.ignored]
    return PairedImages(ids, tensors["source"], tensors["edited"], tensors.get("reconstruction"), notes, ignored)


# -- conversions ------------------------------------------------------------------------------------------------


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in ``[-1, 1]`` (any shape) -> uint8 by ``round((clamp(x) + 1) * 127.5)``: the quantisation of a
    saved PNG. Use it (and :func:`save_png`) whenever images leave the diffusion models."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in ``[-1, 1]`` (``x / 127.5 - 1``)."""
    if x.dtype != torch.uint8:
        raise InputError(f"expected uint8 images, got {x.dtype}")
    return x.float() / 127.5 - 1


def to_zero_one(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in ``[0, 1]``."""
    if x.dtype != torch.uint8:
        raise InputError(f"expected uint8 images, got {x.dtype}")
    return x.float() / 255


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    """Write uint8 ``[3,H,W]`` (or float in [-1, 1], quantised by :func:`to_uint8`) as a lossless PNG."""
    from PIL import Image

    if image.dtype != torch.uint8:
        image = to_uint8(image)
    if image.ndim != 3 or image.shape[0] != 3:
        raise InputError(f"save_png expects one image [3,H,W], got {tuple(image.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.permute(1, 2, 0).cpu().numpy(), mode="RGB").save(path, format="PNG")
    return path


def load_folder(folder: str | Path, size: tuple[int, int] | None = None) -> tuple[list[str], torch.Tensor, list[str]]:
    """All images of one folder: (sorted ids, uint8 ``[N,3,H,W]``, notes on resized files)."""
    listing = list_images(folder)
    ids = sorted(listing.images)
    paths = [listing.images[i] for i in ids]
    batch, resized = load_images(paths, size)
    target = tuple(batch.shape[2:])
    notes = [f"{paths[i].name}: {h}x{w} -> {target[0]}x{target[1]}" for i, (h, w) in resized]
    return ids, batch, notes

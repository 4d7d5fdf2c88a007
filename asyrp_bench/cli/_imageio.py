"""Image folders for ``asyrp-bench train`` and ``edit``: the only place these commands touch image files.

A stop-gap until the shared ``asyrp_bench.images`` module lands: same conventions (image id = file name without
suffix, ids sorted, unreadable files named in the error, PNG out by round((x + 1)·127.5)); swap the bodies for
calls into that module then.
"""

from __future__ import annotations

from pathlib import Path

import torch

from asyrp_bench.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def load_image_folder(folder: str | Path, size: int, limit: int | None = None) -> tuple[list[str], torch.Tensor]:
    """(ids, images [N, 3, size, size] in [-1, 1]) of a folder, sorted by id; other sizes are resized.

    Resize rule (Asyrp's custom dataset, spec §4.2, plus a centre crop for non-square images): PIL bicubic resize
    of the shorter side to ``size``, then a centre crop.
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"image folder {folder} does not exist or is not a folder")
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
         and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.stem,
    )
    if not files:
        raise InputError(f"no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)})")
    stems = [p.stem for p in files]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise InputError(f"{folder} holds several files with the id(s) {duplicates}; keep one per id")
    if limit is not None:
        files = files[:limit]
    out = []
    for path in files:
        try:
            with Image.open(path) as image:
                image.load()
                rgb = image.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
            raise InputError(f"cannot read image {path}: {error}") from None
        w, h = rgb.size
        if (w, h) != (size, size):
            scale = size / min(w, h)
            rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
            rgb = rgb.resize((rw, rh), Image.Resampling.BICUBIC)
            left, top = (rw - size) // 2, (rh - size) // 2
            rgb = rgb.crop((left, top, left + size, top + size))
        out.append(torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1))
    return [p.stem for p in files], torch.stack(out).float() / 127.5 - 1.0


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    """One image [3, H, W] in [-1, 1] as a lossless PNG (quantised by round((x + 1)·127.5))."""
    from PIL import Image

    x = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(x.permute(1, 2, 0).cpu().numpy(), mode="RGB").save(path, format="PNG")
    return path

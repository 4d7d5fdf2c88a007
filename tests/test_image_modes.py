"""Image modes, tiny images, the reference size, and a fuzz test over image files (asyrp_bench.images)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from asyrp_bench import images
from asyrp_bench.errors import InputError

RNG = np.random.default_rng(0)


def test_16_bit_grayscale_is_scaled_not_white(tmp_path: Path):
    values = RNG.integers(0, 65536, size=(16, 16)).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I;16")
    x = images.read_image(path)
    expected = torch.from_numpy(np.round(values / 257.0).astype(np.uint8))
    assert torch.equal(x[0], expected) and torch.equal(x[1], expected) and torch.equal(x[2], expected)
    assert x.float().std() > 30  # not solid white


@pytest.mark.parametrize("mode", ["I", "F"])
def test_32_bit_modes_are_refused(tmp_path: Path, mode: str):
    path = tmp_path / "x.tif"
    Image.fromarray(RNG.integers(0, 255, size=(16, 16)).astype(np.int32 if mode == "I" else np.float32)
                    ).save(path)
    assert Image.open(path).mode == mode
    with pytest.raises(InputError, match=rf"x\.tif is in mode {mode}"):
        images.read_image(path)


def test_transparency_refused_opaque_alpha_dropped(tmp_path: Path):
    rgb = RNG.integers(0, 256, size=(16, 16, 3)).astype(np.uint8)
    opaque = np.dstack([rgb, np.full((16, 16), 255, np.uint8)])
    Image.fromarray(opaque, "RGBA").save(tmp_path / "o.png")
    assert torch.equal(images.read_image(tmp_path / "o.png"), torch.from_numpy(rgb).permute(2, 0, 1))
    holes = opaque.copy()
    holes[0, 0, 3] = 0
    Image.fromarray(holes, "RGBA").save(tmp_path / "h.png")
    with pytest.raises(InputError, match=r"h\.png has transparent pixels \(1 of 256\)"):
        images.read_image(tmp_path / "h.png")
    gray = RNG.integers(0, 256, size=(16, 16)).astype(np.uint8)
    la = Image.fromarray(np.dstack([gray, np.full_like(gray, 255)]), "LA")
    la.save(tmp_path / "la.png")
    assert torch.equal(images.read_image(tmp_path / "la.png")[1], torch.from_numpy(gray))
    la.putalpha(Image.fromarray(np.where(gray > 128, 255, 0).astype(np.uint8)))
    la.save(tmp_path / "la2.png")
    with pytest.raises(InputError, match="transparent"):
        images.read_image(tmp_path / "la2.png")
    palette = Image.fromarray(gray).convert("P")
    palette.info["transparency"] = int(np.array(palette)[3, 3])
    palette.save(tmp_path / "p.png", transparency=palette.info["transparency"])
    assert "transparency" in Image.open(tmp_path / "p.png").info
    with pytest.raises(InputError, match="transparent"):
        images.read_image(tmp_path / "p.png")


def test_cmyk_is_converted(tmp_path: Path):
    rgb = Image.fromarray(RNG.integers(0, 256, size=(16, 16, 3)).astype(np.uint8))
    rgb.convert("CMYK").save(tmp_path / "c.tif")
    x = images.read_image(tmp_path / "c.tif")
    assert torch.equal(x, torch.from_numpy(np.array(Image.open(tmp_path / "c.tif").convert("RGB"))).permute(2, 0, 1))
    assert (x.float() - torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float()).abs().max() <= 1


def test_tiny_images_refused_and_reference_not_the_first_file(tmp_path: Path):
    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    with pytest.raises(InputError, match=r"one\.png is 1x1"):
        images.read_image(tmp_path / "one.png")
    for name, side in (("a", 10), ("b", 36), ("c", 36)):
        for folder in ("src", "edit"):
            (tmp_path / folder).mkdir(exist_ok=True)
            Image.fromarray(RNG.integers(0, 256, size=(side, side, 3)).astype(np.uint8)).save(
                tmp_path / folder / f"{name}.png")
    paired = images.load_paired_folders(tmp_path / "src", tmp_path / "edit")  # a (first) is 10x10
    assert paired.sources.shape[-2:] == (36, 36)
    Image.new("RGB", (8, 8)).save(tmp_path / "src" / "a.png")
    with pytest.raises(InputError, match=r"a\.png is 8x8, far below the reference size 36x36"):
        images.load_paired_folders(tmp_path / "src", tmp_path / "edit")
    assert images.reference_size([(8, 8), (16, 16), (16, 16)]) == (16, 16)
    assert images.reference_size([(8, 8), (16, 16)]) == (16, 16)


_MODES = ["RGB", "L", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F", "1"]


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=st.sampled_from(_MODES), h=st.integers(1, 40), w=st.integers(1, 40),
       fmt=st.sampled_from(["PNG", "TIFF", "JPEG", "BMP"]), cut=st.one_of(st.none(), st.integers(0, 400)),
       seed=st.integers(0, 2**16))
def test_fuzz_image_files_give_a_clear_error_or_a_valid_image(tmp_path_factory, mode, h, w, fmt, cut, seed):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, size=(h, w, 3)).astype(np.uint8)).convert(
        "L" if mode in ("I;16", "I", "F") else "RGB")
    if mode in ("I;16", "I", "F"):
        image = image.convert(mode) if mode != "I;16" else Image.fromarray(
            np.array(image).astype(np.uint16) * 257)
    else:
        image = image.convert(mode)
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=fmt)
    except (OSError, ValueError, KeyError):
        return  # PIL cannot write this mode in this format: nothing to read
    data = buffer.getvalue()
    if cut is not None:
        data = data[: min(cut, len(data))]
    path = tmp_path_factory.mktemp("fuzz") / f"x.{fmt.lower()}"
    path.write_bytes(data)
    try:
        x = images.read_image(path)
    except InputError as error:
        assert str(path) in str(error)
        return
    assert x.dtype == torch.uint8 and x.ndim == 3 and x.shape[0] == 3
    assert min(x.shape[1:]) >= images.MIN_SIDE

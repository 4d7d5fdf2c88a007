"""asyrp_bench.images (folders, pairing, resize rule, quantisation) and asyrp_bench.stats (bootstrap)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from asyrp_bench import images, stats
from asyrp_bench.errors import InputError


def write(path: Path, size: tuple[int, int] = (16, 16), seed: int = 0, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    h, w = size
    array = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).convert(mode).save(path)
    return path


# -- folders and pairing --------------------------------------------------------------------------------------


def test_list_images_ids_ignored_and_duplicates(tmp_path: Path):
    write(tmp_path / "a" / "001.png")
    write(tmp_path / "a" / "002.jpg")
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "a" / ".hidden.png").write_bytes(b"")
    listing = images.list_images(tmp_path / "a")
    assert sorted(listing.images) == ["001", "002"]
    assert [p.name for p in listing.ignored] == ["notes.txt"]
    write(tmp_path / "a" / "001.jpg")
    with pytest.raises(InputError, match="two images with the id '001'"):
        images.list_images(tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images in"):
        images.list_images(tmp_path / "empty")
    with pytest.raises(InputError, match="does not exist"):
        images.list_images(tmp_path / "nope")


def test_pairing_mismatch_lists_both_sides(tmp_path: Path):
    for name in ("001", "002", "003"):
        write(tmp_path / "src" / f"{name}.jpg")
    for name in ("002", "003", "004"):
        write(tmp_path / "edit" / f"{name}.png")
    with pytest.raises(InputError) as info:
        images.pair_folders(tmp_path / "src", tmp_path / "edit")
    message = str(info.value)
    assert "missing in the source folder" in message and "004" in message
    assert "missing in the edited folder" in message and "001" in message


def test_unreadable_and_truncated_images_name_the_file(tmp_path: Path):
    good = write(tmp_path / "ok.png", (32, 32))
    data = good.read_bytes()
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.png"):
        images.read_image(truncated)
    fake = tmp_path / "fake.jpg"
    fake.write_text("not an image")
    with pytest.raises(InputError, match=r"fake\.jpg"):
        images.read_image(fake)


def test_read_converts_to_rgb_and_png_round_trip_is_exact(tmp_path: Path):
    gray = images.read_image(write(tmp_path / "g.png", mode="L"))
    assert gray.shape == (3, 16, 16) and gray.dtype == torch.uint8 and torch.equal(gray[0], gray[1])
    x = torch.randint(0, 256, (3, 8, 12), dtype=torch.uint8)
    assert torch.equal(images.read_image(images.save_png(x, tmp_path / "x.png")), x)
    unit = torch.rand(3, 8, 12) * 2 - 1
    saved = images.read_image(images.save_png(unit, tmp_path / "u.png"))
    assert torch.equal(saved, images.to_uint8(unit))
    assert torch.equal(images.to_uint8(images.to_unit_range(x)), x)
    assert (images.to_unit_range(images.to_uint8(unit)) - unit).abs().max() <= 1 / 255 + 1e-6  # half a level
    with pytest.raises(InputError):
        images.to_unit_range(unit)


def test_resize_rule(tmp_path: Path):
    x = images.read_image(write(tmp_path / "x.png", (40, 40)))
    pil = Image.open(tmp_path / "x.png").resize((20, 20), Image.Resampling.BICUBIC)
    expected = torch.from_numpy(np.array(pil)).permute(2, 0, 1)
    assert torch.equal(images.resize_uint8(x, (20, 20)), expected)
    wide = images.read_image(write(tmp_path / "w.png", (20, 40)))
    out = images.resize_uint8(wide, (16, 16))  # shorter side to 16 (16x32), centre crop to 16x16
    pil = Image.open(tmp_path / "w.png").resize((32, 16), Image.Resampling.BICUBIC).crop((8, 0, 24, 16))
    assert torch.equal(out, torch.from_numpy(np.array(pil)).permute(2, 0, 1))


def test_load_paired_folders_resizes_and_says_so(tmp_path: Path):
    for i, name in enumerate(("b", "a")):
        write(tmp_path / "src" / f"{name}.png", (16, 16), seed=i)
        write(tmp_path / "edit" / f"{name}.png", (32, 32) if name == "a" else (16, 16), seed=10 + i)
    (tmp_path / "src" / "readme.md").write_text("x")
    paired = images.load_paired_folders(tmp_path / "src", tmp_path / "edit")
    assert paired.image_ids == ["a", "b"]
    assert paired.sources.shape == paired.edits.shape == (2, 3, 16, 16)
    assert paired.resized == ["edited/a.png: 32x32 -> 16x16"]
    assert [p.name for p in paired.ignored] == ["readme.md"]
    assert torch.equal(paired.sources[1], images.read_image(tmp_path / "src" / "b.png"))


# -- stats ------------------------------------------------------------------------------------------------------


def test_bootstrap_deterministic_and_close_to_normal_theory():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 1.0, 400)
    low, high = stats.bootstrap_ci(x)
    assert (low, high) == stats.bootstrap_ci(x)  # fixed seed
    assert stats.bootstrap_ci(x, seed=1) != (low, high)
    assert low < x.mean() < high
    half = 1.959964 * x.std(ddof=1) / math.sqrt(x.size)  # normal-theory half width
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    narrow = stats.bootstrap_ci(x, confidence=0.5)
    assert low < narrow[0] < narrow[1] < high


def test_bootstrap_edge_cases_and_paired():
    assert stats.bootstrap_ci([3.0] * 5) == (3.0, 3.0)
    assert all(math.isnan(v) for v in stats.bootstrap_ci([1.0]))
    assert stats.bootstrap_ci([1.0, float("nan"), 2.0]) == stats.bootstrap_ci([1.0, 2.0])
    a = np.arange(10.0)
    assert stats.paired_bootstrap_ci(a, a) == (0.0, 0.0)
    b = a + np.linspace(0.5, 1.5, 10)
    assert stats.paired_bootstrap_ci(a, b) == stats.bootstrap_ci(b - a)
    low, high = stats.paired_bootstrap_ci(a, b)
    assert 0.5 <= low < 1.0 < high <= 1.5
    with pytest.raises(ValueError):
        stats.paired_bootstrap_ci(a, a[:3])
    s = stats.summarize([1.0, 2.0, 3.0, float("inf")])
    assert (s.mean, s.std, s.n) == (2.0, 1.0, 3)
    empty = stats.summarize([])
    assert empty.n == 0 and math.isnan(empty.mean)
    one = stats.summarize([4.0])
    assert one.mean == 4.0 and math.isnan(one.std) and math.isnan(one.ci_low)

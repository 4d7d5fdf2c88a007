"""Split manifests: the documented rule, sha256 recorded on first use and checked after, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from asyrp_bench import data
from asyrp_bench.errors import ConfigError, InputError, WeightsNotFoundError


def make_folder(folder: Path, names: list[str], size: int = 40, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        Image.fromarray(rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)).save(folder / name)
    return folder


@pytest.fixture
def celeba_test(tmp_path: Path) -> Path:
    # The DiffusionCLIP test folder holds CelebA file names; numeric order differs from string order here.
    names = [f"{i}.jpg" for i in (182638, 182640, 9, 1000, 25, 200000)] + [f"{i:06d}.jpg" for i in range(300, 400)]
    return make_folder(tmp_path / "test", names, size=24)


def test_rule_takes_the_first_100_by_numeric_name(celeba_test: Path) -> None:
    images = data.resolve_split("celebahq_test100", root=celeba_test)
    assert len(images) == 100
    assert images.ids[:5] == ("9", "25", "000300", "000301", "000302")
    assert "182638" not in images.ids  # beyond the first 100 in numeric order
    assert images.split_hash == data.image_set_hash(images.ids, images.sha256)


def test_manifest_recorded_on_first_use_and_checked_after(celeba_test: Path) -> None:
    first = data.resolve_split("celebahq_test100", root=celeba_test)
    manifest = data.manifests_dir() / "celebahq_test100.json"
    recorded = json.loads(manifest.read_text())
    assert [e["id"] for e in recorded["images"]] == list(first.ids)
    assert recorded["rule"] == first.rule
    assert data.resolve_split("celebahq_test100", root=celeba_test).split_hash == first.split_hash
    # a changed file under a known id is refused, naming it and the way out
    make_folder(celeba_test, ["000300.jpg"], size=24, seed=9)
    with pytest.raises(InputError, match=r"000300.jpg.*sha256 mismatch|sha256 mismatch.*000300.jpg"):
        data.resolve_split("celebahq_test100", root=celeba_test)


def test_another_folder_with_other_images_is_refused(celeba_test: Path, tmp_path: Path) -> None:
    data.resolve_split("celebahq_test100", root=celeba_test)
    other = make_folder(tmp_path / "other", [f"{i:06d}.png" for i in range(100)], size=8)
    with pytest.raises(InputError, match="does not hold the images the manifest"):
        data.resolve_split("celebahq_test100", root=other)


def test_limit_is_a_prefix_with_the_same_checksums(celeba_test: Path) -> None:
    small = data.resolve_split("celebahq_test100", root=celeba_test, limit=10)
    full = data.resolve_split("celebahq_test100", root=celeba_test)
    assert small.ids == full.ids[:10] and small.sha256 == full.sha256[:10]
    assert small.split_hash != full.split_hash
    with pytest.raises(ConfigError, match="exceeds the 100 images"):
        data.resolve_split("celebahq_test100", root=celeba_test, limit=101)


def test_missing_folder_says_where_it_goes(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as info:
        data.resolve_split("celebahq_test100")
    message = str(info.value)
    assert "celeba_hq/raw_images/test/images" in message and "data.root" in message and "doctor" in message
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        data.resolve_split("celebahq_test100", root=tmp_path / "nope")


def test_default_location_and_env_var(celeba_test: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYRP_BENCH_CELEBAHQ_TEST", str(celeba_test))
    assert len(data.resolve_split("celebahq_test100")) == 100


def test_too_few_and_whole_dataset_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    few = make_folder(tmp_path / "few", ["1.png", "2.png"], size=8)
    with pytest.raises(InputError, match="holds 2 image files; split 'celebahq_test100' needs 100"):
        data.resolve_split("celebahq_test100", root=few)
    monkeypatch.setattr(data, "MAX_SPLIT_FOLDER", 3)
    many = make_folder(tmp_path / "many", [f"{i}.png" for i in range(4)], size=8)
    with pytest.raises(InputError, match="looks like a whole dataset"):
        data.resolve_split("celebahq_test100", root=many)


def test_folder_data_and_loading(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "imgs", ["b.png", "a.png", "10.png", "2.png"], size=40)
    images = data.resolve_folder(folder, limit=3)
    assert images.ids == ("2", "10", "a")
    x = images.load(32)
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    with pytest.raises(WeightsNotFoundError):
        data.resolve_folder(tmp_path / "missing")


def test_unknown_split_suggests() -> None:
    from asyrp_bench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean 'celebahq_test100'"):
        data.resolve_split("celebahq_test10")


def test_offset_takes_a_disjoint_part_checked_by_the_same_manifest(celeba_test: Path, tmp_path: Path) -> None:
    first = data.resolve_split("celebahq_test100", root=celeba_test, limit=10)
    second = data.resolve_split("celebahq_test100", root=celeba_test, limit=10, offset=10)
    assert not set(first.ids) & set(second.ids)
    assert second.ids == data.resolve_split("celebahq_test100", root=celeba_test).ids[10:20]
    assert "images 10..19" in second.rule
    with pytest.raises(ConfigError, match="exceeds the 100 images"):
        data.resolve_split("celebahq_test100", root=celeba_test, limit=10, offset=95)
    folder = make_folder(tmp_path / "imgs", [f"{i}.png" for i in range(5)], size=8)
    assert data.resolve_folder(folder, limit=2, offset=3).ids == ("3", "4")
    with pytest.raises(ConfigError, match="leaves no image"):
        data.resolve_folder(folder, offset=5)

"""Cache entries are verified on read: damaged, truncated or swapped entries are warned about, discarded and
recomputed, so the numbers are the clean run's (docs/cache.md). Feature-cache corruption: tests/test_metrics.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import asyrp_bench as ab
from asyrp_bench.cache import CacheWarning, InversionCache, check_file, seal_file, verify_cache
from asyrp_bench.cli import app
from asyrp_bench.editors.io import save_editor
from tests.toys import ToyBackend


@pytest.fixture()
def clean(tmp_path: Path):
    backend = ToyBackend()
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    cache = InversionCache(tmp_path)
    x_T = cache.invert(backend, x0, 4)
    recon = cache.reconstruct(backend, x_T, 4)
    return backend, x0, x_T, recon, tmp_path


def _entries(root: Path, kind: str) -> list[Path]:
    return sorted((root / kind).rglob("*.safetensors"))


@pytest.mark.parametrize("kind", ["inversions", "reconstructions"])
@pytest.mark.parametrize("damage", ["zeros", "swap", "truncate", "garbage"])
def test_damaged_entry_is_recomputed_with_a_warning(clean, kind: str, damage: str):
    backend, x0, x_T, recon, root = clean
    files = _entries(root, kind)
    assert len(files) == 2
    if damage == "zeros":  # a valid safetensors file with the right key but wrong contents
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(files[0]), framework="pt") as handle:
            meta, x = handle.metadata(), handle.get_tensor("x")
        save_file({"x": torch.zeros_like(x)}, str(files[0]), metadata=meta)
    elif damage == "swap":
        a, b = files[0].read_bytes(), files[1].read_bytes()
        files[0].write_bytes(b)
        files[1].write_bytes(a)
    elif damage == "truncate":
        files[0].write_bytes(files[0].read_bytes()[:7])
    else:
        files[0].write_text("not a tensor file")
    cache = InversionCache(root)
    with pytest.warns(CacheWarning, match=files[0].name):
        again = cache.invert(backend, x0, 4) if kind == "inversions" else cache.reconstruct(backend, x_T, 4)
    # batch 1 vs 2 may differ in the last float bits (tests/test_cache.py); zeros or a swap are far off
    assert torch.allclose(again, x_T if kind == "inversions" else recon, atol=1e-4)
    assert cache.misses >= 1
    assert verify_cache(root) == (4, [])  # rewritten sound


def test_verify_and_clear_cli(clean):
    _, _, _, _, root = clean
    bad = _entries(root, "inversions")[0]
    bad.write_bytes(b"\0" * 30)
    (root / "reconstructions" / "left.tmp").write_text("x")
    runner = CliRunner()
    result = runner.invoke(app, ["cache", "verify", "--cache-dir", str(root), "--keep"])
    assert result.exit_code == 1 and bad.name in result.output and "2 damaged" in result.output
    assert bad.exists()
    result = runner.invoke(app, ["cache", "verify", "--cache-dir", str(root)])
    assert result.exit_code == 1 and not bad.exists()
    result = runner.invoke(app, ["cache", "verify", "--cache-dir", str(root)])
    assert result.exit_code == 0 and "3 cache entries checked" in result.output and "0 damaged" in result.output
    result = runner.invoke(app, ["cache", "clear", "--cache-dir", str(root), "--kind", "nope"])
    assert result.exit_code == 2 and "unknown cache kind" in result.output
    result = runner.invoke(app, ["cache", "clear", "--cache-dir", str(root), "--kind", "inversions"])
    assert result.exit_code == 0 and "removed 1 files" in result.output
    assert not (root / "inversions").exists() and _entries(root, "reconstructions")


def _editor_file(root: Path, key: str, seed: int) -> Path:
    torch.manual_seed(seed)
    path = root / "editors" / f"{key}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_editor(ab.build_editor("additive", (8, 4, 4), 16), path)
    seal_file(path, key)
    return path


def test_editor_entries_swapped_or_damaged_are_discarded(tmp_path: Path):
    a, b = _editor_file(tmp_path, "a" * 64, 0), _editor_file(tmp_path, "b" * 64, 1)
    assert a.read_bytes() != b.read_bytes()
    assert check_file(a, "a" * 64) and check_file(b, "b" * 64)
    assert verify_cache(tmp_path) == (2, [])
    bytes_a = a.read_bytes()
    a.write_bytes(b.read_bytes())  # contents of another (valid) editor under this key
    with pytest.warns(CacheWarning, match=a.name):
        assert not check_file(a, "a" * 64)
    assert not a.exists()  # discarded: the runner retrains it
    a.write_bytes(bytes_a)  # sidecars swapped too: the key inside names the other entry
    (tmp_path / "editors" / (a.name + ".sha256")).write_text((b.parent / (b.name + ".sha256")).read_text())
    with pytest.warns(CacheWarning, match="for another key"):
        assert not check_file(a, "a" * 64)
    b.write_bytes(b.read_bytes()[:100])
    checked, problems = verify_cache(tmp_path, remove=False)
    assert checked == 1 and problems[0][0] == b and "damaged" in problems[0][1]
    assert not check_file(tmp_path / "editors" / "missing.safetensors", "c")

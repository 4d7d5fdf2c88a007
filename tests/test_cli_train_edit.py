"""``asyrp-bench train`` and ``asyrp-bench edit`` end to end on the tiny backend and a tiny open_clip model (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

import asyrp_bench as ab
from asyrp_bench.cli import app
from tests._metric_models import save_tiny_clip_dir


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        ramp = np.linspace(0, 255, 16)[None, :, None] * rng.uniform(0.2, 1.0, size=(1, 1, 3))
        Image.fromarray(np.broadcast_to(ramp, (16, 16, 3)).astype(np.uint8)).save(images / f"{i:03d}.png")
    # another size and format: resized (shorter side + centre crop) to the backend's 16 px
    Image.fromarray(rng.integers(0, 255, size=(24, 20, 3), dtype=np.uint8)).save(images / "003.jpg")
    (images / "notes.txt").write_text("not an image; ignored")
    config = tmp_path / "tiny.yaml"  # the tiny16 preset, written as a config file
    config.write_text(yaml.safe_dump(TINY16))
    clip = save_tiny_clip_dir(tmp_path / "clip")
    return {"images": images, "config": config, "clip": clip, "root": tmp_path}


TINY16 = {"resolution": 16, "ch_mult": [1, 2], "attn_resolutions": [8], "seed": 0}


def train_args(world: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "train", "--images", str(world["images"]), "--out", str(out), "--backend", "tiny",
        "--config", str(world["config"]), "--source", "face", "--target", "smiling face",
        "--clip-model", f"local-dir:{world['clip']}", "--set", "n_inv_step=6", "--set", "n_train_step=6",
        "--set", "lr=1.0", "--t-edit", "400", "--t-boost", "200", "--quiet", "--cache-dir",
        str(world["root"] / "cache"), *extra,
    ]


def test_train_then_edit(world):
    runner = CliRunner()
    out = world["root"] / "smiling.safetensors"
    result = runner.invoke(app, train_args(world, out, "--variant", "adagn", "--param", "groups=2"))
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    editor = ab.load_editor(out)
    assert editor.variant == "adagn" and editor.config["groups"] == 2
    meta = editor.metadata
    assert meta["t_edit"] == 400 and meta["t_boost"] == 200 and meta["n_train_step"] == 6
    assert meta["training"]["image_ids"] == ["000", "001", "002", "003"]
    assert meta["backend_spec"]["name"] == "tiny" and meta["recipe"]["values"]["lr"] == 1.0

    edited_dir = world["root"] / "edited_run"
    result = runner.invoke(app, ["edit", f"{out}:0.5", "--images", str(world["images"]), "--out", str(edited_dir),
                                 "--n-test-step", "6", "--cache-dir", str(world["root"] / "cache")])
    assert result.exit_code == 0, result.output
    for sub in ("edited", "recon"):
        assert sorted(p.name for p in (edited_dir / sub).iterdir()) == ["000.png", "001.png", "002.png", "003.png"]
    record = json.loads((edited_dir / "edit.json").read_text())
    assert record["editors"][0]["coefficient"] == 0.5 and record["n_test_step"] == 6
    # the written edit is the library's edit at strength 0.5 with the stored interval and step scaling
    backend = ab.load_backend("tiny", config="tiny16")
    assert backend.weights_hash == meta["backend"]["weights_hash"]
    from asyrp_bench.cli._common import load_image_folder

    ids, x0, resized = load_image_folder(world["images"], 16)
    assert resized == ["003.jpg: 24x20 -> 16x16"]
    x_T = ab.invert(backend, x0, 6)
    expected = ab.edit(backend, x_T, editor, None, None, 6, strength=0.5, generator=ab.image_generators(1234, ids))
    png = torch.from_numpy(np.array(Image.open(edited_dir / "edited" / "001.png"))).permute(2, 0, 1)
    assert torch.equal(png, ((expected[1].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
    recon = ab.generate(backend, x_T, 6)
    assert not torch.allclose(recon, expected, atol=1e-3)


def test_cli_errors_are_clear(world):
    runner = CliRunner()
    out = world["root"] / "e.safetensors"
    empty = world["root"] / "empty"
    empty.mkdir()
    args = train_args(world, out)
    args[args.index("--images") + 1] = str(empty)
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "no images in" in result.output

    bad = world["root"] / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG not really")
    args[args.index("--images") + 1] = str(bad)
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "broken.png" in result.output

    result = runner.invoke(app, [*train_args(world, out), "--variant", "residual"])
    assert result.exit_code == 2 and "Valid editors: adagn, additive, multiplicative, transformer" in result.output
    result = runner.invoke(app, [*train_args(world, out), "--set", "lamda_l1=0.1"])
    assert result.exit_code == 2 and "Did you mean 'lambda_l1'" in result.output
    assert not out.exists()

    # an editor trained on one tiny U-Net, used on another: refused unless asked for
    assert runner.invoke(app, train_args(world, out)).exit_code == 0
    other = world["root"] / "other.yaml"
    other.write_text(yaml.safe_dump({**TINY16, "seed": 5}))
    edit = ["edit", str(out), "--images", str(world["images"]), "--out", str(world["root"] / "o"),
            "--backend", "tiny", "--config", str(other), "--n-test-step", "6", "--cache-dir", str(world["root"] / "c")]
    result = runner.invoke(app, edit)
    assert result.exit_code == 2 and "different U-Net weights" in result.output
    assert runner.invoke(app, [*edit, "--ignore-backend-hash"]).exit_code == 0


def test_ls_editors_recipes_edits():
    runner = CliRunner()
    result = runner.invoke(app, ["ls", "editors"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    for name, count in (("additive", "788,992"), ("multiplicative", "788,992"), ("adagn", "1,050,624"),
                        ("transformer", "7,392,384")):
        assert name in result.output and count in result.output
    result = runner.invoke(app, ["ls", "recipes"], env={"COLUMNS": "160"})
    assert result.exit_code == 0 and "asyrp_paper" in result.output and "dl2_transformer_adamw" in result.output
    result = runner.invoke(app, ["ls", "edits"], env={"COLUMNS": "160"})
    assert result.exit_code == 0 and "smiling face" in result.output and "Neanderthal" in result.output

"""``asyrp-bench score`` and ``asyrp-bench ls metrics`` end to end, offline, with tiny models in real formats."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from asyrp_bench.cli import app
from asyrp_bench.images import save_png
from tests._metric_models import (
    ensure_test_embedder,
    ensure_tiny_extractor,
    save_smp_folder,
    save_tiny_clip_dir,
    varied_images,
)

runner = CliRunner()
IDS = ["a01", "a02", "a03", "a04", "a05"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli_models")
    return {"clip": save_tiny_clip_dir(root / "clip"), "seg": save_smp_folder(root / "seg")}


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for role, seed in (("src", 0), ("edit", 100), ("recon", 200)):
        for image, image_id in zip(varied_images(len(IDS), 32, seed), IDS, strict=True):
            save_png(image, tmp_path / role / f"{image_id}.png")
        out[role] = tmp_path / role
    return out


def metrics_file(path: Path, models: dict[str, Path]) -> Path:
    extractor = ensure_tiny_extractor()
    data = {"metrics": [
        {"name": "clip_directional", "params": {"model": f"local-dir:{models['clip']}", "pretrained": None}},
        {"name": "seg_consistency", "params": {"segmenter": str(models["seg"]), "reference": "reconstruction"}},
        {"name": "fid", "params": {"feature_extractor": extractor}},
        {"name": "kid", "params": {"feature_extractor": extractor, "subset_size": 50}},
        {"name": "identity", "params": {"embedder": ensure_test_embedder(), "no_face": "count"}},
    ]}
    path.write_text(yaml.safe_dump(data))
    return path


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_score_writes_tidy_csv_and_summary(tmp_path: Path, folders: dict[str, Path], models: dict[str, Path]):
    out = tmp_path / "out" / "scores.csv"
    result = run("score", folders["src"], folders["edit"], "--metrics", metrics_file(tmp_path / "m.yaml", models),
                 "--reconstruction", folders["recon"], "--src-text", "face", "--tgt-text", "smiling face",
                 "--out", out, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert list(frame.columns) == ["image_id", "metric", "key", "metric_version", "value", "params"]
    per_image = frame[frame.image_id.notna()]
    assert set(per_image.image_id) == set(IDS)
    counts = per_image.groupby(["metric", "key"]).size().to_dict()
    assert counts == {("clip_directional", "s_dir"): 5, ("clip_directional", "image_text_sim"): 5,
                      ("seg_consistency", "pixel_accuracy"): 5, ("seg_consistency", "miou"): 5,
                      ("identity", "cosine"): 5, ("identity", "no_face"): 5}
    per_set = frame[frame.image_id.isna()]
    assert sorted(per_set.key) == ["fid", "kid", "kid_std", "n", "n", "subset_size"]  # set-level values once
    assert per_set[(per_set.metric == "kid") & (per_set.key == "subset_size")].value.item() == 5  # fitted
    for text in ("scores", "s_dir", "pixel_accuracy", "fid (set)", "95% CI", "FID at N = 5 is biased",
                 "5 image pairs"):
        assert text in result.output


def test_score_mismatch_lists_missing_files(tmp_path: Path, folders: dict[str, Path], models: dict[str, Path]):
    (folders["edit"] / "a02.png").unlink()
    save_png(varied_images(1, 32)[0], folders["edit"] / "zz9.png")
    result = run("score", folders["src"], folders["edit"], "--metrics", metrics_file(tmp_path / "m.yaml", models),
                 "--reconstruction", folders["recon"])
    assert result.exit_code == 2
    assert "missing in the edited folder" in result.output and "a02" in result.output
    assert "missing in the source folder" in result.output and "zz9" in result.output
    assert "missing in the reconstruction folder" in result.output


def test_score_names_truncated_file(tmp_path: Path, folders: dict[str, Path], models: dict[str, Path]):
    path = folders["edit"] / "a03.png"
    path.write_bytes(path.read_bytes()[:60])
    result = run("score", folders["src"], folders["edit"], "--metrics", metrics_file(tmp_path / "m.yaml", models),
                 "--reconstruction", folders["recon"], "--src-text", "a", "--tgt-text", "b",
                 "--out", tmp_path / "s.csv")
    assert result.exit_code == 2
    assert "cannot read image" in result.output and "a03.png" in result.output
    assert not (tmp_path / "s.csv").exists()


def test_score_resizes_and_says_so(tmp_path: Path, folders: dict[str, Path], models: dict[str, Path]):
    save_png(varied_images(1, 64, seed=7)[0], folders["edit"] / "a04.png")
    extractor = ensure_tiny_extractor()
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"metrics": [
        {"name": "fid", "params": {"feature_extractor": extractor}}]}))
    result = run("score", folders["src"], folders["edit"], "--metrics", tmp_path / "m.yaml",
                 "--out", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    assert "1 image(s) resized" in result.output and "edited/a04.png: 64x64 -> 32x32" in result.output


def test_score_defaults_say_what_is_not_run_and_what_is_missing(tmp_path: Path, folders: dict[str, Path]):
    result = run("score", folders["src"], folders["edit"], "--out", tmp_path / "s.csv")
    assert result.exit_code == 2
    assert "clip_directional not run" in result.output and "seg_consistency not run" in result.output
    assert "weights-inception-2015-12-05-6726825d.pth" in result.output  # fid's default file, never downloaded
    bad = run("score", folders["src"], folders["edit"], "--src-text", "face")
    assert bad.exit_code == 2 and "--tgt-text" in bad.output


def test_score_bad_metrics_file(tmp_path: Path, folders: dict[str, Path]):
    (tmp_path / "m.yaml").write_text("metrics:\n  - {name: fid, params: {weigths: null}}\n")
    result = run("score", folders["src"], folders["edit"], "--metrics", tmp_path / "m.yaml")
    assert result.exit_code == 2 and "did you mean 'weights'" in result.output


def test_ls_metrics_lists_every_metric():
    result = run("ls", "metrics")
    assert result.exit_code == 0, result.output
    for name in ("clip_directional", "seg_consistency", "fid", "kid", "identity", "per image", "per set"):
        assert name in result.output


def test_score_refuses_identical_prompts_and_bad_out_before_work(tmp_path: Path, folders: dict[str, Path],
                                                                 monkeypatch: pytest.MonkeyPatch):
    import asyrp_bench.images as images_module

    monkeypatch.setattr(images_module, "load_paired_folders", lambda *a: pytest.fail("images read before checks"))
    result = run("score", folders["src"], folders["edit"], "--src-text", "face", "--tgt-text", " Face ",
                 "--out", tmp_path / "s.csv")
    assert result.exit_code == 2 and "same prompt" in result.output and "'face'" in result.output
    result = run("score", folders["src"], folders["edit"], "--out", tmp_path)
    assert result.exit_code == 2 and f"--out {tmp_path} is a folder" in result.output
    (tmp_path / "file").write_text("x")
    result = run("score", folders["src"], folders["edit"], "--out", tmp_path / "file" / "s.csv")
    assert result.exit_code == 2 and "is not a folder" in result.output

"""``asyrp-bench world sample`` and ``world check`` end to end (small sizes), plus bad input."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from asyrp_bench.cli import app

runner = CliRunner()


def test_sample_writes_a_grid_of_generator_faces(tmp_path):
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["world", "sample", "--what", "generator", "--n", "8", "--scale", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    image = Image.open(out)
    assert image.size[0] > 8 * 64 and image.size[1] >= 64  # 8 faces of 64 px in one row, 1 px padding


def test_sample_refuses_unknown_sources(tmp_path):
    result = runner.invoke(app, ["world", "sample", "--what", "celeba", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "--what" in result.output


def test_check_prints_one_json_object_with_the_issue_keys(tmp_path):
    result = runner.invoke(app, ["world", "check", "--json", "--n-faces", "2", "--n-samples", "8", "--steps", "10",
                                 "--no-edits", "--images", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("recon_psnr_db", "clip_top1", "smile_success_rate", "tan_success_rate", "id_cosine_median"):
        assert key in data
    assert data["n_faces"] == 2 and data["recon_psnr_db"] > 15 and 0.9 <= data["clip_top1"] <= 1.0
    assert data["fid_samples"] >= 0 and data["identity"]["retrieval_top1"] > 0.9
    assert data["smile_success_rate"] is None and "skipped" in data["edits"]
    assert (tmp_path / "world_samples.png").is_file() and (tmp_path / "world_recon.png").is_file()


def test_check_edits_train_editors_and_judge_them():
    from asyrp_bench.world.check import run_check
    from asyrp_bench.world.edits import WORLD_T_EDIT

    tiny = {"n_train_img": 2, "n_train_step": 10, "n_inv_step": 10, "n_iter": 1, "batch_size": 2}
    out = run_check(n_samples=4, n_steps=5, n_faces=3, edit_overrides=tiny)
    for name, rate in (("smiling", out["smile_success_rate"]), ("tanned", out["tan_success_rate"])):
        assert out["edits"][name]["n_eligible"] >= 1 and 0.0 <= rate <= 1.0
        assert out["edits"][name]["t_edit"] == WORLD_T_EDIT[name]
        assert -1.0 <= out["edits"][name]["id_cosine"]["median"] <= 1.0
        assert 0.0 <= out["edits"][name]["sc_unedited"] <= 1.0
    assert out["id_cosine_median"] == out["id_cosine_median"]  # not NaN

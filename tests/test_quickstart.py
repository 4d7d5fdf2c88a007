"""The README's main command, `asyrp-bench run suites/quickstart.yaml`, on the shipped toy world.

The default tier runs it shrunk with ``--set`` (the same suite file, models and code path, fewer faces and steps);
``nox -s quickstart`` (run by .ci/run) runs it exactly as the README says.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from asyrp_bench.cli import app
from asyrp_bench.suite import expand, load_suite

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "suites" / "quickstart.yaml"
SHRINK = [
    "data.limit=3", "train.data.limit=2", "sampler.n_inv_step=6", "sampler.n_test_step=6",
    "train.overrides={n_train_img: 2, n_inv_step: 6, n_train_step: 6, n_iter: 1, batch_size: 2}",
]


def test_readme_names_the_quickstart_as_its_main_command() -> None:
    readme = (REPO / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).splitlines()
    assert first_block[0].startswith('pip install -e ".[dev]" && asyrp-bench run suites/quickstart.yaml')
    assert first_block[1].startswith("nox -s tests")


def test_quickstart_is_the_world_suite_the_issue_describes() -> None:
    suite = load_suite(QUICKSTART)
    cells = expand(suite)
    assert [b.weights for b in suite.backend] == ["world_ddpm"]
    assert {(c.editor.variant, c.edit.name) for c in cells} == {("additive", "smiling"), ("additive", "tanned")}
    assert {m.name for m in suite.metrics} == {"clip_directional", "seg_consistency", "fid", "kid", "identity"}
    assert suite.data.split == "world" and suite.train.data.split == "world"
    # training and evaluation faces are disjoint parts of the split
    evaluated = range(suite.data.offset, suite.data.offset + suite.data.limit)
    trained = range(suite.train.data.offset, suite.train.data.offset + suite.train.data.limit)
    assert not set(evaluated) & set(trained)


def test_quickstart_runs_offline_and_writes_a_report_with_images(tmp_path: Path) -> None:
    sets = [arg for value in SHRINK for arg in ("--set", value)]
    result = CliRunner().invoke(app, ["run", str(QUICKSTART), "--out", str(tmp_path), "--no-progress", *sets])
    assert result.exit_code == 0, result.output
    run_dir = Path(result.output.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path / "quickstart"
    summary = pd.read_csv(run_dir / "summary.csv")
    assert {"clip_directional.s_dir", "seg_consistency.miou", "fid.fid", "kid.kid", "identity.cosine"} <= set(
        summary["metric"])
    assert set(summary["edit"].dropna()) == {"smiling", "tanned"}
    assert summary["value"].notna().all()
    report = (run_dir / "report.md").read_text()
    grids = re.findall(r"!\[[^\]]*\]\((report/grid_[^)]+\.png)\)", report)
    assert len(grids) == 2 and all((run_dir / g).stat().st_size > 1000 for g in grids)
    html = (run_dir / "report.html").read_text()
    assert "grid_smiling" in html and "grid_tanned" in html
    assert len(list((run_dir / "cells").glob("additive__smiling__s0/images/*.png"))) == 3
    # the evaluated and the training part of the one split are both recorded, each under its own key
    splits = json.loads((run_dir / "manifest.json").read_text())["splits"]
    assert splits["world"]["ids"] == ["world-000", "world-001", "world-002"]
    assert splits["train:world"]["ids"] == ["world-032", "world-033"]
    assert "Images: world, N = 3," in report and "Training images: world, N = 2," in report


def test_quickstart_edits_use_the_settings_world_check_measures() -> None:
    from asyrp_bench.world.edits import WORLD_RECIPE, WORLD_T_EDIT, WORLD_TRAIN_OVERRIDES

    suite = load_suite(QUICKSTART)
    assert suite.train.recipe == WORLD_RECIPE and not suite.train.overrides
    for edit in suite.edits:
        assert edit.t_edit == WORLD_T_EDIT[edit.name]
        assert edit.train_overrides == WORLD_TRAIN_OVERRIDES.get(edit.name, {})

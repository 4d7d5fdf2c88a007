"""report.md / report.html from a run folder: tables beside published numbers, caveats, grids and plots."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from asyrp_bench.report import short_name, write_report
from asyrp_bench.results import MetricInfo
from tests._runs import make_run

INFOS = {
    "clip_directional.s_dir": MetricInfo("clip_directional.s_dir", "1", "c1", True, True),
    "identity.cosine": MetricInfo("identity.cosine", "1", "i1", True, True),
    "fid.fid": MetricInfo("fid.fid", "1", "f1", False, False),
}
SUITE_YAML = """
name: toy
description: a toy run
reference:
  - label: Asyrp paper (S_dir)
    source: the paper
    note: units unverified
    values:
      clip_directional: {smiling: 0.921, tanned: 0.991}
"""


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path, infos=INFOS, images=5, suite_yaml=SUITE_YAML).path


def test_report_documents(run_dir: Path) -> None:
    md_path, html_path = write_report(run_dir)
    md, html = md_path.read_text(), html_path.read_text()
    for text in (md, html):
        assert "published: Asyrp paper (S_dir)" in text and "0.921†" in text and "units unverified" in text
        assert "biased upward" in text and "N = 12" in text  # the small-N FID note, with this run's N
        assert "improve as edits get weaker" in text  # the fidelity-vs-strength caveat
        assert "report/grid_smiling.png" in text and "first 5 of 5 images" in text
        assert "KID is an unbiased estimate" not in text  # no KID in this run, so no KID note
    assert "report/tradeoff.png" in md and "report/tradeoff.svg" in html
    header = next(line for line in md.splitlines() if line.startswith("| editor"))
    assert header == "| editor | edit | S_dir ↑ | S_dir published | ID ↑ | FID ↓ |"
    # the published value sits beside our rows of the same edit, not in a row of its own
    smiling = next(line for line in md.splitlines() if line.startswith("| additive | smiling"))
    assert smiling.split(" | ")[3] == "0.921†"
    baseline = next(line for line in md.splitlines() if line.startswith("| reconstruction"))
    assert baseline.split(" | ")[3] == ""
    assert "<img src='report/grid_tanned.png'" in html


def test_report_figures_are_real_images(run_dir: Path) -> None:
    write_report(run_dir)
    figures = {p.name: p for p in (run_dir / "report").glob("*.png")}
    assert {"grid_smiling.png", "grid_tanned.png", "tradeoff.png", "metric_fid.fid.png"} <= set(figures)
    with Image.open(figures["grid_smiling.png"]) as grid:
        # 4 rows (images) x 4 columns (source, reconstruction, additive, adagn)
        assert grid.width > grid.height * 0.8 and grid.width > 300
        colours = grid.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 100  # pictures, not an empty canvas


def test_report_without_saved_images_says_so(tmp_path: Path) -> None:
    run = make_run(tmp_path, infos=INFOS, images=0).path
    md, _ = write_report(run)
    assert "no images were saved" in md.read_text().lower()


def test_report_command_regenerates(run_dir: Path) -> None:
    from asyrp_bench.cli import app

    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].endswith("report.html")


def test_metric_without_direction_is_not_plotted(tmp_path: Path) -> None:
    infos = dict(INFOS, **{"identity.no_face": dataclasses.replace(INFOS["identity.cosine"], name="identity.no_face",
                                                                   higher_is_better=None)})
    run = make_run(tmp_path, infos=infos).path
    write_report(run)
    assert not (run / "report" / "metric_identity.no_face.png").exists()
    assert "no-face rate" in (run / "report.md").read_text()


def test_short_names() -> None:
    assert short_name("clip_directional.s_dir") == "S_dir"
    assert short_name("seg_consistency.miou") == "SC (mIoU)"
    assert short_name("newmetric.value") == "newmetric value"


def test_runner_keeps_every_image_the_report_grids_show() -> None:
    from asyrp_bench import report, runner

    assert runner.GRID_IMAGES == report.GRID_IMAGES == 8


def test_report_states_every_cells_settings(run_dir: Path) -> None:
    from asyrp_bench.report_tables import settings_table
    from asyrp_bench.results import RunDir

    suite = """name: toy
sampler: {n_inv_step: 8, n_test_step: 6}
train: {recipe: world_quickstart, overrides: {n_iter: 2}}
editors:
  - {variant: additive}
  - {variant: adagn, checkpoint: released/adagn.pt}
edits:
  - {name: smiling, source: face, target: smiling face, t_edit: 400, t_boost: 200, strength: 1.5,
     train_overrides: {lr: 0.5}}
  - {name: tanned, source: face, target: tanned face, t_edit: 600, t_boost: null, strength: 1.0}
"""
    (run_dir / "suite.resolved.yaml").write_text(suite)
    table = settings_table(RunDir(run_dir)).set_index("cell")
    assert len(table) == 5 and set(table["status"]) == {"complete"}
    row = table.loc["additive__smiling__s0"]
    assert (row["t_edit"], row["t_boost"], row["strength"], row["steps"]) == ("400", "200", "1.5", "inv 8 / test 6")
    assert row["recipe"] == "world_quickstart" and row["overrides"] == "n_iter=2, lr=0.5"
    assert table.loc["additive__tanned__s0", "t_boost"] == "off"
    assert table.loc["adagn__tanned__s0", "recipe"] == "loaded released/adagn.pt"
    md, _ = write_report(run_dir)
    assert "| additive__smiling__s0 | complete | tiny | additive | smiling | 0 | 400 | 200 | 1.5 |" in md.read_text()

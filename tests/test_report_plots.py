"""Every plotted value is a number of the summary table, per backend (issue: plots averaged across backends).

The plots of a copy of tests/golden/ci_tiny (two backends) are drawn and their bars, points and baseline lines
read back from the matplotlib artists, then looked up in the summary table's row of the panel's backend.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from asyrp_bench import report_plots
from asyrp_bench.report_tables import directions, fmt, header, summary_table
from asyrp_bench.results import BASELINE_EDITOR, RunDir

GOLDEN = Path(__file__).parent / "golden" / "ci_tiny"


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    target = tmp_path_factory.mktemp("golden") / "ci_tiny"
    shutil.copytree(GOLDEN, target)
    return RunDir(target)


def _leading(text: str) -> str:
    match = re.match(r"-?[0-9.]+(?:e[-+]?[0-9]+)?", str(text))
    return match.group(0) if match else ""


def _table_values(table: pd.DataFrame, column: str, backend: str, baseline: bool) -> list[str]:
    rows = table[(table["backend"] == backend) & ((table["editor"] == BASELINE_EDITOR) == baseline)]
    return sorted(v for v in (_leading(t) for t in rows[column]) if v)


def _bars(ax) -> list[float]:
    from matplotlib.container import BarContainer

    return [p.get_height() for c in ax.containers if isinstance(c, BarContainer) for p in c.patches]


def _lines(ax) -> list[float]:
    return [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]


def test_golden_has_two_backends_that_differ(golden: RunDir) -> None:
    summary = golden.summary()
    fid = summary[(summary["metric"] == "fid.fid") & (summary["editor"] == "additive") & (summary["edit"] == "smiling")]
    assert sorted(fid["backend"]) == ["tiny", "world"] and abs(fid["value"].diff().iloc[-1]) > 10


@pytest.mark.parametrize("metric", ["fid.fid", "identity.cosine", "clip_directional.s_dir", "kid.kid"])
def test_bar_plot_values_are_the_table_rows(golden: RunDir, metric: str) -> None:
    table, _, _ = summary_table(golden)
    summary = golden.summary()
    column = header(metric, directions(summary)[metric])
    fig = report_plots.metric_figure(summary, metric)
    panels = [ax for ax in fig.axes if ax.get_title().startswith("backend: ")]
    assert [ax.get_title() for ax in panels] == ["backend: tiny", "backend: world"]
    for ax in panels:
        backend = ax.get_title().removeprefix("backend: ")
        assert sorted(fmt(v) for v in _bars(ax)) == _table_values(table, column, backend, baseline=False)
        base = _table_values(table, column, backend, baseline=True)
        assert sorted(fmt(v) for v in _lines(ax)) == base
    report_plots.pyplot().close(fig)


def test_tradeoff_points_are_the_table_rows(golden: RunDir) -> None:
    table, _, _ = summary_table(golden)
    fig = report_plots.tradeoff_figure(golden.summary())
    panels = [ax for ax in fig.axes if ax.get_title().startswith("backend: ")]
    assert len({ax.get_title() for ax in panels}) == 2
    for ax in panels:
        backend = ax.get_title().removeprefix("backend: ")
        y_name = ax.get_ylabel().rsplit(" (", 1)[0]
        y_column = next(c for c in table.columns if c.rsplit(" ", 1)[0] == y_name)
        points = [tuple(p) for col in ax.collections for p in col.get_offsets()]
        assert sorted(fmt(x) for x, _ in points) == _table_values(table, "S_dir ↑", backend, baseline=False)
        assert sorted(fmt(y) for _, y in points) == _table_values(table, y_column, backend, baseline=False)
        assert sorted(fmt(v) for v in _lines(ax)) == _table_values(table, y_column, backend, baseline=True)
    report_plots.pyplot().close(fig)


def test_plots_are_written_as_png_and_svg(golden: RunDir, tmp_path: Path) -> None:
    fig = report_plots.metric_figure(golden.summary(), "fid.fid")
    png, svg = report_plots.save(fig, tmp_path / "fid.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()

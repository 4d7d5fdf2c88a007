"""compare refuses incomplete runs, damaged tables, n_resamples 0 and --csv DIR with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from asyrp_bench.cli import app
from asyrp_bench.compare import compare_runs
from asyrp_bench.errors import ConfigError, InputError
from tests._runs import make_run


def test_incomplete_run_is_an_error_unless_allowed(tmp_path: Path):
    whole = make_run(tmp_path / "a")
    partial = make_run(tmp_path / "b", stop_after=2)
    with pytest.raises(InputError, match=r"incomplete run\(s\): .*suite 'toy'.* is missing 3 cell\(s\)"):
        compare_runs([whole.path, partial.path])
    result = compare_runs([whole.path, partial.path], allow_incomplete=True)
    assert any("incomplete" in note for note in result.notes)


def test_damaged_summary_names_the_file(tmp_path: Path):
    run = make_run(tmp_path / "a")
    other = make_run(tmp_path / "b")
    summary = other.path / "summary.csv"
    summary.write_text(summary.read_text()[:30])
    with pytest.raises(InputError, match=r"summary\.csv is damaged or truncated"):
        compare_runs([run.path, other.path])
    summary.write_bytes(b"\xff\xfe\x00garbage\n\x00")
    with pytest.raises(InputError, match=r"summary\.csv"):
        compare_runs([run.path, other.path])


def test_bad_resamples_and_csv_dir(tmp_path: Path):
    run = make_run(tmp_path / "a")
    with pytest.raises(ConfigError, match="n_resamples must be an integer ≥ 1, got 0"):
        compare_runs([run.path, run.path], n_resamples=0)
    result = CliRunner().invoke(app, ["compare", str(run.path), "--csv", str(tmp_path)])
    assert result.exit_code == 2 and "not a folder" in result.output

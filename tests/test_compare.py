"""compare: pairing, direction, paired bootstrap, tolerance gate, drift refusal, CLI exit codes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from asyrp_bench.compare import DriftError, compare_runs, parse_tolerances
from asyrp_bench.errors import ConfigError
from asyrp_bench.results import RunDir
from tests._runs import METRICS, make_run


def test_identical_runs_compare_clean(tmp_path: Path) -> None:
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    result = compare_runs([a.path, b.path])
    assert result.ok and not result.drift
    assert (result.deltas["delta"] == 0).all()
    per_image = result.deltas[result.deltas.metric != "fid"]
    assert (per_image["n_pairs"] == 12).all() and (per_image["ci_low"] == 0).all()
    # one row per backend/editor/edit, one column group per run
    assert result.table.shape == (5, 2 * 3)
    assert list(result.table.columns.get_level_values("run").unique()) == result.runs
    assert ("tiny", "reconstruction", "") in result.table.index


def test_degraded_editor_is_a_regression_naming_the_metric(tmp_path: Path) -> None:
    base = make_run(tmp_path / "a")
    worse = make_run(tmp_path / "b", shift={("adagn", "clip_directional"): -0.05})
    result = compare_runs([base.path, worse.path])
    assert not result.ok
    assert all("clip_directional regressed" in r and "adagn" in r for r in result.regressions)
    assert len(result.regressions) == 2  # both edits of adagn
    row = result.deltas[(result.deltas.editor == "adagn") & (result.deltas.metric == "clip_directional")].iloc[0]
    assert row["delta"] == pytest.approx(-0.05) and row["better"] == pytest.approx(-0.05)
    # a constant shift: the paired CI collapses onto it
    assert row["ci_low"] == pytest.approx(-0.05) and row["ci_high"] == pytest.approx(-0.05)
    # within tolerance: fine
    assert compare_runs([base.path, worse.path], tolerances={"clip_directional": 0.06}).ok


def test_direction_follows_higher_is_better(tmp_path: Path) -> None:
    base = make_run(tmp_path / "a")
    lower_fid = make_run(tmp_path / "b", shift={("additive", "fid"): -3.0})
    higher_fid = make_run(tmp_path / "c", shift={("additive", "fid"): +3.0})
    assert compare_runs([base.path, lower_fid.path]).ok  # lower FID is better
    result = compare_runs([base.path, higher_fid.path], tolerances={"*": 1.0})
    assert [r.split()[0] for r in result.regressions] == ["fid", "fid"]
    assert compare_runs([base.path, higher_fid.path], tolerances={"*": 1.0, "fid": 5.0}).ok


def test_tolerance_by_metric_name_covers_its_keys(tmp_path: Path) -> None:
    infos = {"fid.fid": dataclasses.replace(METRICS["fid"], name="fid.fid")}
    base = make_run(tmp_path / "a", infos=infos)
    worse = make_run(tmp_path / "b", infos=infos, shift={("additive", "fid.fid"): 2.0})
    assert not compare_runs([base.path, worse.path]).ok
    assert compare_runs([base.path, worse.path], tolerances={"fid": 3.0}).ok
    assert not compare_runs([base.path, worse.path], tolerances={"fid": 3.0, "fid.fid": 1.0}).ok


def test_paired_ci_is_tighter_than_the_spread(tmp_path: Path) -> None:
    base = make_run(tmp_path / "a")
    other = make_run(tmp_path / "b", shift={("additive", "identity"): 0.01})
    row = compare_runs([base.path, other.path]).deltas
    row = row[(row.editor == "additive") & (row.metric == "identity") & (row.edit == "smiling")].iloc[0]
    spread = RunDir(base.path).scores().query("metric == 'identity'")["value"].std()
    assert row["ci_high"] - row["ci_low"] < 0.1 * spread


def test_baseline_option_and_order(tmp_path: Path) -> None:
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b", shift={("additive", "identity"): 0.2})
    result = compare_runs([a.path, b.path], baseline=b.path)
    assert result.baseline == result.runs[0] == RunDir(b.path).name or result.runs[0].endswith(RunDir(b.path).name)
    assert any("identity regressed" in r for r in result.regressions)


def test_drift_is_refused_unless_allowed(tmp_path: Path) -> None:
    base = make_run(tmp_path / "a")
    bumped = dict(METRICS, identity=dataclasses.replace(METRICS["identity"], version="2"))
    other = make_run(tmp_path / "b", infos=bumped)
    with pytest.raises(DriftError, match="identity: metric version '1' vs '2'"):
        compare_runs([base.path, other.path])
    result = compare_runs([base.path, other.path], allow_drift=True)
    assert result.drift and result.deltas.loc[result.deltas.metric == "identity", "drift"].all()
    other_split = make_run(tmp_path / "c", split_hash="split1")
    with pytest.raises(DriftError, match="split hash"):
        compare_runs([base.path, other_split.path])


def test_seeds_are_averaged_per_image(tmp_path: Path) -> None:
    base = make_run(tmp_path / "a", seeds=(0, 1))
    single = make_run(tmp_path / "b", seeds=(0,))
    result = compare_runs([base.path, single.path], tolerances={"*": 1e9})
    assert result.ok and (result.deltas.loc[result.deltas.metric != "fid", "n_pairs"] == 12).all()


def test_bad_tolerances() -> None:
    assert parse_tolerances(["fid=0.5", "*=0"]) == {"fid": 0.5, "*": 0.0}
    for bad in ("fid", "fid=-1", "=1", "fid=abc"):
        with pytest.raises(ConfigError):
            parse_tolerances([bad])


def test_unknown_tolerance_metric(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a")
    with pytest.raises(ConfigError, match="no run has"):
        compare_runs([a.path, a.path], tolerances={"clip_direction": 1.0})


def test_compare_cli_exit_codes(tmp_path: Path) -> None:
    from asyrp_bench.cli import app

    base = make_run(tmp_path / "a")
    same = make_run(tmp_path / "b")
    worse = make_run(tmp_path / "c", shift={("additive", "identity"): -0.1})
    runner = CliRunner()
    ok = runner.invoke(app, ["compare", str(base.path), str(same.path)])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["compare", str(base.path), str(worse.path), "--tolerance", "identity=0.01"])
    assert bad.exit_code == 1 and "identity regressed" in bad.output
    drift = make_run(tmp_path / "d", split_hash="other")
    refused = runner.invoke(app, ["compare", str(base.path), str(drift.path)])
    assert refused.exit_code == 2 and "--allow-drift" in refused.output
    allowed = runner.invoke(app, ["compare", str(base.path), str(drift.path), "--allow-drift"])
    assert allowed.exit_code == 0
    out = tmp_path / "deltas.csv"
    runner.invoke(app, ["compare", str(base.path), str(same.path), "--csv", str(out)])
    assert np.isfinite(np.loadtxt(out, delimiter=",", skiprows=1, usecols=[5])).all()


def test_a_golden_folder_of_top_level_files_is_a_baseline(tmp_path: Path) -> None:
    """tests/golden/ci_tiny holds only a run's top-level files (no cells); compare reads it like a run."""
    import shutil

    run = make_run(tmp_path / "a")
    golden = tmp_path / "golden" / "ci_tiny"
    golden.mkdir(parents=True)
    for name in ("manifest.json", "env.json", "suite.resolved.yaml", "scores.csv", "summary.csv"):
        shutil.copyfile(run.path / name, golden / name)
    same = make_run(tmp_path / "b")
    result = compare_runs([golden, same.path], tolerances={"*": 1e-4})
    assert result.ok and (result.deltas["delta"] == 0).all()
    assert (result.deltas.loc[result.deltas.metric != "fid", "n_pairs"] == 12).all()
    worse = make_run(tmp_path / "c", shift={("adagn", "identity"): -0.01})
    assert not compare_runs([golden, worse.path], tolerances={"*": 1e-4}).ok

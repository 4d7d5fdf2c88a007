"""results.json beside the CSVs and asyrp_bench.load_runs (docs/results.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

import asyrp_bench
from asyrp_bench.errors import InputError
from tests._runs import make_run


def test_results_json_holds_config_summary_versions_and_cells(tmp_path: Path) -> None:
    run = make_run(tmp_path, suite_yaml="name: toy\nseeds: [0]\n").path
    doc = json.loads((run / "results.json").read_text())
    assert doc["config"] == {"name": "toy", "seeds": [0]} and doc["status"] == "complete"
    assert set(doc["cells"]) == set(json.loads((run / "manifest.json").read_text())["cells"])
    assert all(c["status"] == "complete" for c in doc["cells"].values())
    assert "asyrp_bench" in doc["versions"]
    summary = pd.read_csv(run / "summary.csv")
    assert len(doc["summary"]) == len(summary)
    for row, (_, expected) in zip(doc["summary"], summary.iterrows(), strict=True):
        assert row["metric"] == expected["metric"]
        assert (row["value"] is None and math.isnan(expected["value"])) or row["value"] == expected["value"]


def test_load_runs_concatenates_runs(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a").path
    b = make_run(tmp_path / "b", shift={("additive", "identity"): 0.3}).path
    frame = asyrp_bench.load_runs([a, b])
    assert list(frame.columns[:3]) == ["run", "suite", "run_dir"]
    assert set(frame["run_dir"]) == {str(a), str(b)}
    one = pd.read_csv(a / "summary.csv")
    assert len(frame) == 2 * len(one)
    sel = frame[(frame["run_dir"] == str(b)) & (frame["editor"] == "additive") & (frame["metric"] == "identity")]
    base = frame[(frame["run_dir"] == str(a)) & (frame["editor"] == "additive") & (frame["metric"] == "identity")]
    assert (sel["value"].to_numpy() - base["value"].to_numpy() == pytest.approx(0.3))


def test_load_runs_refuses_a_non_run(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a run folder"):
        asyrp_bench.load_runs([tmp_path])

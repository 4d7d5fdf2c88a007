"""Run folders: atomic cells, resume, byte-stable tables, schema versions."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from asyrp_bench.errors import InputError
from asyrp_bench.results import (
    RESULTS_SCHEMA_VERSION,
    SCORES_COLUMNS,
    SUMMARY_COLUMNS,
    TMP_PREFIX,
    RunDir,
    RunWriter,
)
from tests._runs import make_run


def test_run_folder_layout_and_tables(tmp_path: Path) -> None:
    run = RunDir(make_run(tmp_path).path)
    assert run.path.parent.name == "toy" and run.name.endswith("-abcdef1")
    for name in ("suite.resolved.yaml", "env.json", "manifest.json", "scores.csv", "summary.csv"):
        assert (run.path / name).is_file()
    assert run.manifest["schema_version"] == RESULTS_SCHEMA_VERSION
    assert run.manifest["status"] == "complete"
    assert all(c["status"] == "complete" for c in run.manifest["cells"].values())
    scores, summary = run.scores(), run.summary()
    assert list(scores.columns) == SCORES_COLUMNS and list(summary.columns) == SUMMARY_COLUMNS
    assert len(scores) == 5 * 2 * 12  # 5 cells x 2 per-image metrics x 12 images
    assert scores["image_id"].iloc[0] == "000"  # ids stay strings
    fid = summary[summary.metric == "fid"]
    assert len(fid) == 5 and fid["ci_low"].isna().all() and (fid["n"] == 12).all()
    clip = summary[(summary.metric == "clip_directional") & (summary.cell == "additive__smiling__s0")].iloc[0]
    values = scores[(scores.metric == "clip_directional") & (scores.cell == "additive__smiling__s0")]["value"]
    assert clip["value"] == pytest.approx(values.mean())
    assert clip["ci_low"] < clip["value"] < clip["ci_high"]
    assert summary.loc[summary.editor == "reconstruction", "edit"].isna().all()


def test_interrupted_then_resumed_run_writes_identical_tables(tmp_path: Path) -> None:
    whole = make_run(tmp_path / "a")
    partial = make_run(tmp_path / "b", stop_after=3)
    # A cell that was being written when the process died.
    (partial.path / "cells" / f"{TMP_PREFIX}adagn__smiling__s0").mkdir()
    (partial.path / "cells" / f"{TMP_PREFIX}adagn__smiling__s0" / "scores.csv").write_text("half")
    seen = RunDir(partial.path)
    assert seen.complete_cells() == ["reconstruction", "additive__smiling__s0", "additive__tanned__s0"]
    resumed = RunWriter.resume(partial.path)
    assert not list((partial.path / "cells").glob(f"{TMP_PREFIX}*"))
    statuses = {k: v["status"] for k, v in resumed.manifest["cells"].items()}
    assert statuses["additive__tanned__s0"] == "complete" and statuses["adagn__smiling__s0"] == "todo"
    make_run(tmp_path / "b", writer=resumed)
    for name in ("scores.csv", "summary.csv"):
        assert (whole.path / name).read_bytes() == (partial.path / name).read_bytes()
    assert len(RunDir(partial.path).manifest["runs"]) == 2


def test_a_cell_is_committed_only_when_complete(tmp_path: Path) -> None:
    writer = make_run(tmp_path, stop_after=0)
    tmp = writer.begin_cell("reconstruction")
    (tmp / "cell.yaml").write_text("id: x\n")
    with pytest.raises(InputError, match="not complete"):
        writer.commit_cell("reconstruction", tmp)
    assert not writer.is_complete("reconstruction") and not (writer.path / "cells" / "reconstruction").exists()
    writer.finalize()
    assert RunDir(writer.path).manifest["status"] == "incomplete"
    assert RunDir(writer.path).scores().empty


def test_two_runs_in_the_same_second_get_distinct_folders(tmp_path: Path) -> None:
    from asyrp_bench.results import utc_now

    now = utc_now()
    a = RunWriter.create(tmp_path, "s", "0123456789", "", {}, [], started=now)
    b = RunWriter.create(tmp_path, "s", "0123456789", "", {}, [], started=now)
    assert a.path != b.path and b.path.name.endswith("-2")


def test_reader_refuses_newer_schema_and_non_runs(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    manifest = json.loads((run.path / "manifest.json").read_text())
    manifest["schema_version"] = RESULTS_SCHEMA_VERSION + 1
    (run.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="Upgrade asyrp-bench"):
        RunDir(run.path)
    with pytest.raises(InputError, match="not a run folder"):
        RunDir(tmp_path)


def test_environment_record() -> None:
    from asyrp_bench.results import environment

    env = environment("cpu", {"root": 1})
    assert env["device"] == "cpu" and env["seeds"] == {"root": 1}
    assert env["libraries"]["torch"] and "sha" in env["git"]
    json.dumps(env)


def test_csv_bytes_do_not_depend_on_row_order(tmp_path: Path) -> None:
    from asyrp_bench.results import cell_scores

    labels = {"cell": "c", "backend": "b", "editor": "e", "variant": "e", "edit": "x", "seed": 0}
    frame = pd.DataFrame({"image_id": ["2", "1", "2", "1"], "metric": ["m", "m", "a", "a"],
                          "value": [0.1, 0.2, 0.3, 0.4]})
    shuffled = frame.iloc[[3, 0, 2, 1]]
    assert cell_scores(labels, frame).equals(cell_scores(labels, shuffled))

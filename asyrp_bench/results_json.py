"""results.json of a run (resolved suite + summary + versions + per-cell status) and :func:`load_runs`.

The layout follows lm-evaluation-harness's results file: one JSON document a script can read without this
package. Its schema and the columns of :func:`load_runs` are in docs/results.md.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from asyrp_bench.results import RESULTS_SCHEMA_VERSION, SUMMARY_COLUMNS, RunDir, write_json

RESULTS_JSON = "results.json"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def results_document(run: RunDir) -> dict[str, Any]:
    """The results.json content of a run folder."""
    summary = run.summary()
    rows = [{k: _clean(v) for k, v in row.items()} for row in summary.to_dict(orient="records")]
    cells = {cell_id: {k: cell.get(k) for k in ("backend", "editor", "variant", "edit", "seed", "status", "error")
                       if k in cell} for cell_id, cell in run.manifest.get("cells", {}).items()}
    env = run.env
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "run": run.name,
        "suite": run.suite_name,
        "status": run.manifest.get("status"),
        "config": run.suite,
        "summary": rows,
        "cells": cells,
        "versions": {"asyrp_bench": run.manifest.get("asyrp_bench"), "git": env.get("git"),
                     "python": env.get("python"), **(env.get("libraries") or {})},
    }


def write_results_json(path: str | os.PathLike[str]) -> Path:
    """Write ``<run>/results.json`` from the run folder's tables and return its path."""
    run = RunDir(path)
    out = run.path / RESULTS_JSON
    write_json(out, json.loads(json.dumps(results_document(run), default=str, allow_nan=False)))
    return out


def load_runs(paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """The summary rows of several run folders in one DataFrame: ``run``, ``suite``, ``run_dir`` + the
    summary.csv columns (docs/results.md). A folder that is not a run is a clear InputError."""
    frames = []
    for path in paths:
        run = RunDir(path)
        frame = run.summary().copy()
        frame.insert(0, "run_dir", str(run.path))
        frame.insert(0, "suite", run.suite_name)
        frame.insert(0, "run", run.name)
        frames.append(frame)
    columns = ["run", "suite", "run_dir", *SUMMARY_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True).loc[:, columns]

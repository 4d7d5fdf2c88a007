"""Run folders: one folder per run, one sub-folder per cell, tidy tables on top (DESIGN §6).

::

    <results root>/<suite>/<UTC start>-<suite hash 7>/
      suite.resolved.yaml   the whole suite after include, --set and defaults
      env.json              package and library versions, git sha, device, seeds
      manifest.json         schema_version, status, cells (status, config hash, timings), weights and split hashes
      cells/<cell id>/      cell.yaml  editor.safetensors  scores.csv  summary.csv  images/ (optional)
      scores.csv            tidy per-image values of every cell:  SCORES_COLUMNS
      summary.csv           one row per cell and metric:          SUMMARY_COLUMNS
      report.md  report.html

A cell is written into ``cells/.tmp-<id>`` and renamed to ``cells/<id>`` only when all its files are written
(``os.rename`` of a folder is atomic on one filesystem), so a folder under ``cells/`` without the ``.tmp-``
prefix is complete by construction; ``run --resume`` deletes leftovers and redoes only missing cells. The top
tables are rebuilt from the cell folders, in the suite's cell order, so an interrupted-and-resumed run writes
the same bytes as an uninterrupted one. Nothing that varies between identical runs (times, paths, devices)
goes into the CSV files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import errno
import io
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from asyrp_bench.errors import DiskWriteError, InputError

RESULTS_SCHEMA_VERSION = 1
"""Version of the run-folder layout and table columns; readers refuse newer versions."""

SCORES_COLUMNS = ["cell", "backend", "editor", "variant", "edit", "seed", "image_id", "metric", "value"]
SUMMARY_COLUMNS = [
    "cell", "backend", "editor", "variant", "edit", "seed", "metric", "metric_version", "metric_config",
    "higher_is_better", "per_image", "value", "ci_low", "ci_high", "n", "split_hash",
]
CELL_FILES = ("cell.yaml", "scores.csv", "summary.csv")
TMP_PREFIX = ".tmp-"
BASELINE_EDITOR = "reconstruction"
"""Editor label of the reconstruction-baseline rows (source vs plain DDIM reconstruction)."""

_LIBRARIES = ("torch", "torchvision", "diffusers", "open_clip_torch", "torch-fidelity", "facenet-pytorch",
              "segmentation-models-pytorch", "timm", "numpy", "pandas", "pydantic", "safetensors", "pillow")


# ---------------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------------
def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and ``os.replace``: readers see the old or the new file, never half of one."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as error:
        # Every writer of a run goes through here: a full disk is a clear error naming the file, the previous
        # version of the file stays intact, and the run stays resumable.
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        reason = ("no space left on device" if error.errno == errno.ENOSPC
                  else (error.strerror or str(error)).lower())
        raise DiskWriteError(f"{reason} while writing {path}; free space (or fix the folder) and resume the "
                             "run with `asyrp-bench run --resume`") from None


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def csv_text(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """The one CSV format of every table: fixed column order, no index, ``\\n`` line ends, shortest repr floats."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}")
    buffer = io.StringIO()
    frame.loc[:, list(columns)].to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def read_csv(path: Path) -> pd.DataFrame:
    """Read a run's scores.csv / summary.csv; a garbled or truncated file is an InputError naming it."""
    try:
        frame = _read_csv_raw(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as error:
        raise InputError(f"{path} is damaged or not a results table ({type(error).__name__}: {error}); "
                         "re-run or resume the run that wrote it") from None
    expected = {"scores.csv": SCORES_COLUMNS, "summary.csv": SUMMARY_COLUMNS}.get(path.name)
    if expected is not None:
        missing = [c for c in expected if c not in frame.columns]
        if missing:
            raise InputError(f"{path} is damaged or truncated: it lacks the column(s) {', '.join(missing)}")
    if "value" in frame.columns and not pd.api.types.is_numeric_dtype(frame["value"]):
        bad = pd.to_numeric(frame["value"], errors="coerce").isna() & frame["value"].notna()
        if bool(bad.any()):
            raise InputError(f"{path} is damaged: non-numeric value(s) in the value column "
                             f"(line {int(bad.to_numpy().argmax()) + 2})")
    return frame


def _read_csv_raw(path: Path) -> pd.DataFrame:
    # ids like "000121" must stay strings; ``edit`` is empty for baseline rows.
    return pd.read_csv(path, dtype={"image_id": str, "edit": str, "cell": str, "backend": str, "editor": str,
                                    "variant": str, "metric": str, "metric_config": str, "split_hash": str},
                       keep_default_na=False, na_values=[""])


def git_info(start: Path | None = None) -> dict[str, Any]:
    """The git sha and dirty flag of the checkout this package runs from (None outside a checkout)."""
    where = start or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return {"sha": None, "dirty": None}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10)
        return {"sha": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


def environment(device: str, seeds: dict[str, Any]) -> dict[str, Any]:
    """What env.json records: versions, git state, device, seeds."""
    from asyrp_bench import __version__

    versions: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info: dict[str, Any] = {
        "asyrp_bench": __version__,
        "git": git_info(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "libraries": versions,
        "device": device,
        "seeds": seeds,
    }
    try:
        import torch

        info["torch"] = {
            "cuda_available": torch.cuda.is_available(),
            "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "num_threads": torch.get_num_threads(),
        }
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return info


# ---------------------------------------------------------------------------------------------------------
# writer
# ---------------------------------------------------------------------------------------------------------
class RunWriter:
    """Creates or resumes a run folder and commits cells atomically.

    Use :meth:`create` for a new run and :meth:`resume` for ``run --resume``; then for each cell
    ``tmp = writer.begin_cell(id)``, write its files into ``tmp``, and ``writer.commit_cell(id, tmp, info)``.
    :meth:`finalize` writes the top tables from the committed cells.
    """

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest

    # -- creation ---------------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        root: str | os.PathLike[str],
        suite_name: str,
        suite_hash: str,
        suite_yaml: str,
        env: dict[str, Any],
        cells: Sequence[dict[str, Any]],
        started: _dt.datetime | None = None,
    ) -> RunWriter:
        """Make ``<root>/<suite_name>/<UTC start>-<suite_hash[:7]>/`` with the resolved suite, env and manifest.

        ``cells`` are dicts with at least ``id`` and ``config_hash`` (plus descriptive keys), in run order.
        """
        from asyrp_bench import __version__

        started = started or utc_now()
        base = Path(root).expanduser() / suite_name
        base.mkdir(parents=True, exist_ok=True)
        stem = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{suite_hash[:7]}"
        path = base / stem
        suffix = 2
        while True:
            try:
                path.mkdir()
                break
            except FileExistsError:
                path = base / f"{stem}-{suffix}"
                suffix += 1
        (path / "cells").mkdir()
        write_text_atomic(path / "suite.resolved.yaml", suite_yaml)
        write_json(path / "env.json", env)
        manifest = {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "asyrp_bench": __version__,
            "suite": suite_name,
            "suite_hash": suite_hash,
            "created": started.isoformat(),
            "status": "running",
            "cell_order": [c["id"] for c in cells],
            "cells": {c["id"]: {**c, "status": "todo"} for c in cells},
            "backends": {},
            "splits": {},
            "baseline": {},
            "runs": [{"started": started.isoformat(), "finished": None, "device": env.get("device")}],
        }
        write_json(path / "manifest.json", manifest)
        return cls(path, manifest)

    @classmethod
    def resume(cls, path: str | os.PathLike[str], device: str | None = None) -> RunWriter:
        """Reopen a run folder: drop half-written cells, mark committed ones complete, the rest to do."""
        run = RunDir(path)
        manifest = run.manifest
        for leftover in (run.path / "cells").glob(f"{TMP_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for cell_id, cell in manifest["cells"].items():
            cell["status"] = "complete" if run.is_complete(cell_id) else "todo"
        manifest["status"] = "running"
        manifest.setdefault("runs", []).append({"started": utc_now().isoformat(), "finished": None,
                                                 "device": device})
        writer = cls(run.path, manifest)
        writer.save_manifest()
        return writer

    # -- cells ------------------------------------------------------------------------------------------------
    def cell_dir(self, cell_id: str) -> Path:
        return self.path / "cells" / cell_id

    def is_complete(self, cell_id: str) -> bool:
        return _cell_complete(self.cell_dir(cell_id))

    def begin_cell(self, cell_id: str) -> Path:
        """A fresh, empty temporary folder for ``cell_id`` (any leftover of an earlier attempt is removed)."""
        if self.is_complete(cell_id):
            raise InputError(f"cell {cell_id!r} of {self.path} is already complete")
        tmp = self.path / "cells" / f"{TMP_PREFIX}{cell_id}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        self.manifest["cells"][cell_id]["status"] = "running"
        self.manifest["cells"][cell_id]["started"] = utc_now().isoformat()
        self.save_manifest()
        return tmp

    def commit_cell(self, cell_id: str, tmp: Path, info: dict[str, Any] | None = None) -> Path:
        """Rename the finished temporary folder to ``cells/<id>`` and record ``info`` (timings etc.)."""
        missing = [name for name in CELL_FILES if not (tmp / name).is_file()]
        if missing:
            raise InputError(f"cell {cell_id!r} is not complete: {missing} not written in {tmp}")
        final = self.cell_dir(cell_id)
        os.rename(tmp, final)
        cell = self.manifest["cells"][cell_id]
        cell.update(info or {})
        cell["status"] = "complete"
        cell["finished"] = utc_now().isoformat()
        self.save_manifest()
        return final

    def fail_cell(self, cell_id: str, error: str) -> None:
        self.manifest["cells"][cell_id]["status"] = "failed"
        self.manifest["cells"][cell_id]["error"] = error
        self.save_manifest()

    # -- run-level records ------------------------------------------------------------------------------------
    def record(self, section: str, key: str, value: Any) -> None:
        """Record provenance under ``manifest[section][key]`` (backends, splits, baseline)."""
        self.manifest.setdefault(section, {})[key] = value
        self.save_manifest()

    def save_manifest(self) -> None:
        write_json(self.path / "manifest.json", self.manifest)

    def finalize(self, status: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Write the top-level scores.csv and summary.csv from the committed cells; set the run's status."""
        run = RunDir(self.path)
        scores, summary = run.collect()
        write_text_atomic(self.path / "scores.csv", csv_text(scores, SCORES_COLUMNS))
        write_text_atomic(self.path / "summary.csv", csv_text(summary, SUMMARY_COLUMNS))
        todo = [c for c in self.manifest["cell_order"] if not self.is_complete(c)]
        self.manifest["status"] = status or ("complete" if not todo else "incomplete")
        if self.manifest.get("runs"):
            self.manifest["runs"][-1]["finished"] = utc_now().isoformat()
        self.save_manifest()
        from asyrp_bench.results_json import (
            write_results_json,  # results.json beside the CSVs (docs/results.md)
        )

        write_results_json(self.path)
        return scores, summary


def _cell_complete(folder: Path) -> bool:
    return folder.is_dir() and not folder.name.startswith(TMP_PREFIX) and all(
        (folder / name).is_file() for name in CELL_FILES)


def write_cell_tables(folder: Path, scores: pd.DataFrame, summary: pd.DataFrame, cell_yaml: dict[str, Any]) -> None:
    """Write a cell's cell.yaml, scores.csv and summary.csv (into its temporary folder)."""
    write_text_atomic(folder / "cell.yaml", yaml.safe_dump(cell_yaml, sort_keys=False, allow_unicode=True))
    write_text_atomic(folder / "scores.csv", csv_text(scores, SCORES_COLUMNS))
    write_text_atomic(folder / "summary.csv", csv_text(summary, SUMMARY_COLUMNS))


# ---------------------------------------------------------------------------------------------------------
# reader
# ---------------------------------------------------------------------------------------------------------
class RunDir:
    """Read-only view of a run folder (refuses folders written by a newer asyrp-bench)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        manifest_path = self.path / "manifest.json"
        if not manifest_path.is_file():
            raise InputError(f"{self.path} is not a run folder (no manifest.json); give a folder that "
                             "`asyrp-bench run` printed")
        try:
            self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as error:
            raise InputError(f"{manifest_path} is not valid JSON ({error})") from None
        version = self.manifest.get("schema_version")
        if not isinstance(version, int):
            raise InputError(f"{manifest_path} has no integer schema_version")
        if version > RESULTS_SCHEMA_VERSION:
            raise InputError(f"{self.path} was written with results schema {version}; this asyrp-bench reads up to "
                             f"{RESULTS_SCHEMA_VERSION}. Upgrade asyrp-bench to read it.")

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def suite_name(self) -> str:
        return str(self.manifest.get("suite", ""))

    @property
    def env(self) -> dict[str, Any]:
        path = self.path / "env.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def suite(self) -> dict[str, Any]:
        path = self.path / "suite.resolved.yaml"
        return yaml.safe_load(path.read_text()) if path.is_file() else {}

    def cell_ids(self) -> list[str]:
        return list(self.manifest.get("cell_order", []))

    def cell_dir(self, cell_id: str) -> Path:
        return self.path / "cells" / cell_id

    def is_complete(self, cell_id: str) -> bool:
        return _cell_complete(self.cell_dir(cell_id))

    def complete_cells(self) -> list[str]:
        return [c for c in self.cell_ids() if self.is_complete(c)]

    def collect(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Per-image scores and summary of every complete cell, in the run's cell order."""
        scores = [read_csv(self.cell_dir(c) / "scores.csv") for c in self.complete_cells()]
        summary = [read_csv(self.cell_dir(c) / "summary.csv") for c in self.complete_cells()]
        return _concat(scores, SCORES_COLUMNS), _concat(summary, SUMMARY_COLUMNS)

    def scores(self) -> pd.DataFrame:
        """The tidy per-image table (top-level scores.csv, or collected from cells while a run is unfinished)."""
        path = self.path / "scores.csv"
        return read_csv(path) if path.is_file() else self.collect()[0]

    def summary(self) -> pd.DataFrame:
        path = self.path / "summary.csv"
        return read_csv(path) if path.is_file() else self.collect()[1]


def _concat(frames: Iterable[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.concat(frames, ignore_index=True).loc[:, list(columns)]


# ---------------------------------------------------------------------------------------------------------
# building a cell's tables
# ---------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """What travels with every value of a metric column (DESIGN §2: every number names its definition).

    Attributes:
        name: the value's name in the ``metric`` column (a metric may report several, e.g. pixel accuracy and
            mIoU of segmentation consistency).
        version: the metric's definition version.
        config: a short hash of the metric's parameters (values computed with other models never pair).
        higher_is_better: direction of improvement.
        per_image: per-image values (S_dir, SC, ID) or one value per set (FID, KID).
    """

    name: str
    version: str
    config: str
    higher_is_better: bool
    per_image: bool


def cell_scores(labels: dict[str, Any], per_image: pd.DataFrame) -> pd.DataFrame:
    """Tidy per-image rows of one cell: ``labels`` (cell, backend, editor, variant, edit, seed) + image values.

    ``per_image`` has columns image_id, metric, value; rows are sorted by metric then image id so the bytes do
    not depend on the order images were scored in.
    """
    frame = per_image.loc[:, ["image_id", "metric", "value"]].copy()
    frame["image_id"] = frame["image_id"].astype(str)
    frame = frame.sort_values(["metric", "image_id"], kind="stable").reset_index(drop=True)
    for key in ("cell", "backend", "editor", "variant", "edit", "seed"):
        frame[key] = labels[key]
    return frame.loc[:, SCORES_COLUMNS]


def cell_summary(
    labels: dict[str, Any],
    per_image: pd.DataFrame,
    set_values: dict[str, tuple[float, float, float]],
    infos: dict[str, MetricInfo],
    split_hash: str,
    n_images: int,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One summary row per metric of a cell.

    Per-image metrics: mean, percentile-bootstrap CI of the mean (:func:`asyrp_bench.stats.summarize`), n =
    finite values. Set metrics: ``set_values[name] = (value, ci_low, ci_high)`` (NaN bounds when the metric
    gives none), n = images in the set.
    """
    from asyrp_bench import stats

    rows = []
    for name in sorted(infos):
        info = infos[name]
        if info.per_image:
            values = per_image.loc[per_image["metric"] == name, "value"].to_numpy(dtype=float)
            summary = stats.summarize(values, confidence=confidence)
            value, low, high, n = summary.mean, summary.ci_low, summary.ci_high, summary.n
        else:
            if name not in set_values:
                continue
            value, low, high = set_values[name]
            n = n_images
        rows.append({**{k: labels[k] for k in ("cell", "backend", "editor", "variant", "edit", "seed")},
                     "metric": name, "metric_version": info.version, "metric_config": info.config,
                     "higher_is_better": info.higher_is_better, "per_image": info.per_image,
                     "value": value, "ci_low": low, "ci_high": high, "n": n, "split_hash": split_hash})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)

"""``asyrp-bench export``: a run's params and summary values into the stores researchers log to.

CSV (one flat file), TensorBoard event files (offline, via ``torch.utils.tensorboard``) and MLflow's local file
store (``mlflow`` / ``mlflow-skinny``, the ``export`` extra). Params are the resolved suite flattened to dotted
keys, metrics the summary values keyed ``<backend>/<editor>/<edit>/s<seed>/<metric>`` (docs/results.md).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from asyrp_bench.errors import InputError
from asyrp_bench.results import RunDir

TARGETS = ("csv", "tensorboard", "mlflow")


def flat_params(value: Any, prefix: str = "") -> dict[str, str]:
    """A nested suite as ``{"sampler.n_inv_step": "8", "edits.0.name": "smiling", ...}``."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: str(value)}
    out: dict[str, str] = {}
    for key, item in items:
        out |= flat_params(item, f"{prefix}.{key}" if prefix else str(key))
    return out


def summary_metrics(run: RunDir) -> dict[str, float]:
    """Finite summary values keyed ``backend/editor/edit/s<seed>/metric`` (edit ``-`` for the baseline)."""
    out = {}
    for row in run.summary().itertuples(index=False):
        value = float(row.value)
        if math.isfinite(value):
            edit = row.edit if isinstance(row.edit, str) and row.edit else "-"
            out[f"{row.backend}/{row.editor}/{edit}/s{row.seed}/{row.metric}"] = value
    return out


def export_run(run_dir: str | os.PathLike[str], to: str, out: str | os.PathLike[str] | None = None) -> Path:
    """Export a run folder; returns the written file or store folder (default ``<run>/export/<to>``)."""
    if to not in TARGETS:
        raise InputError(f"unknown export target {to!r}; choose one of {', '.join(TARGETS)}")
    run = RunDir(run_dir)
    target = Path(out) if out is not None else run.path / "export" / to
    target.mkdir(parents=True, exist_ok=True)
    params, metrics = flat_params(run.suite), summary_metrics(run)
    if to == "csv":
        frame = run.summary()
        frame.insert(0, "run", run.name)
        path = target / "summary.csv"
        frame.to_csv(path, index=False, lineterminator="\n")
        return path
    if to == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(target / run.name))
        writer.add_hparams(params, {k: v for k, v in metrics.items()}, run_name=".")
        writer.close()
        return target / run.name
    try:
        import mlflow
    except ImportError:
        raise InputError("export --to mlflow needs the mlflow package: pip install 'asyrp-bench[export]'") from None
    # The local file store is what the issue asks for (offline, no server); mlflow 3 wants an explicit opt-in.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(target.resolve().as_uri())
    mlflow.set_experiment(run.suite_name or "asyrp-bench")
    with mlflow.start_run(run_name=run.name):
        mlflow.log_params({k[:250]: v[:6000] for k, v in params.items()})
        mlflow.log_metrics({k.replace("/", "__"): v for k, v in metrics.items()})
        for name in ("report.md", "report.html", "summary.csv", "results.json"):
            if (run.path / name).is_file():
                mlflow.log_artifact(str(run.path / name))
        if (run.path / "report").is_dir():
            mlflow.log_artifacts(str(run.path / "report"), artifact_path="report")
    return target

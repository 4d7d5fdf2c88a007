"""Runs side by side, with paired statistics and a regression gate (DESIGN §6, code_style_anchors §8.7).

Rows are (backend, editor, edit); columns are metrics, one column group per run. Values are the cell means over
seeds. Every run of a suite scores the same fixed images, so per-image metrics get a **paired** bootstrap CI of
the per-image differences against the baseline run (averaged over seeds per image first). Set-level metrics
(FID, KID) get the difference of the values only.

Direction comes from each metric's ``higher_is_better``: an *oriented* change is positive when the run is better.
A run regresses on a metric when its oriented change is below ``-tolerance`` for that metric (``*`` sets the
default tolerance, 0 unless given), and :func:`compare_runs` lists every such (row, metric).

Values are paired only when the metric version, metric configuration and split hash agree; otherwise
:class:`DriftError` is raised, unless ``allow_drift`` (then the pairs are compared and flagged).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from asyrp_bench.errors import ConfigError, InputError
from asyrp_bench.results import RunDir

ROW_KEYS = ["backend", "editor", "edit"]


class DriftError(ConfigError):
    """Two runs computed a metric differently (version, configuration or images); not comparable as-is."""


@dataclasses.dataclass
class Comparison:
    """The result of :func:`compare_runs`.

    Attributes:
        runs: the run labels, baseline first.
        baseline: the baseline run's label.
        table: values, index (backend, editor, edit), columns MultiIndex (run, metric).
        deltas: tidy, one row per (run ≠ baseline, backend, editor, edit, metric): ``baseline``, ``value``,
            ``delta`` (run − baseline), ``better`` (delta oriented so that > 0 is better), ``ci_low``/``ci_high``
            (paired bootstrap CI of ``delta``), ``n_pairs``, ``tolerance``, ``regressed``, ``drift``.
        regressions: one line per regressed (run, row, metric), naming the metric.
        drift: one line per pair computed differently (only filled with ``allow_drift``).
        notes: rows present in only some runs, differing cell configurations.
    """

    runs: list[str]
    baseline: str
    table: pd.DataFrame
    deltas: pd.DataFrame
    regressions: list[str]
    drift: list[str]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not self.regressions


def run_labels(runs: Sequence[RunDir]) -> list[str]:
    """Short unique labels: the shortest path tails (folder name, then parents) that tell the runs apart."""
    parts = [r.path.resolve().parts for r in runs]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{label}#{i}" for i, label in enumerate(labels)]  # the same folder given twice


def parse_tolerances(items: Sequence[str]) -> dict[str, float]:
    """``["fid=0.5", "clip_directional=0.002", "*=0"]`` -> {metric: tolerance}."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            tol = float(value)
        except ValueError:
            tol = math.nan
        if not sep or not name.strip() or not math.isfinite(tol) or tol < 0:
            raise ConfigError(f"--tolerance {item!r}: expected METRIC=VALUE with VALUE ≥ 0 (e.g. fid=0.5)")
        out[name.strip()] = tol
    return out


def paired_ci(baseline: np.ndarray, candidate: np.ndarray, n_resamples: int, seed: int,
              confidence: float) -> tuple[float, float]:
    """Paired bootstrap CI of mean(candidate − baseline) over images (:mod:`asyrp_bench.stats`)."""
    from asyrp_bench import stats

    low, high = stats.paired_bootstrap_ci(baseline, candidate, confidence=confidence, n_resamples=n_resamples,
                                          seed=seed)
    return float(low), float(high)


def _per_image(run: RunDir) -> pd.DataFrame:
    scores = run.scores()
    if scores.empty:
        return pd.DataFrame(columns=[*ROW_KEYS, "metric", "image_id", "value"])
    scores = scores.assign(edit=scores["edit"].fillna(""))
    # Several seeds: one value per image, the mean over seeds, so images pair across runs with other seeds.
    return scores.groupby([*ROW_KEYS, "metric", "image_id"], as_index=False, sort=False)["value"].mean()


def _per_row(run: RunDir) -> pd.DataFrame:
    summary = run.summary()
    if summary.empty:
        raise InputError(f"{run.path} has no complete cells to compare")
    summary = summary.assign(edit=summary["edit"].fillna(""))
    agg = summary.groupby([*ROW_KEYS, "metric"], as_index=False, sort=False).agg(
        value=("value", "mean"),
        metric_version=("metric_version", lambda s: "|".join(sorted({str(v) for v in s}))),
        metric_config=("metric_config", lambda s: "|".join(sorted({str(v) for v in s}))),
        split_hash=("split_hash", lambda s: "|".join(sorted({str(v) for v in s}))),
        higher_is_better=("higher_is_better", "first"),
        per_image=("per_image", "first"),
    )
    return agg


def _cell_configs(run: RunDir) -> dict[tuple[str, str, str], set[str]]:
    out: dict[tuple[str, str, str], set[str]] = {}
    for cell in run.manifest.get("cells", {}).values():
        key = (str(cell.get("backend", "")), str(cell.get("editor", "")), str(cell.get("edit", "") or ""))
        out.setdefault(key, set()).add(str(cell.get("config_hash", "")))
    return out


def _as_bool(value: Any) -> bool | None:
    """A CSV boolean; None when empty (bookkeeping values such as counts have no direction)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        return None if text in ("", "nan", "none") else text in ("true", "1", "yes")
    return bool(value)


def _check_runs(runs: Sequence[RunDir], allow_incomplete: bool) -> list[str]:
    """Incomplete runs are an error (unless allowed, then a note); runs of different suites are a note."""
    problems, notes = [], []
    for run in runs:
        status = run.manifest.get("status")
        finished = status == "complete" and (run.path / "summary.csv").is_file()  # golden folders have no cells/
        missing = [] if finished else [c for c in run.cell_ids() if not run.is_complete(c)]
        if missing or status not in (None, "complete"):
            shown = ", ".join(missing[:8]) + (f", ... ({len(missing) - 8} more)" if len(missing) > 8 else "")
            problems.append(f"{run.path} (suite {run.suite_name!r}, status {status!r}) is missing "
                            f"{len(missing)} cell(s){': ' + shown if missing else ''}")
    suites = {run.suite_name for run in runs}
    if len(suites) > 1:
        notes.append("the runs are of different suites: " + "; ".join(f"{r.path.name}: {r.suite_name!r}"
                                                                      for r in runs))
    if problems and not allow_incomplete:
        raise InputError("incomplete run(s): " + "; ".join(problems) + ". Resume them, or pass "
                         "--allow-incomplete to compare the cells they have")
    return notes + [f"incomplete: {p}" for p in problems]


def compare_runs(
    paths: Sequence[str | os.PathLike[str] | RunDir],
    baseline: str | os.PathLike[str] | RunDir | None = None,
    tolerances: Mapping[str, float] | None = None,
    allow_drift: bool = False,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    allow_incomplete: bool = False,
) -> Comparison:
    """Compare runs against a baseline run (default: the first).

    Args:
        paths: run folders (or :class:`RunDir`).
        baseline: the run the others are compared with; added to the runs if not among them.
        tolerances: metric -> allowed worsening (in the metric's units); a metric's name (``fid``) covers all
            its values (``fid.fid``), an exact value name wins; ``"*"`` is the default (else 0).
        allow_drift: pair values whose metric version, metric config or split hash differ (flagged).
        n_resamples, confidence, seed: the paired bootstrap.

    Raises:
        DriftError: values computed differently, without ``allow_drift``.
        InputError: a folder is not a run folder, or has no complete cells.
    """
    runs = [p if isinstance(p, RunDir) else RunDir(p) for p in paths]
    if baseline is not None:
        base_run = baseline if isinstance(baseline, RunDir) else RunDir(baseline)
        runs = [r for r in runs if r.path.resolve() != base_run.path.resolve()]
        runs = [base_run, *runs]
    if not runs:
        raise InputError("no runs to compare")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ConfigError(f"n_resamples must be an integer ≥ 1, got {n_resamples!r}")
    suite_notes = _check_runs(runs, allow_incomplete)
    labels = run_labels(runs)
    tolerances = dict(tolerances or {})
    default_tol = tolerances.pop("*", 0.0)

    rows = {label: _per_row(run) for label, run in zip(labels, runs, strict=True)}
    images = {label: _per_image(run) for label, run in zip(labels, runs, strict=True)}
    known_metrics = set().union(*(set(r["metric"]) for r in rows.values()))
    known_metrics |= {m.split(".")[0] for m in known_metrics}  # "fid" covers "fid.fid" (metric.key names)
    unknown_tol = sorted(set(tolerances) - known_metrics)
    if unknown_tol:
        raise ConfigError(f"--tolerance names metric(s) {unknown_tol} that no run has; metrics: "
                          f"{sorted(known_metrics)}")

    table_parts = []
    for label in labels:
        frame = rows[label].set_index([*ROW_KEYS, "metric"])["value"].unstack("metric")
        frame.columns = pd.MultiIndex.from_product([[label], frame.columns], names=["run", "metric"])
        table_parts.append(frame)
    table = pd.concat(table_parts, axis=1)
    # Rows in the runs' own cell order (the baseline's first), not alphabetically.
    order = list(dict.fromkeys(tuple(r) for label in labels for r in rows[label][ROW_KEYS].itertuples(index=False)))
    table = table.reindex(pd.MultiIndex.from_tuples(order, names=ROW_KEYS))

    base_label = labels[0]
    base = rows[base_label].set_index([*ROW_KEYS, "metric"])
    base_images = images[base_label].set_index([*ROW_KEYS, "metric", "image_id"])["value"].sort_index()
    base_configs = _cell_configs(runs[0])
    deltas: list[dict[str, Any]] = []
    regressions: list[str] = []
    drift: list[str] = []
    drift_errors: list[str] = []
    notes: list[str] = list(suite_notes)
    for label, run in zip(labels[1:], runs[1:], strict=True):
        other = rows[label].set_index([*ROW_KEYS, "metric"])
        only_base = sorted({k[:3] for k in base.index} - {k[:3] for k in other.index})
        only_other = sorted({k[:3] for k in other.index} - {k[:3] for k in base.index})
        if only_base:
            notes.append(f"{label}: rows missing (present in {base_label}): {['/'.join(r) for r in only_base]}")
        if only_other:
            notes.append(f"{label}: rows not in {base_label}: {['/'.join(r) for r in only_other]}")
        configs = _cell_configs(run)
        for key in sorted(set(configs) & set(base_configs)):
            if configs[key] != base_configs[key]:
                notes.append(f"{label}: {'/'.join(key)} was run with another configuration than in {base_label}")
        other_images = images[label].set_index([*ROW_KEYS, "metric", "image_id"])["value"].sort_index()
        for key in base.index.intersection(other.index):
            b, o = base.loc[key], other.loc[key]
            row_name = "/".join(str(k) for k in key[:3]) + f" {key[3]}"
            reasons = [
                f"{what} {b[col]!r} vs {o[col]!r}"
                for what, col in (("metric version", "metric_version"), ("metric config", "metric_config"),
                                  ("split hash", "split_hash"))
                if str(b[col]) != str(o[col])
            ]
            if reasons:
                message = f"{label} vs {base_label}: {row_name}: {'; '.join(reasons)}"
                (drift if allow_drift else drift_errors).append(message)
                if not allow_drift:
                    continue
            higher = _as_bool(b["higher_is_better"])
            delta = float(o["value"]) - float(b["value"])
            # No direction (counts, subset sizes): shown, never gated.
            better = math.nan if higher is None else (delta if higher else -delta)
            ci_low = ci_high = math.nan
            n_pairs = 0
            if _as_bool(b["per_image"]):
                try:
                    left = base_images.loc[key]
                    right = other_images.loc[key]
                except KeyError:
                    left = right = pd.Series(dtype=float)
                common = left.index.intersection(right.index)
                n_pairs = len(common)
                if n_pairs:
                    ci_low, ci_high = paired_ci(left.loc[common].to_numpy(dtype=float),
                                                right.loc[common].to_numpy(dtype=float), n_resamples, seed,
                                                confidence)
            tol = float(tolerances.get(key[3], tolerances.get(key[3].split(".")[0], default_tol)))
            regressed = bool(math.isfinite(better) and better < -tol)
            if regressed:
                direction = "higher" if higher else "lower"
                regressions.append(
                    f"{key[3]} regressed in {label} for {'/'.join(str(k) for k in key[:3])}: "
                    f"{float(o['value']):.6g} vs baseline {float(b['value']):.6g} ({direction} is better; "
                    f"change {delta:+.6g}, tolerance {tol:g})"
                )
            deltas.append({
                "run": label, "backend": key[0], "editor": key[1], "edit": key[2], "metric": key[3],
                "baseline": float(b["value"]), "value": float(o["value"]), "delta": delta, "better": better,
                "ci_low": ci_low, "ci_high": ci_high, "n_pairs": n_pairs, "tolerance": tol,
                "regressed": regressed, "drift": bool(reasons),
            })
    if drift_errors:
        shown = "\n".join(drift_errors[:20])
        more = f"\n... and {len(drift_errors) - 20} more" if len(drift_errors) > 20 else ""
        raise DriftError(f"values computed differently cannot be paired (pass --allow-drift to compare anyway):\n"
                         f"{shown}{more}")
    columns = ["run", *ROW_KEYS, "metric", "baseline", "value", "delta", "better", "ci_low", "ci_high", "n_pairs",
               "tolerance", "regressed", "drift"]
    return Comparison(runs=labels, baseline=base_label, table=table,
                      deltas=pd.DataFrame(deltas, columns=columns), regressions=regressions, drift=drift,
                      notes=notes)

"""Run several metrics over one :class:`ScoringInputs` with shared models, and tabulate their records.

>>> records = score(inputs, ["fid", {"name": "kid", "params": {"subset_size": 50}}], ScoringContext())
>>> scores = records_to_frame(records)      # tidy: image_id, metric, key, metric_version, value, params
>>> summary = summary_frame(records)        # one row per (metric, key): mean, std, 95% CI, N
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from asyrp_bench.metrics.base import (
    METRICS,
    RECORD_COLUMNS,
    Metric,
    MetricSpec,
    Record,
    ScoringContext,
    ScoringInputs,
    build_metric,
    check_unique_labels,
)
from asyrp_bench.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, summarize

if TYPE_CHECKING:
    import pandas as pd

MetricLike = Metric | MetricSpec | str | dict[str, Any]

SUMMARY_COLUMNS = ("metric", "key", "metric_version", "per_image", "higher_is_better", "mean", "std", "ci_low",
                   "ci_high", "n", "params")


def build_metrics(metrics: Sequence[MetricLike]) -> list[Metric]:
    """Instantiate (and validate) every metric before any model loads."""
    built = [m if isinstance(m, Metric) else build_metric(m) for m in metrics]
    check_unique_labels([m.label for m in built])
    return built


def score(inputs: ScoringInputs, metrics: Sequence[MetricLike], ctx: ScoringContext | None = None) -> list[Record]:
    """Score ``inputs`` with each metric in turn, sharing ``ctx`` (models, features) between them.

    All metrics check their inputs first, so a missing reconstruction or prompt fails before anything loads.
    """
    ctx = ctx or ScoringContext()
    built = build_metrics(metrics)
    for metric in built:
        metric.check_inputs(inputs)
    records: list[Record] = []
    for metric in built:
        records.extend(metric.compute(inputs, ctx))
    return records


def records_to_frame(records: Sequence[Record]) -> pd.DataFrame:
    """Tidy table of records, sorted by metric, key, image id (set-level rows first)."""
    import pandas as pd

    frame = pd.DataFrame([r.as_row() for r in records], columns=list(RECORD_COLUMNS))
    if frame.empty:
        return frame
    frame["_set"] = frame["image_id"].isna()
    frame = frame.sort_values(["metric", "key", "_set", "image_id"], ascending=[True, True, False, True],
                              na_position="first", kind="stable").drop(columns="_set")
    return frame.reset_index(drop=True)


def _direction(metric: str, key: str) -> bool | None:
    cls = METRICS.get(metric)
    for spec in cls.keys:
        if spec.name == key:
            return spec.higher_is_better
    return None


def summary_frame(records: Sequence[Record], confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                  seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """One row per (metric, version, params, key): per-image keys get mean, std, percentile-bootstrap CI and N
    (finite values); per-set keys get their value as ``mean`` and the set's ``n`` record as N (the ``n`` key
    itself is not a row)."""
    import pandas as pd

    groups: dict[tuple[str, int, str], dict[str, list[Record]]] = {}
    for record in records:
        groups.setdefault((record.metric, record.metric_name, record.metric_version, record.params),
                          {}).setdefault(record.key, []).append(record)
    rows = []
    for (metric, registered, version, params), by_key in sorted(groups.items()):
        per_image = bool(METRICS.get(registered).per_image)
        set_n = by_key.get("n", [])
        for key, items in by_key.items():
            if not per_image and key == "n":
                continue
            values = [r.value for r in items]
            if per_image:
                s = summarize(values, confidence, n_resamples, seed)
                row = (s.mean, s.std, s.ci_low, s.ci_high, s.n)
            else:
                n = int(set_n[0].value) if set_n else len(values)
                row = (values[0], math.nan, math.nan, math.nan, n)
            rows.append((metric, key, version, per_image, _direction(registered, key), *row, params))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))

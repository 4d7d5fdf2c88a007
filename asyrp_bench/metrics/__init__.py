"""Metrics behind one contract (:mod:`asyrp_bench.metrics.base`), registered lazily in :data:`METRICS`.
Imports only the base modules, never the engine, harness or CLI (docs/architecture.md, tests/test_layers.py).

Importing this package does not import open_clip, torch-fidelity, facenet-pytorch or
segmentation-models-pytorch; each metric imports its library when it first computes.
"""

from __future__ import annotations

from asyrp_bench.metrics.base import (
    METRICS,
    Metric,
    MetricKey,
    MetricSpec,
    Record,
    ScoringContext,
    ScoringInputs,
    build_metric,
    load_metrics_file,
    parse_metric_specs,
)
from asyrp_bench.metrics.runner import build_metrics, records_to_frame, score, summary_frame

__all__ = [
    "METRICS",
    "Metric",
    "MetricKey",
    "MetricSpec",
    "Record",
    "ScoringContext",
    "ScoringInputs",
    "build_metric",
    "build_metrics",
    "load_metrics_file",
    "parse_metric_specs",
    "records_to_frame",
    "score",
    "summary_frame",
]

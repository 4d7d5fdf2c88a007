"""Small statistics shared by ``score``, run summaries and ``compare``: mean/std/percentile-bootstrap CI.

Bootstrap: resample the values with replacement ``n_resamples`` times with a fixed seed (numpy PCG64), take the
mean of each resample and the (α/2, 1 − α/2) percentiles of those means. Deterministic for a given seed, so the
same values always give the same interval. The paired variant resamples *pairs* (per-image differences), which is
the right test when two runs score the same images (code_style_anchors.md §8.7).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
_CHUNK = 1_000


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof 1), percentile-bootstrap CI of the mean and N of finite values.

    ``std`` and the CI are NaN when fewer than 2 values exist (undefined, shown as such)."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n: int


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def bootstrap_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95,
                 n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (non-finite values are left out; NaNs if n < 2)."""
    data = _finite(values)
    n = data.size
    if n < 2:
        return (math.nan, math.nan)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.Generator(np.random.PCG64(seed))
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, _CHUNK):
        stop = min(start + _CHUNK, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = data[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return (float(low), float(high))


def paired_bootstrap_ci(baseline: Sequence[float] | np.ndarray, candidate: Sequence[float] | np.ndarray,
                        confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                        seed: int = DEFAULT_SEED) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(candidate − baseline) over pairs (same images, same order).

    Pairs where either value is non-finite are left out."""
    a = np.asarray(baseline, dtype=np.float64).ravel()
    b = np.asarray(candidate, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    return bootstrap_ci(b[keep] - a[keep], confidence, n_resamples, seed)


def summarize(values: Sequence[float] | np.ndarray, confidence: float = 0.95,
              n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Summary:
    """:class:`Summary` of the finite ``values``."""
    data = _finite(values)
    n = int(data.size)
    if n == 0:
        return Summary(math.nan, math.nan, math.nan, math.nan, 0)
    std = float(data.std(ddof=1)) if n > 1 else math.nan
    low, high = bootstrap_ci(data, confidence, n_resamples, seed)
    return Summary(float(data.mean()), std, low, high, n)

"""Intervals over seeds: seeds are the independent replicates behind every verdict of the report.

Generations within a run are not independent (each trains on the last one's samples), so every
interval here treats one number per seed (a slope, a held-out error difference) as the sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class SeedInterval:
    """A mean over seeds with its interval, and how the interval was made.

    Args:
        estimate: the mean of the per-seed values.
        low: lower end of the interval (NaN when it cannot be computed).
        high: upper end.
        n: number of seeds (per-seed values) it comes from.
        confidence: the nominal coverage, e.g. 0.95.
        method: how the interval was computed, e.g. ``t-interval``.
    """

    estimate: float
    low: float
    high: float
    n: int
    confidence: float
    method: str

    @property
    def sign(self) -> int:
        """+1 when the interval lies above 0, -1 when below, 0 when it contains 0 or is undefined."""
        if self.low > 0:
            return 1
        if self.high < 0:
            return -1
        return 0

    def bounds(self) -> str:
        """``[0.004, 0.02] (95% t-interval over 5 seeds)``: the interval with its method, level and n."""
        return (
            f"[{fmt(self.low)}, {fmt(self.high)}] "
            f"({100 * self.confidence:g}% {self.method} over {self.n} seed{'s' * (self.n != 1)})"
        )

    def describe(self) -> str:
        """``0.012 [0.004, 0.02] (95% t-interval over 5 seeds)``: the method, level and n stated."""
        return f"{fmt(self.estimate)} {self.bounds()}"


def fmt(x: float | None) -> str:
    """Four significant digits, ``nan`` for missing values."""
    return "nan" if x is None or not math.isfinite(x) else f"{x:.4g}"


def t_interval(values: Sequence[float], confidence: float = 0.95) -> SeedInterval:
    """Mean of per-seed values with a Student t interval (``scipy.stats.t``, n - 1 degrees of freedom).

    Args:
        values: one value per seed.
        confidence: nominal coverage.

    Returns:
        The interval; NaN ends with fewer than 2 values, a point when every value is the same.
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return SeedInterval(mean, math.nan, math.nan, n, confidence, "t-interval")
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    return SeedInterval(mean, mean - half, mean + half, n, confidence, "t-interval")


def bootstrap_t_interval(
    values: Sequence[float], confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> SeedInterval:
    """Mean of per-seed values with a bootstrap-t interval from seeds resampled with replacement.

    Why bootstrap-t rather than ``scipy.stats.bootstrap``: with the handful of seeds runs have, its
    percentile and BCa intervals of a mean are too narrow (measured on N(0, 1) samples, 400 repeats:
    a nominal 95% interval excluded the true mean in 15% of cases at 5 seeds, 22% at 4), while the
    studentised resampling here stays near nominal (6% and 7%), because it carries the uncertainty of the
    spread itself. Resamples whose values are all equal (no spread to studentise by) are left out.

    Args:
        values: one value per seed.
        confidence: nominal coverage.
        n_resamples: bootstrap resamples.
        seed: seed of ``numpy.random.default_rng`` drawing the resamples.

    Returns:
        The interval (a point when every value is the same, NaN ends with fewer than 2 values).
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    method = f"bootstrap-t interval ({n_resamples} resamples of seeds)"
    mean = float(x.mean()) if n else math.nan
    if n < 2 or n_resamples < 1:
        return SeedInterval(mean, math.nan, math.nan, n, confidence, method)
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    if sem == 0:
        return SeedInterval(mean, mean, mean, n, confidence, method)
    draws = x[np.random.default_rng(seed).integers(0, n, (n_resamples, n))]
    sems = draws.std(axis=1, ddof=1) / math.sqrt(n)
    spread = sems > 0
    t_star = (draws.mean(axis=1)[spread] - mean) / sems[spread]
    tail = (1 - confidence) / 2
    q_low, q_high = np.quantile(t_star, [tail, 1 - tail])
    return SeedInterval(mean, mean - float(q_high) * sem, mean - float(q_low) * sem, n, confidence, method)

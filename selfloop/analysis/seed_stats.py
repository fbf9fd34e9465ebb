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

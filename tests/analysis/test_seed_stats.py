"""Intervals over seeds: the closed form and its edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from selfloop.analysis.seed_stats import t_interval


def test_t_interval_is_the_student_t_interval() -> None:
    x = [0.1, 0.4, 0.35, 0.2, 0.3]
    i = t_interval(x, 0.9)
    low, high = stats.t.interval(0.9, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert (i.estimate, i.low, i.high, i.n) == (
        pytest.approx(np.mean(x)),
        pytest.approx(low),
        pytest.approx(high),
        5,
    )
    assert i.describe().endswith("(90% t-interval over 5 seeds)")
    assert i.sign == 1
    point = t_interval([0.2, 0.2, 0.2])
    assert (point.low, point.high, point.sign) == (pytest.approx(0.2), pytest.approx(0.2), 1)
    zero = t_interval([0.0, 0.0, 0.0])
    assert zero.sign == 0  # equal zeros never exclude 0
    one = t_interval([0.5])
    assert one.n == 1 and math.isnan(one.low) and one.sign == 0 and "over 1 seed)" in one.describe()

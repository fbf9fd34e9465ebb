"""Does a metric change across generations? A verdict per (group, arch, metric) decided by an interval.

Method: per seed, the least-squares slope of the metric over generations (``scipy.stats.linregress``);
across seeds, their mean with a Student t interval (``scipy.stats.t``). The verdict is "increases" when
the interval lies above 0, "decreases" when below, else "no detectable change"; with fewer than
``MIN_SEEDS`` seeds there is no verdict. Seeds are the replicates: generations of one run depend on each
other, so their scatter around a line says nothing about seed-to-seed variation, and the per-seed slope
is the one number per run the interval is taken over. The calibration on simulated series is in
``tests/analysis/test_trends.py``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from selfloop.analysis.runs import GENERATOR_ARCH, Run, by_group
from selfloop.analysis.seed_stats import SeedInterval, fmt, t_interval
from selfloop.catalogue import is_fairness_score, metrics_of

Verdict = Literal["increases", "decreases", "no detectable change"]
CLASSIFIER_METRICS = metrics_of("classifier")
GENERATOR_METRICS = metrics_of("generator")
MIN_SEEDS = 3


@dataclass
class Trend:
    """The trend of one metric of one arch in one group.

    Args:
        group: the group key.
        arch: a classifier arch or ``generator``.
        metric: the metric name.
        seeds: seeds of the runs with a slope (a run needs two generations with finite values).
        slopes: each run's least-squares slope per generation, in the order of ``seeds``.
        generations: every generation that entered a slope.
        interval: the mean slope with its t-interval over seeds (ends NaN with fewer than 2 seeds).
        verdict: ``increases``, ``decreases`` or ``no detectable change``; None when there are fewer than
            ``MIN_SEEDS`` seeds.
        sentence: the verdict in words, with the interval, its method, level and number of seeds.
    """

    group: str
    arch: str
    metric: str
    seeds: list[int]
    slopes: list[float]
    generations: list[int]
    interval: SeedInterval
    verdict: Verdict | None
    sentence: str = field(default="")

    def row(self) -> dict[str, Any]:
        """As a table row: ``group, arch, metric, verdict, mean_slope, low, high, level, method, n_seeds,
        seeds, sentence`` (verdict ``cannot be judged`` when there is none)."""
        i = self.interval
        return {
            "group": self.group,
            "arch": self.arch,
            "metric": self.metric,
            "verdict": self.verdict or "cannot be judged",
            "mean_slope": i.estimate,
            "low": i.low,
            "high": i.high,
            "level": i.confidence,
            "method": i.method,
            "n_seeds": i.n,
            "seeds": list(self.seeds),
            "sentence": self.sentence,
        }


def seed_slope(generations: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` over ``generations`` (``scipy.stats.linregress``), ignoring
    non-finite values; NaN with fewer than two distinct generations."""
    x, y = np.asarray(generations, dtype=float), np.asarray(values, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    if len(np.unique(x[keep])) < 2:
        return math.nan
    return float(stats.linregress(x[keep], y[keep]).slope)


def judge(slopes: Sequence[float], confidence: float = 0.95) -> tuple[SeedInterval, Verdict | None]:
    """The mean slope's t-interval over seeds and the verdict it decides (None below ``MIN_SEEDS``).

    Args:
        slopes: one slope per seed (NaN ones are left out).
        confidence: the interval's nominal coverage.
    """
    finite = [s for s in slopes if math.isfinite(s)]
    interval = t_interval(finite, confidence)
    if len(finite) < MIN_SEEDS:
        return interval, None
    verdict: Verdict = {1: "increases", -1: "decreases", 0: "no detectable change"}[interval.sign]
    return interval, verdict


def _sentence(
    arch: str, metric: str, interval: SeedInterval, verdict: Verdict | None, gens: list[int]
) -> str:
    span = f"generations {gens[0]}-{gens[-1]}" if gens else "no generations"
    if verdict is None:
        seen = f"; mean slope {fmt(interval.estimate)} per generation" if interval.n else ""
        return (
            f"The trend of {metric} for {arch} cannot be judged: {interval.n} seed{'s' * (interval.n != 1)} with "
            f"a slope, and a t-interval over seeds needs at least {MIN_SEEDS}{seen}."
        )
    bias = ""
    if is_fairness_score(metric) and verdict != "no detectable change":
        bias = f" (1 means fair, so its bias {'falls' if verdict == 'increases' else 'grows'})"
    return (
        f"{metric} of {arch} {verdict}{bias}: mean slope per generation {interval.describe()}; "
        f"per-seed least-squares slopes over {span}."
    )


def trend(
    series: Sequence[tuple[Sequence[float], Sequence[float]]],
    confidence: float = 0.95,
) -> tuple[list[float], SeedInterval, Verdict | None]:
    """The verdict on a set of per-seed series, without run directories (used by the calibration).

    Args:
        series: per seed, ``(generations, values)``.
        confidence: the interval's nominal coverage.

    Returns:
        The per-seed slopes, the interval and the verdict.
    """
    slopes = [seed_slope(g, v) for g, v in series]
    return (slopes, *judge(slopes, confidence))


def trends(
    runs: Iterable[Run],
    metrics: Sequence[str] = CLASSIFIER_METRICS,
    generator_metrics: Sequence[str] = GENERATOR_METRICS,
    confidence: float = 0.95,
) -> list[Trend]:
    """Trend verdicts for every group, arch and metric logged.

    Args:
        runs: loaded runs of one or more groups; every run is one sample (two runs with one seed count twice).
        metrics: classifier metrics to judge (those logged).
        generator_metrics: metrics of the ``generator`` rows to judge (those logged).
        confidence: the intervals' nominal coverage.

    Returns:
        Trends ordered by group, then classifier archs with ``metrics``' order, then the generator.
    """
    results = []
    for group, members in by_group(runs).items():
        archs = list(dict.fromkeys(a for run in members for a in run.archs))
        wanted = [(a, m) for a in archs for m in metrics] + [(GENERATOR_ARCH, m) for m in generator_metrics]
        for arch, metric in wanted:
            per_run: dict[int, tuple[int, dict[int, float]]] = defaultdict(lambda: (0, {}))
            for k, run in enumerate(members):
                values = {g: v for (g, a, m), v in run.metrics.items() if a == arch and m == metric}
                if values:
                    per_run[k] = (run.seed, values)
            if not per_run:
                continue
            seeds, slopes, gens = [], [], set()
            for seed, values in per_run.values():
                finite = {g: v for g, v in values.items() if math.isfinite(v)}
                slope = seed_slope(list(finite), list(finite.values()))
                if math.isfinite(slope):
                    seeds.append(seed)
                    slopes.append(slope)
                    gens |= set(finite)
            interval, verdict = judge(slopes, confidence)
            ordered = sorted(gens)
            results.append(
                Trend(
                    group,
                    arch,
                    metric,
                    seeds,
                    slopes,
                    ordered,
                    interval,
                    verdict,
                    _sentence(arch, metric, interval, verdict, ordered),
                )  # fmt: skip
            )
    return results

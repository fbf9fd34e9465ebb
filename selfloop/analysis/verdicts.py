"""Does a metric change when generated data first enters, and does it keep changing after? Two verdicts.

Generation 0 trains on real data only; from generation 1 on the training sets hold generated data. A change
at that first step and a change from one generation to the next are two different findings (the paper's
eq. 6 conjecture is about the second), so every (group, arch, metric) gets two verdicts, each from one
number per seed (seeds are the replicates; the generations of one run depend on each other):

* **shift** (classifier metrics only: generator metrics start at generation 1): per seed, the value at
  generation 1 predicted by the least-squares line over generations >= 1, minus the value at generation 0.
  The line uses every generation that holds generated data, so its generation-1 value is less noisy than
  the raw generation-1 value, and a trend after generation 1 is not counted as a shift. With generated
  data in generation 1 only, the contrast is the raw difference (said in the sentence).
* **trend**: per seed, the least-squares slope over generations >= 1 (least squares).

Across seeds each contrast gets its mean, a Student t interval, a two-sided one-sample t-test against 0
(Student t, ``scipy.stats.t``) and, where the metric catalogue declares an equivalence margin m, a
two-one-sided-tests equivalence test against ``±m`` (``statsmodels``' ``DescrStatsW.ttost_mean``).

**One family.** Every test a report makes (the shift and trend tests of every group, arch and metric, and
the equivalence tests) is corrected together by Holm's step-down method
(``holm``, equal to ``statsmodels``' ``multipletests(method="holm")``), which controls the family-wise error rate at
5% under any dependence between the tests (the metrics of one run are strongly correlated). Verdicts
follow the adjusted p-values:

* ``increases`` / ``decreases``: the difference test rejects 0 after the correction;
* ``unchanged within ±m``: it does not, and the equivalence test rejects ``|change| >= m`` after the correction;
* ``no detectable change``: neither; always stated with the smallest change the design detects with 80%
  power at Holm's strictest level (``statsmodels``' ``TTestPower``, from the observed seed spread);
* ``cannot be judged``: fewer than ``MIN_SEEDS`` seeds, too few generations, or every seed giving the same
  value (a zero-width interval), with the reason.

Calibrated on simulated series in ``tests/analysis/test_verdicts_calibration.py``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import stats
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import DescrStatsW

from selfloop.analysis.runs import Run, by_group
from selfloop.analysis.seed_stats import SeedInterval, fmt, t_interval
from selfloop.core.catalogue import GENERATOR_ARCH, MetricSpec, metrics_of, spec
from selfloop.metrics.chance import ALPHA as CHANCE_ALPHA
from selfloop.metrics.chance import CHANCE_P

Kind = Literal["shift", "trend"]
FAMILY_METHOD_NAME = "Holm"
ALPHA = 0.05
POWER = 0.8
MIN_SEEDS = 3
INCREASES, DECREASES, NO_CHANGE, NOT_JUDGED = (
    "increases",
    "decreases",
    "no detectable change",
    "cannot be judged",
)


def unchanged(margin: float) -> str:
    """The equivalence verdict's words, e.g. ``unchanged within ±0.01``."""
    return f"unchanged within ±{margin:g}"


# Per-seed contrasts -----------------------------------------------------------------------------------------


def _line(generations: np.ndarray, values: np.ndarray) -> tuple[float, float] | None:
    """Least-squares (slope, intercept), None with fewer than two distinct generations.

    The closed form rather than ``scipy.stats.linregress``: the calibration fits hundreds of thousands of
    lines, and linregress's per-call overhead (about 1 ms) made it the suite's slowest test.
    """
    if len(generations) < 2:
        return None
    centred = generations - generations.mean()
    spread = float(centred @ centred)
    if spread == 0:
        return None
    slope = float(centred @ (values - values.mean())) / spread
    return slope, float(values.mean()) - slope * float(generations.mean())


def seed_contrasts(series: dict[int, float], source: Literal["classifier", "generator"]) -> dict[Kind, float]:
    """The shift and trend of one seed's series (NaN where its generations do not allow one).

    Args:
        series: value by generation (non-finite values are left out).
        source: ``generator`` series have no generation 0, hence no shift.

    Returns:
        ``{"shift": ..., "trend": ...}``.
    """
    finite = {g: v for g, v in series.items() if math.isfinite(v)}
    after = sorted(g for g in finite if g >= 1)
    x = np.array(after, dtype=float)
    y = np.array([finite[g] for g in after], dtype=float)
    line = _line(x, y)
    trend = line[0] if line else math.nan
    shift = math.nan
    if source == "classifier" and 0 in finite and after:
        at_one = line[0] * 1.0 + line[1] if line else finite.get(1, math.nan)
        shift = at_one - finite[0]
    return {"shift": shift, "trend": trend}


# One test over seeds ----------------------------------------------------------------------------------------


@dataclass
class Contrast:
    """One contrast (shift or trend) of one metric over seeds, before and after the family correction.

    Args:
        kind: ``shift`` or ``trend``.
        values: one per seed, in the order of ``seeds``.
        seeds: the seeds (replicates).
        interval: mean and 95% t-interval over seeds.
        margin: the catalogue's equivalence margin (None: no natural scale).
        p: two-sided p-value of the one-sample t-test against 0 (NaN when not computable).
        p_equivalence: p-value of the TOST equivalence test against ``±margin`` (NaN without a margin).
        reason: why the test cannot be judged (empty when it can).
        p_adjusted: ``p`` after the family correction.
        p_equivalence_adjusted: ``p_equivalence`` after the family correction.
        family_size: number of tests in the family.
        detectable: smallest |mean change| detected with 80% power at the family's strictest level.
    """

    kind: Kind
    values: list[float]
    seeds: list[int]
    interval: SeedInterval
    margin: float | None
    p: float
    p_equivalence: float
    reason: str = ""
    p_adjusted: float = math.nan
    p_equivalence_adjusted: float = math.nan
    family_size: int = 0
    detectable: float = math.nan

    @property
    def judged(self) -> bool:
        return not self.reason

    @property
    def verdict(self) -> str:
        """One of ``increases``, ``decreases``, ``unchanged within ±m``, ``no detectable change``,
        ``cannot be judged``."""
        if not self.judged:
            return NOT_JUDGED
        if self.p_adjusted < ALPHA:
            return INCREASES if self.interval.estimate > 0 else DECREASES
        if self.margin is not None and self.p_equivalence_adjusted < ALPHA:
            return unchanged(self.margin)
        return NO_CHANGE

    @property
    def changed(self) -> bool:
        return self.verdict in (INCREASES, DECREASES)

    def evidence(self) -> str:
        """The number behind the verdict: estimate, interval, adjusted p, and the detectable change or the
        margin where nothing was detected."""
        if not self.judged:
            return self.reason
        text = f"{self.interval.describe()}, {FAMILY_METHOD_NAME}-adjusted p = {_p(self.p_adjusted)}"
        if self.verdict.startswith("unchanged"):
            text += f", equivalence p = {_p(self.p_equivalence_adjusted)}"
        elif self.verdict == NO_CHANGE:
            text += f"; detectable with 80% power: ±{fmt(self.detectable)}"
        return text


def _p(p: float) -> str:
    return "nan" if not math.isfinite(p) else ("< 0.0001" if p < 1e-4 else f"{p:.4f}")


def make_test(kind: Kind, values: Sequence[float], seeds: Sequence[int], margin: float | None) -> Contrast:
    """Mean, interval and unadjusted p-values of one contrast over seeds (``reason`` set when it cannot be
    judged).

    Args:
        kind: ``shift`` or ``trend``.
        values: one per seed (NaN ones are left out with their seeds).
        seeds: the seeds, in the order of ``values``.
        margin: the equivalence margin, or None.
    """
    pairs = [(s, v) for s, v in zip(seeds, values, strict=True) if math.isfinite(v)]
    kept_seeds, x = [s for s, _ in pairs], np.array([v for _, v in pairs], dtype=float)
    interval = t_interval(x)
    reason = ""
    if len(x) < MIN_SEEDS:
        reason = f"{len(x)} seed{'s' * (len(x) != 1)} with a {kind}, and an interval over seeds needs at least {MIN_SEEDS}"
    elif np.ptp(x) == 0:
        reason = f"every seed gives the same {kind} ({fmt(float(x[0]))}): a zero-width interval says nothing"
    p = p_eq = math.nan
    if not reason:
        # The one-sample t-test against 0 (``scipy.stats.ttest_1samp``'s statistic, without its per-call cost).
        statistic = interval.estimate / (float(x.std(ddof=1)) / math.sqrt(len(x)))
        p = float(2 * stats.t.sf(abs(statistic), len(x) - 1))
        if margin is not None:
            p_eq = float(DescrStatsW(x).ttost_mean(-margin, margin)[0])
    return Contrast(kind, list(map(float, x)), kept_seeds, interval, margin, p, p_eq, reason)


def detectable_change(sd: float, n: int, alpha: float) -> float:
    """Smallest |mean| a two-sided one-sample t-test at ``alpha`` detects with 80% power over ``n`` seeds
    whose values spread with standard deviation ``sd`` (``statsmodels``' ``TTestPower``)."""
    if n < 2 or not (sd > 0):
        return math.nan
    return _detectable_effect_size(n, alpha) * sd


@functools.lru_cache(maxsize=256)
def _detectable_effect_size(n: int, alpha: float) -> float:
    # The root search is slow and a report asks for the same (n, alpha) many times.
    d = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=POWER, alternative="two-sided")
    return float(d)


def correct_family(tests: Sequence[Contrast]) -> None:
    """Holm-correct every judged test's difference and equivalence p-values as one family (in place), and
    set each test's detectable change at the family's strictest level ``alpha / family size``."""
    judged = [t for t in tests if t.judged]
    pvalues = [t.p for t in judged] + [t.p_equivalence for t in judged if t.margin is not None]
    size = len(pvalues)
    if not size:
        return
    adjusted = holm(pvalues)
    with_margin = iter(adjusted[len(judged) :])
    for test, p_adj in zip(judged, adjusted[: len(judged)], strict=True):
        test.p_adjusted = float(p_adj)
        test.p_equivalence_adjusted = float(next(with_margin)) if test.margin is not None else math.nan
        test.family_size = size
        test.detectable = detectable_change(
            float(np.std(test.values, ddof=1)), len(test.values), ALPHA / size
        )


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: sorted ascending, the k-th (from 0) times ``m - k``, made
    monotone, capped at 1.

    Equal to ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]`` (tested), written out because
    that function runs ``gc.collect()`` on every call: 0.1-0.2 s in a process holding torch, which a report
    pays once but the calibration (hundreds of families) hundreds of times.
    """
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


# Verdicts per (group, arch, metric) -------------------------------------------------------------------------


@dataclass
class MetricVerdict:
    """The shift and trend verdicts of one metric of one arch in one group.

    Args:
        group: the group key.
        arch: a classifier arch or ``generator``.
        metric: the catalogue entry.
        shift: the shift test (None for generator metrics).
        trend: the trend test.
        generations: the generations that entered a contrast.
        notes: runs left out or contrasts that fell back (e.g. a shift from generation 1 alone).
    """

    group: str
    arch: str
    metric: MetricSpec
    shift: Contrast | None
    trend: Contrast
    generations: list[int]
    notes: list[str] = field(default_factory=list)

    @property
    def tests(self) -> list[Contrast]:
        return [t for t in (self.shift, self.trend) if t is not None]

    @property
    def n_seeds(self) -> int:
        return max(len(t.seeds) for t in self.tests)

    def sentence(self) -> str:
        """The two verdicts in words with their evidence, e.g. "md of lenet: adding generated data lowers it
        once (generation 0 -> 1: ...), after which it does not change detectably (slope over generations 1-6:
        ...)"."""
        name = f"{self.metric.name} of {self.arch}"
        span = _span([g for g in self.generations if g >= 1])
        parts = []
        if self.shift is not None:
            s = self.shift
            what = {INCREASES: "raises it once", DECREASES: "lowers it once"}.get(
                s.verdict, "does not change it detectably" if s.verdict == NO_CHANGE else s.verdict
            )
            if s.verdict.startswith("unchanged"):
                what = f"leaves it {s.verdict}"
            elif s.verdict == NOT_JUDGED:
                what = "cannot be judged"
            parts.append(f"adding generated data {what} (generation 0 -> 1: {s.evidence()})")
        t = self.trend
        words = {
            INCREASES: "it increases across generations",
            DECREASES: "it decreases across generations",
            NO_CHANGE: "it does not change detectably across generations",
            NOT_JUDGED: "its trend cannot be judged",
        }.get(t.verdict, f"it stays {t.verdict} per generation")
        parts.append(
            f"{'after which ' if self.shift is not None else ''}{words} (slope over {span}: {t.evidence()})"
        )
        text = f"{name}: " + ", ".join(parts)
        if self.metric.fairness_score and any(x.changed for x in self.tests):
            text += " (1 means fair, so a decrease is more bias)"
        return text + "."

    def row(self) -> dict[str, object]:
        """The ``trends_<group>.csv`` row (the report's contract)."""
        s, t = self.shift, self.trend
        missing = math.nan
        return {
            "group": self.group,
            "arch": self.arch,
            "metric": self.metric.name,
            "shift_verdict": s.verdict if s else "",
            "shift_estimate": s.interval.estimate if s else missing,
            "shift_low": s.interval.low if s else missing,
            "shift_high": s.interval.high if s else missing,
            "shift_p_adjusted": s.p_adjusted if s else missing,
            "shift_detectable": s.detectable if s else missing,
            "trend_verdict": t.verdict,
            "trend_slope": t.interval.estimate,
            "trend_low": t.interval.low,
            "trend_high": t.interval.high,
            "trend_p_adjusted": t.p_adjusted,
            "trend_detectable": t.detectable,
            "margin": self.metric.margin if self.metric.margin is not None else "",
            "n_seeds": self.n_seeds,
            "seeds": " ".join(map(str, sorted(set(t.seeds) | set(s.seeds if s else [])))),
            "generations": " ".join(map(str, self.generations)),
            "family_size": t.family_size,
            "method": method_line(),
            "sentence": self.sentence(),
        }


TRENDS_CSV_COLUMNS = (
    "group", "arch", "metric", "shift_verdict", "shift_estimate", "shift_low", "shift_high", "shift_p_adjusted",
    "shift_detectable", "trend_verdict", "trend_slope", "trend_low", "trend_high", "trend_p_adjusted",
    "trend_detectable", "margin", "n_seeds", "seeds", "generations", "family_size", "method", "sentence",
)  # fmt: skip


def method_line() -> str:
    """The method in one line, for every table the verdicts appear in."""
    return (
        f"per-seed contrasts, 95% t-interval and t-test over seeds; TOST against the catalogue's margin; "
        f"{FAMILY_METHOD_NAME} correction over the report's family at {ALPHA:g} (the verdicts follow the adjusted "
        "p-values; the intervals are each test's own, not widened for the family, so one may exclude 0 while "
        "its adjusted p stays above the level)"
    )


def _span(generations: Sequence[int]) -> str:
    return f"generations {min(generations)}-{max(generations)}" if generations else "no generations"


def _complete(members: Sequence[Run]) -> tuple[list[Run], list[str]]:
    """The runs that enter verdicts (finished ones) and a note per run left out."""
    kept = [r for r in members if r.finished]
    notes = [
        f"{r.path} (seed {r.seed}) is unfinished (last generation logged: {max(r.generations, default=0)}): left "
        "out of the verdicts, so every seed's contrasts cover the same generations"
        for r in members
        if not r.finished
    ]
    notes += [
        f"{copy} repeats seed {r.seed} of {r.path} with identical metrics: counted once"
        for r in members
        for copy in r.copies
    ]
    return kept, notes


def _at_chance(group: str, members: Sequence[Run], arch: str) -> list[str]:
    """A note when ``arch`` was not above chance in some run and generation of ``group`` (the loop's ``CHANCE_P``; runs
    written before it was logged have none)."""
    found = [
        f"seed {run.seed} generation {g}"
        for run in members
        for (g, a, m), p in sorted(run.metrics.items())
        if a == arch and m == CHANCE_P and p >= CHANCE_ALPHA
    ]
    if not found:
        return []
    return [
        f"{arch} of {group} is not above chance (binomial p >= {CHANCE_ALPHA:g} against always guessing the commonest class) "
        f"in {len(found)} fit(s) ({', '.join(found)}): its bias metrics there describe a classifier that learned "
        "nothing (one answer for every subgroup reads as fair)"
    ]


def metric_verdicts(
    runs: Iterable[Run],
    classifier_metrics: Sequence[str] = metrics_of("classifier"),
    generator_metrics: Sequence[str] = metrics_of("generator"),
) -> list[MetricVerdict]:
    """Shift and trend verdicts of every group, arch and metric logged, corrected as one family.

    Args:
        runs: loaded runs (one per seed and group: ``load_runs`` refuses repeats); unfinished runs are left
            out of the verdicts, with a note.
        classifier_metrics: catalogue names judged per classifier arch (those logged).
        generator_metrics: catalogue names judged for the generator (those logged).

    Returns:
        Verdicts ordered by group, then classifier archs in catalogue order, then the generator.
    """
    found: list[MetricVerdict] = []
    for group, members in by_group(runs).items():
        complete, notes = _complete(members)
        archs = list(dict.fromkeys(a for run in members for a in run.archs))
        chance = {a: _at_chance(group, complete, a) for a in archs}
        wanted = [(a, m) for a in archs for m in classifier_metrics]
        wanted += [(GENERATOR_ARCH, m) for m in generator_metrics]
        for arch, name in wanted:
            entry = spec(name)
            per_seed: list[tuple[int, dict[Kind, float], list[int]]] = []
            for run in complete:
                series = {g: v for (g, a, m), v in run.metrics.items() if a == arch and m == name}
                if series:
                    per_seed.append((run.seed, seed_contrasts(series, entry.source), sorted(series)))
            if not per_seed:
                continue
            seeds = [s for s, _, _ in per_seed]
            generations = sorted({g for _, _, gens in per_seed for g in gens})
            shift = None
            extra = notes + chance.get(arch, [])
            if entry.source == "classifier":
                shift = make_test("shift", [c["shift"] for _, c, _ in per_seed], seeds, entry.margin)
                if [g for g in generations if g >= 1] == [1]:
                    extra.append(
                        "generated data in generation 1 only: the shift is the raw generation 0 -> 1 difference"
                    )
            trend = make_test("trend", [c["trend"] for _, c, _ in per_seed], seeds, entry.margin)
            found.append(MetricVerdict(group, arch, entry, shift, trend, generations, extra))
    correct_family([t for v in found for t in v.tests])
    return found


def judge_series(
    series: Sequence[dict[int, float]], source: Literal["classifier", "generator"] = "classifier",
    margin: float | None = None,
) -> tuple[Contrast | None, Contrast]:  # fmt: skip
    """Shift and trend tests of per-seed series without run directories (used by the calibration), corrected
    as their own family.

    Args:
        series: per seed, value by generation.
        source: ``generator`` series get no shift.
        margin: the equivalence margin, or None.
    """
    contrasts = [seed_contrasts(s, source) for s in series]
    seeds = list(range(len(series)))
    shift = (
        make_test("shift", [c["shift"] for c in contrasts], seeds, margin) if source == "classifier" else None
    )
    trend = make_test("trend", [c["trend"] for c in contrasts], seeds, margin)
    correct_family([t for t in (shift, trend) if t is not None])
    return shift, trend

"""Shift and trend verdicts: per-seed contrasts, the tests over seeds and the family correction, each checked
against a computation written out here."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from selfloop.analysis.runs import Run
from selfloop.analysis.verdicts import (
    NO_CHANGE,
    NOT_JUDGED,
    correct_family,
    detectable_change,
    holm,
    judge_series,
    make_test,
    metric_verdicts,
    seed_contrasts,
)


def run(seed: int, metrics: dict, group: str = "ColoredDigits-00000000", finished: bool = True) -> Run:
    return Run(
        path=Path(f"/runs/{seed}"), config={"loop": {"archs": ["lenet"]}}, seed=seed, group=group,
        group_config={}, metrics=metrics, completed=[], finished=finished,
    )  # fmt: skip


def test_the_shift_is_the_post_line_at_generation_one_minus_generation_zero() -> None:
    series = {0: 0.05, 1: 0.021, 2: 0.019, 3: 0.024, 4: 0.018}
    slope, intercept = np.polyfit([1, 2, 3, 4], [0.021, 0.019, 0.024, 0.018], 1)
    contrasts = seed_contrasts(series, "classifier")
    assert contrasts["shift"] == pytest.approx(slope + intercept - 0.05)
    assert contrasts["trend"] == pytest.approx(slope)
    # A steady trend through every generation is a trend, not a shift: the post line meets generation 0's
    # value extended by one step... and the shift is that one step only when the trend starts at 0.
    steady = seed_contrasts({g: 1.0 + 0.5 * g for g in range(6)}, "classifier")
    assert steady["trend"] == pytest.approx(0.5) and steady["shift"] == pytest.approx(0.5)
    from_one = seed_contrasts({0: 1.0, **{g: 1.0 + 0.5 * (g - 1) for g in range(1, 6)}}, "classifier")
    assert from_one["trend"] == pytest.approx(0.5) and from_one["shift"] == pytest.approx(0.0, abs=1e-12)


def test_one_generated_generation_gives_the_raw_difference_and_no_trend() -> None:
    contrasts = seed_contrasts({0: 0.3, 1: 0.5}, "classifier")
    assert contrasts["shift"] == pytest.approx(0.2) and math.isnan(contrasts["trend"])


def test_generator_series_have_a_trend_and_no_shift() -> None:
    contrasts = seed_contrasts({1: 0.1, 2: 0.2, 3: 0.4}, "generator")
    assert math.isnan(contrasts["shift"]) and contrasts["trend"] == pytest.approx(0.15)


def test_p_values_and_equivalence_against_the_formulas() -> None:
    x = np.array([0.002, -0.001, 0.0035, 0.0005, 0.001])
    test = make_test("trend", list(x), [0, 1, 2, 3, 4], margin=0.01)
    n, mean, se = len(x), x.mean(), x.std(ddof=1) / math.sqrt(len(x))
    assert test.p == pytest.approx(2 * stats.t.sf(abs(mean / se), n - 1))
    # TOST: the larger of the two one-sided p-values against -m and +m.
    p_low = stats.t.sf((mean + 0.01) / se, n - 1)
    p_high = stats.t.cdf((mean - 0.01) / se, n - 1)
    assert test.p_equivalence == pytest.approx(max(p_low, p_high))
    half = stats.t.ppf(0.975, n - 1) * se
    assert (test.interval.low, test.interval.high) == pytest.approx((mean - half, mean + half))


def test_holm_correction_over_the_whole_family() -> None:
    tests = [
        make_test("trend", list(v), [0, 1, 2], None)
        for v in ([1.0, 1.1, 0.9], [0.1, -0.2, 0.15], [3, 3.2, 2.9])
    ]
    raw = [t.p for t in tests]
    correct_family(tests)
    assert [t.p_adjusted for t in tests] == pytest.approx(multipletests(raw, method="holm")[1], rel=1e-12)
    assert {t.family_size for t in tests} == {3}


def test_holm_equals_statsmodels_with_ties_and_the_cap() -> None:
    p = [0.01, 0.04, 0.03, 0.04, 0.5, 0.0001, 0.9, 0.03]
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1], rel=1e-12)


def test_detectable_change_has_eighty_percent_power() -> None:
    sd, n, alpha = 0.004, 5, 0.01
    delta = detectable_change(sd, n, alpha)
    critical = stats.t.ppf(1 - alpha / 2, n - 1)
    noncentrality = delta / (sd / math.sqrt(n))
    power = stats.nct.sf(critical, n - 1, noncentrality) + stats.nct.cdf(-critical, n - 1, noncentrality)
    assert power == pytest.approx(0.8, abs=1e-3)


def test_too_few_seeds_and_zero_width_intervals_cannot_be_judged() -> None:
    two = make_test("trend", [0.1, 0.2], [0, 1], None)
    assert two.verdict == NOT_JUDGED and "at least 3" in two.reason
    flat = make_test("shift", [-0.03, -0.03, -0.03], [0, 1, 2], 0.01)
    assert flat.verdict == NOT_JUDGED and "zero-width" in flat.reason
    correct_family([two, flat])  # nothing judged: nothing to correct, no error
    assert math.isnan(two.p_adjusted)


def test_a_shift_once_then_flat_gives_a_shift_and_an_equivalence_or_no_trend() -> None:
    rng = np.random.default_rng(3)
    series = [{g: (0.05 if g == 0 else 0.02) + rng.normal(0, 0.002) for g in range(7)} for _ in range(5)]
    shift, trend = judge_series(series, margin=0.01)
    assert shift is not None and shift.verdict == "decreases"
    assert trend.verdict == "unchanged within ±0.01"
    assert "Holm-adjusted p" in shift.evidence() and "equivalence p" in trend.evidence()


def test_no_detectable_change_always_states_the_detectable_effect() -> None:
    slopes = [0.3, -0.2, 0.1, -0.25]  # mean -0.0125 against a spread of 0.26: nothing to detect
    series = [{g: s * g for g in range(1, 5)} for s in slopes]
    _, trend = judge_series(series, source="generator", margin=None)
    assert trend.verdict == NO_CHANGE
    assert trend.detectable == pytest.approx(detectable_change(float(np.std(slopes, ddof=1)), 4, 0.05))
    assert "detectable with 80% power: ±" in trend.evidence()


def test_metric_verdicts_of_runs_leave_unfinished_runs_out_and_say_so() -> None:
    rng = np.random.default_rng(1)
    runs = []
    for seed in range(5):
        metrics = {}
        for g in range(6):
            metrics[g, "lenet", "md"] = (0.05 if g == 0 else 0.02) + rng.normal(0, 0.002)
            metrics[g, "lenet", "meo"] = 0.9 - 0.03 * g + rng.normal(0, 0.002)
            if g:
                metrics[g, "generator", "u_t"] = 0.1 + 0.05 * g + rng.normal(0, 0.003)
        runs.append(run(seed, metrics))
    runs.append(run(9, {(0, "lenet", "md"): 0.9, (1, "lenet", "md"): 0.0}, finished=False))
    found = {(v.arch, v.metric.name): v for v in metric_verdicts(runs)}
    assert set(found) == {("lenet", "md"), ("lenet", "meo"), ("generator", "u_t")}
    md = found["lenet", "md"]
    assert md.shift.verdict == "decreases" and md.trend.verdict != "decreases" and md.n_seeds == 5
    assert any("/runs/9 (seed 9) is unfinished" in note for note in md.notes)
    meo = found["lenet", "meo"]
    assert meo.trend.verdict == "decreases" and "1 means fair" in meo.sentence()
    u = found["generator", "u_t"]
    assert u.shift is None and u.trend.verdict == "increases"
    # One family: every judged test of the report, the equivalence tests included.
    sizes = {t.family_size for v in found.values() for t in v.tests}
    assert sizes == {2 * (2 + 2 + 1)}
    row = md.row()
    assert row["shift_verdict"] == "decreases" and row["n_seeds"] == 5 and "Holm" in row["method"]
    assert row["generations"] == "0 1 2 3 4 5" and row["margin"] == 0.01
    assert md.sentence().startswith("md of lenet: adding generated data lowers it once (generation 0 -> 1: ")


def test_a_classifier_not_above_chance_in_some_fit_is_noted_on_its_verdicts_only() -> None:
    runs = []
    for seed in range(3):
        metrics = {}
        for g in range(4):
            for arch in ("lenet", "alexnet"):
                metrics[g, arch, "md"] = 0.02 + 0.001 * seed + 0.0001 * g
                # alexnet guessed one class in seed 1's generation 2 (p = 0.4); every other fit learned.
                metrics[g, arch, "acc_chance_p"] = 0.4 if (arch, seed, g) == ("alexnet", 1, 2) else 1e-9
        runs.append(run(seed, metrics))
    found = {v.arch: v for v in metric_verdicts(runs)}
    assert found["lenet"].notes == []
    assert found["alexnet"].notes == [
        "alexnet of ColoredDigits-00000000 is not above chance (binomial p >= 0.01 against always guessing the commonest class) in 1 fit(s) "
        "(seed 1 generation 2): its bias metrics there describe a classifier that learned nothing (one answer "
        "for every subgroup reads as fair)"
    ]

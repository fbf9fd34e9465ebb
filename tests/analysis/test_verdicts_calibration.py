"""Calibration of the shift and trend verdicts on simulated series with known answers (fixed seeds).

Each series is 5 seeds x 7 generations (0..6) of noise with standard deviation 1 around a seed effect (an
offset per seed, which the per-seed contrasts remove), plus the planted effect. The rates asserted are the
ones a reviewer needs: a one-time step is a shift and not a trend; a trend from generation 1 on is found as
often as the t-test's power says; pure noise over a family of 60 verdicts gives a false "increases" /
"decreases" in no more than the family-wise 5% (plus simulation error).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from selfloop.analysis.verdicts import Contrast, correct_family, make_test, seed_contrasts

SEEDS, GENERATIONS, REPEATS = 5, 7, 400


def series(rng: np.random.Generator, step: float = 0.0, slope: float = 0.0) -> list[dict[int, float]]:
    out = []
    for _ in range(SEEDS):
        offset = rng.normal(0, 2.0)
        out.append(
            {g: offset + step * (g >= 1) + slope * max(g - 1, 0) + rng.normal() for g in range(GENERATIONS)}
        )
    return out


def contrasts_of(data: list[dict[int, float]], margin: float | None = None) -> tuple[Contrast, Contrast]:
    contrasts = [seed_contrasts(s, "classifier") for s in data]
    seeds = list(range(len(data)))
    return (
        make_test("shift", [c["shift"] for c in contrasts], seeds, margin),
        make_test("trend", [c["trend"] for c in contrasts], seeds, margin),
    )


def test_a_one_time_step_is_a_shift_and_not_a_trend() -> None:
    rng = np.random.default_rng(20261206)
    shift_found = trend_found = 0
    for _ in range(REPEATS):
        shift, trend = contrasts_of(series(rng, step=4.0))
        correct_family([shift, trend])
        shift_found += shift.verdict == "increases"
        trend_found += trend.changed
    # Measured: 396/400 shifts found, 21/400 trends (5%, the test's level).
    assert shift_found / REPEATS >= 0.95
    assert 1 - trend_found / REPEATS >= 0.93


def test_a_trend_from_generation_one_is_found_at_the_power_theory_gives() -> None:
    rng = np.random.default_rng(7)
    slope = 0.5
    found = shifts = 0
    for _ in range(REPEATS):
        shift, trend = contrasts_of(series(rng, slope=slope))
        correct_family([shift, trend])
        found += trend.verdict == "increases"
        shifts += shift.changed
    # Per seed the slope over generations 1..6 has sd 1/sqrt(Sxx), Sxx = 17.5; over 5 seeds the t-test's
    # noncentrality is slope / (sd / sqrt(5)). Holm tests the smaller p-value of the two at alpha / 2 and the
    # larger at alpha, so the power lies between the t-test's at those two levels.
    noncentrality = slope / (1 / math.sqrt(17.5) / math.sqrt(SEEDS))

    def power(alpha: float) -> float:
        critical = stats.t.ppf(1 - alpha / 2, SEEDS - 1)
        return float(stats.nct.sf(critical, SEEDS - 1, noncentrality))

    tolerance = 3 * math.sqrt(0.25 / REPEATS)  # three binomial standard errors
    # Measured: 339/400 (85%); theory 82% at alpha / 2 and 93% at alpha.
    assert power(0.025) - tolerance <= found / REPEATS <= power(0.05) + tolerance
    # The trend starts at generation 1, so there is no step: the shift stays near its 5% level.
    assert shifts / REPEATS <= 0.05 + tolerance


def test_a_global_null_over_sixty_verdicts_keeps_the_family_wise_rate() -> None:
    rng = np.random.default_rng(11)
    families = 300
    any_false = 0
    for _ in range(families):
        family = []
        shared = [rng.normal(size=GENERATIONS) for _ in range(SEEDS)]
        for metric in range(30):
            data = series(rng)
            if metric % 2:  # half the metrics move together, as MD, MEO and DI of one run do
                data = [{g: v + shared[s][g] for g, v in d.items()} for s, d in enumerate(data)]
            family.extend(contrasts_of(data, margin=0.5 if metric % 3 == 0 else None))
        correct_family(family)
        any_false += any(t.changed for t in family)
    # Measured: 12/300 families (4%) with any false verdict; uncorrected t-tests give about 95%.
    assert any_false / families <= 0.07


def test_without_the_correction_the_same_family_would_be_wrong_almost_always() -> None:
    # The check above can fail: the uncorrected decisions on the same kind of data exceed it by far.
    rng = np.random.default_rng(11)
    families, any_false = 50, 0
    for _ in range(families):
        family = [t for _ in range(30) for t in contrasts_of(series(rng))]
        any_false += any(t.p < 0.05 for t in family)
    assert any_false / families > 0.5


@pytest.mark.parametrize("margin", [1.0])
def test_unchanged_needs_an_interval_inside_the_margin(margin: float) -> None:
    # No effect and a margin of one noise sd per generation: the slope's interval is tight enough (sd of a
    # per-seed slope 0.24) for the equivalence test to say "unchanged" in most series, never "increases".
    rng = np.random.default_rng(5)
    verdicts = []
    for _ in range(200):
        shift, trend = contrasts_of(series(rng), margin=margin)
        correct_family([shift, trend])
        verdicts.append(trend.verdict)
    assert verdicts.count(f"unchanged within ±{margin:g}") / len(verdicts) >= 0.8
    assert verdicts.count("increases") + verdicts.count("decreases") <= 0.05 * len(verdicts) + 6

"""The leave-one-seed-out comparison: its predictions, its verdicts and their sentences on designed runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers.tidy_rows import metric_rows, quality_rows

from selfloop.analysis.eq6_comparison import (
    compare_bias_models,
    cross_validated_predictions,
    reduction,
)
from selfloop.analysis.eq6_transitions import transitions
from selfloop.analysis.seed_stats import SeedInterval


def runs(factor, seeds: int = 5, generations: int = 6, noise: float = 0.01, seed: int = 0) -> list[dict]:
    """One arch whose MD follows ``B_t+1 = factor(t, q, u, qbar, ubar) B_t (1 + noise eps)``.

    q_t ~ U(0.6, 0.95) and u_t ~ U(0, 0.3) per seed and generation; qbar, ubar their means over seeds.
    """
    rng = np.random.default_rng(seed)
    q, u = rng.uniform(0.6, 0.95, (seeds, generations)), rng.uniform(0.0, 0.3, (seeds, generations))
    rows = []
    for s in range(seeds):
        rows += quality_rows(s, q[s], u[s])
        b = [0.1]
        for t in range(generations):
            a = factor(t, q[s, t], u[s, t], q[:, t].mean(), u[:, t].mean())
            b.append(a * b[-1] * (1 + noise * rng.standard_normal()))
        rows += metric_rows(s, "lenet", "md", b)
    return rows


def test_each_seed_is_predicted_from_the_other_seeds() -> None:
    """Noise-free B_t+1 = g_t B_t with g_t the same for every seed: generation effects fitted on the other
    seeds predict every held-out transition exactly, while a constant factor cannot."""
    g = [1.5, 0.8, 1.2, 1.0, 0.9]
    obs = transitions(runs(lambda t, q, u, qbar, ubar: g[t], generations=5, noise=0.0))
    predicted = cross_validated_predictions(obs)
    assert predicted["generation effects"] == pytest.approx(obs.b1, rel=1e-9)
    assert predicted["no change"] == pytest.approx(obs.b0)
    # The constant factor of the other seeds is the same ratio of sums for every fold here.
    assert not np.allclose(predicted["constant factor"], obs.b1)


def test_eq6_is_credited_when_q_and_u_drive_the_bias() -> None:
    c = compare_bias_models(runs(lambda t, q, u, qbar, ubar: 0.8 * (1 + 1.0 * (1 - q) + 1.5 * u)))
    assert c.preferred == "eq. 6" and c.credits_terms and len(c.seeds) == 5 and c.n_transitions == 30
    assert c.eq6_vs_generation.low > 0 and c.terms_vs_generation.low > 0
    assert c.rmse["eq. 6"] < 0.5 * c.rmse["generation effects"]
    assert c.verdict.startswith(
        "q_t and u_t improve the one-step prediction of md beyond generation effects: predicting each seed from "
        "the other seeds, eq. 6 lowers the held-out MSE of a factor per transition by "
    )
    assert "(95% t-interval over 5 seeds)" in c.verdict
    row = c.row()
    assert row.preferred == "eq. 6" and row.n_seeds == 5 and row.seeds == "0 1 2 3 4"
    assert row.eq6_vs_generation_low == c.eq6_vs_generation.low and row.method == "t-interval"


def test_bias_that_grows_then_shrinks_with_the_generation_is_not_credited_to_q_and_u() -> None:
    """Bias doubles for three generations, then halves, in every seed alike: generation effects."""
    c = compare_bias_models(runs(lambda t, q, u, qbar, ubar: 2.0 if t < 3 else 0.5))
    assert c.preferred == "generation effects" and not c.credits_terms
    assert c.generation_vs_constant.low > 0 and c.eq6_vs_generation.high < 0
    assert c.verdict.startswith("A_t of md changes with the generation: a factor per transition lowers")
    assert "q_t and u_t are not credited, as they must beat a factor per transition" in c.verdict


def test_q_and_u_that_matter_next_to_a_special_first_transition() -> None:
    """A jump at the first transition that q_t / u_t do not explain, and their effect within each
    transition: q_t / u_t are credited, but eq. 6 alone is not the model."""

    def factor(t, q, u, qbar, ubar):
        return (2.0 if t == 0 else 1.0) * (1 + 1.5 * (qbar - q) + 2.0 * (u - ubar))

    c = compare_bias_models(runs(factor))
    assert c.preferred == "eq. 6 + generation effects" and c.credits_terms
    assert c.terms_vs_generation.low > 0 and c.eq6_vs_generation.sign <= 0
    assert "but eq. 6 without that factor does not beat it" in c.verdict


def test_q_and_u_that_only_trend_with_the_generation_cannot_be_told_from_it() -> None:
    rows = runs(lambda t, q, u, qbar, ubar: 1.0 + 0.1 * t)
    trend = {"gen_label_acc_kept": lambda g: 0.95 - 0.05 * g, "u_t": lambda g: 0.02 * g}
    rows = [{**r, "value": trend[r["metric"]](r["generation"])} if r["metric"] in trend else r for r in rows]
    c = compare_bias_models(rows)
    assert (
        not c.credits_terms
        and "vary only with the generation, so their effect cannot be told from it" in c.verdict
    )


def test_reduction_states_the_mse_reduction_of_a_log_gain() -> None:
    interval = SeedInterval(math.log(2), 0.0, math.log(4), 5, 0.95, "t-interval")
    assert reduction(interval) == "50% [0%, 75%] (95% t-interval over 5 seeds)"

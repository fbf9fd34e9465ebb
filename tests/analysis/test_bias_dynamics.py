"""The eq. 6 fit, against closed forms and runs simulated from a known A_t."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers.tidy_rows import metric_rows, quality_rows

from selfloop.analysis.bias_dynamics import fit_bias_dynamics, simulate_bias_dynamics

# Eq. 6 fit ------------------------------------------------------------------------------------------------

TRUE_C = {"lenet": 1.05, "resnet50": 0.9}
KAPPA_Q, KAPPA_U = 0.8, 1.5


def simulated_rows(
    seeds=(0, 1, 2), generations: int = 6, noise: float = 0.01, constant_q: float | None = None, c=TRUE_C
) -> list[dict]:
    """Tidy rows of runs whose MD follows eq. 6 with known parameters, times (1 + noise * N(0, 1))."""
    rng = np.random.default_rng(123)
    rows = []
    for seed in seeds:
        q = (
            np.full(generations, constant_q)
            if constant_q is not None
            else rng.uniform(0.6, 0.95, generations)
        )
        u = rng.uniform(0.0, 0.3, generations)
        rows += quality_rows(seed, q, u)
        for arch, c_m in c.items():
            b = simulate_bias_dynamics(c_m, 0.1, q, u, KAPPA_Q, KAPPA_U)
            rows += metric_rows(seed, arch, "md", b * (1 + noise * rng.standard_normal(len(b))))
    return rows


def test_simulate_follows_eq6() -> None:
    b = simulate_bias_dynamics(0.9, 0.2, q=[0.5, 1.0], u=[0.1, 0.0], kappa_q=0.4, kappa_u=2.0)
    assert b.tolist() == pytest.approx([0.2, 0.2 * 0.9 * (1 + 0.2 + 0.2), 0.2 * 0.9 * 1.4 * 0.9])


def test_fit_recovers_exact_parameters_without_noise() -> None:
    fit = fit_bias_dynamics(simulated_rows(noise=0.0), n_bootstrap=10)
    for arch, c in TRUE_C.items():
        assert fit.parameter(f"c[{arch}]").estimate == pytest.approx(c, abs=1e-6)
    assert fit.parameter("kappa_Q").estimate == pytest.approx(KAPPA_Q, abs=1e-6)
    assert fit.parameter("kappa_U").estimate == pytest.approx(KAPPA_U, abs=1e-6)
    assert fit.rmse_in_sample == pytest.approx(0.0, abs=1e-8)


def test_fit_recovers_known_parameters_with_noise() -> None:
    """Tolerance: 1% multiplicative noise on B, 3 seeds x 6 generations x 2 archs -> c within 0.03, kappas
    within 0.15 (about 10% of their size)."""
    fit = fit_bias_dynamics(simulated_rows(), n_bootstrap=50, seed=1)
    assert fit.archs == ["lenet", "resnet50"] and fit.seeds == [0, 1, 2] and fit.n_transitions == 36
    for arch, c in TRUE_C.items():
        p = fit.parameter(f"c[{arch}]")
        assert p.estimate == pytest.approx(c, abs=0.03) and p.identifiable
        assert p.low <= p.estimate <= p.high
    for name, true in (("kappa_Q", KAPPA_Q), ("kappa_U", KAPPA_U)):
        p = fit.parameter(name)
        assert p.estimate == pytest.approx(true, abs=0.15) and p.identifiable
        assert p.low <= p.estimate <= p.high
    # A_t per arch and transition: close to the true value at the seeds' mean q, u, and all > 1 here.
    assert len(fit.a_t) == 12
    for row in fit.a_t:
        true_a = TRUE_C[row["arch"]] * (1 + KAPPA_Q * (1 - row["q"]) + KAPPA_U * row["u"])
        assert row["a"] == pytest.approx(true_a, abs=0.03)
        assert row["a_low"] <= row["a"] <= row["a_high"]
    # Three seeds are too few for the held-out comparison's bootstrap over seeds: no verdict.
    c = fit.comparison
    assert c.preferred is None and c.fit_until == 4 and c.test_generations == [5, 6]
    assert "cannot be judged" in fit.verdict and "3 seeds" in fit.verdict
    assert "| kappa_Q |" in fit.to_markdown() and fit.verdict in fit.to_markdown()
    # Seeded bootstrap: the same seed gives the same intervals.
    again = fit_bias_dynamics(simulated_rows(), n_bootstrap=50, seed=1)
    assert [p.low for p in again.parameters] == [p.low for p in fit.parameters]


def test_eq6_is_preferred_when_it_generated_the_runs() -> None:
    fit = fit_bias_dynamics(simulated_rows(seeds=range(6)), n_bootstrap=0)
    c = fit.comparison
    assert c.preferred == "eq. 6" and c.n_test == 6 * 2 * 2 and len(c.seeds) == 6
    assert c.rmse["eq. 6"] < 0.2 * c.rmse["constant factor"]
    assert c.eq6_vs_constant.low > 0 and c.eq6_vs_constant.n == 6
    assert fit.verdict.startswith("q_t and u_t explain the dynamics of md beyond a constant factor per arch")
    assert "95% bootstrap-t interval (2000 resamples of seeds) over 6 seeds" in fit.verdict
    row = fit.comparison_rows()[0]
    assert row["preferred"] == "eq. 6" and row["n_seeds"] == 6 and row["eq6_vs_constant_low"] > 0


def test_constant_quality_is_not_identifiable_and_merges_into_c() -> None:
    fit = fit_bias_dynamics(simulated_rows(noise=0.0, constant_q=0.75), n_bootstrap=5)
    kq = fit.parameter("kappa_Q")
    assert not kq.identifiable and kq.estimate == 0.0 and "merges into c_M" in kq.note
    for arch, c in TRUE_C.items():  # c absorbs the constant data-quality term
        assert fit.parameter(f"c[{arch}]").estimate == pytest.approx(c * (1 + KAPPA_Q * 0.25), abs=1e-6)
    assert fit.parameter("kappa_U").estimate == pytest.approx(KAPPA_U / (1 + KAPPA_Q * 0.25), abs=1e-6)


def test_meo_is_turned_into_a_bias() -> None:
    rows = [
        {**r, "metric": "meo", "value": 1 - r["value"]} if r["metric"] == "md" else r
        for r in simulated_rows(noise=0.0)
    ]
    fit = fit_bias_dynamics(rows, metric="meo", n_bootstrap=0)
    assert fit.parameter("c[lenet]").estimate == pytest.approx(TRUE_C["lenet"], abs=1e-6)
    assert math.isnan(fit.parameter("c[lenet]").low)


def test_verdict_says_when_the_conjecture_does_not_fit() -> None:
    # Bias doubles for four generations, then halves: a fit on the growth predicts more growth.
    rows = []
    rng = np.random.default_rng(0)
    for seed in range(5):
        for g, b in enumerate([0.05, 0.1, 0.2, 0.4, 0.2, 0.1]):
            rows += metric_rows(seed, "lenet", "md", [b * (1 + 0.01 * seed)], first_generation=g)
            if g:
                rows += quality_rows(seed, [rng.uniform(0.7, 0.9)], [rng.uniform(0, 0.2)], first_generation=g)
    fit = fit_bias_dynamics(rows, n_bootstrap=5)
    c = fit.comparison
    assert c.rmse["constant factor"] > c.rmse["no change"] and c.rmse["eq. 6"] > c.rmse["no change"]
    assert c.preferred == "no change" and c.constant_vs_none.high < 0
    assert fit.verdict.startswith("No model beats no change (A = 1) for md")


def test_too_few_generations_and_bad_tables() -> None:
    fit = fit_bias_dynamics(simulated_rows(seeds=range(5), generations=2), n_bootstrap=5)
    assert fit.comparison.preferred is None and fit.verdict.startswith("Whether q_t / u_t explain")
    assert "cannot be judged: holding out the last 2 generations leaves no transition" in fit.verdict
    with pytest.raises(ValueError, match="'u_t'"):
        fit_bias_dynamics([r for r in simulated_rows() if r["metric"] != "u_t"])
    no_u = fit_bias_dynamics(
        [r for r in simulated_rows(noise=0.0) if r["metric"] != "u_t"], u_metric=None, n_bootstrap=0
    )
    assert not no_u.parameter("kappa_U").identifiable
    with pytest.raises(ValueError, match="one experiment"):
        fit_bias_dynamics([{**r, "group": "a" if r["seed"] else "b"} for r in simulated_rows()])

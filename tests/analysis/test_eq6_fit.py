"""The eq. 6 fit, against closed forms and runs simulated from a known A_t."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from helpers.tidy_rows import metric_rows, quality_rows

from selfloop.analysis.eq6_baselines import constant_factors
from selfloop.analysis.eq6_fit import attenuation, fit_eq6, simulate_bias_dynamics
from selfloop.analysis.eq6_transitions import transitions

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
    fit = fit_eq6(transitions(simulated_rows(noise=0.0)), n_bootstrap=10)
    for arch, c in TRUE_C.items():
        assert fit.parameter(f"c[{arch}]").estimate == pytest.approx(c, abs=1e-6)
    assert fit.parameter("kappa_Q").estimate == pytest.approx(KAPPA_Q, abs=1e-6)
    assert fit.parameter("kappa_U").estimate == pytest.approx(KAPPA_U, abs=1e-6)
    assert fit.rmse_in_sample == pytest.approx(0.0, abs=1e-8)


def test_fit_recovers_known_parameters_with_noise() -> None:
    """Tolerance: 1% multiplicative noise on B, 3 seeds x 6 generations x 2 archs -> c within 0.03, kappas
    within 0.15 (about 10% of their size)."""
    fit = fit_eq6(transitions(simulated_rows()), n_bootstrap=50, seed=1)
    assert fit.archs == ["lenet", "resnet50"] and fit.seeds == [0, 1, 2] and fit.n_transitions == 36
    for arch, c in TRUE_C.items():
        p = fit.parameter(f"c[{arch}]")
        assert p.estimate == pytest.approx(c, abs=0.03) and p.identifiable
        assert p.low <= p.estimate <= p.high
    for name, true in (("kappa_Q", KAPPA_Q), ("kappa_U", KAPPA_U)):
        p = fit.parameter(name)
        assert p.estimate == pytest.approx(true, abs=0.15) and p.identifiable
        assert p.low <= p.estimate <= p.high
    # A_t per arch and transition: close to the true value at the seeds' mean q, u.
    assert len(fit.a_t) == 12
    for row in fit.a_t:
        true_a = TRUE_C[row.arch] * (1 + KAPPA_Q * (1 - row.q) + KAPPA_U * row.u)
        assert row.a == pytest.approx(true_a, abs=0.03)
        assert row.a_low <= row.a <= row.a_high
    # Seeded bootstrap: the same seed gives the same intervals.
    again = fit_eq6(transitions(simulated_rows()), n_bootstrap=50, seed=1)
    assert [p.low for p in again.parameters] == [p.low for p in fit.parameters]


def test_constant_quality_is_not_identifiable_and_merges_into_c() -> None:
    fit = fit_eq6(transitions(simulated_rows(noise=0.0, constant_q=0.75)), n_bootstrap=5)
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
    fit = fit_eq6(transitions(rows, metric="meo"), n_bootstrap=0)
    assert fit.parameter("c[lenet]").estimate == pytest.approx(TRUE_C["lenet"], abs=1e-6)
    assert math.isnan(fit.parameter("c[lenet]").low)


def test_bad_tables_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="'u_t'"):
        transitions([r for r in simulated_rows() if r["metric"] != "u_t"])
    no_u = fit_eq6(transitions([r for r in simulated_rows(noise=0.0) if r["metric"] != "u_t"], u_metric=None))
    assert (
        not no_u.parameter("kappa_U").identifiable
        and no_u.parameter("kappa_U").note == "no u_t metric given; fixed at 0"
    )
    with pytest.raises(ValueError, match="one experiment"):
        transitions([{**r, "group": "a" if r["seed"] else "b"} for r in simulated_rows()])
    zero = [{**r, "value": 0.0} if r["metric"] == "md" else r for r in simulated_rows()]
    with pytest.raises(ValueError, match="md is 0 in every transition"):
        fit_eq6(transitions(zero))


def test_measurement_noise_attenuates_the_factor_by_the_reliability() -> None:
    """A true factor of 1 (B = 0.1 in every generation) measured with noise sd 0.05, half the RMS of B:
    least squares gives 0.1^2 / (0.1^2 + 0.05^2) = 0.8, and ``attenuation`` estimates that shrinkage from
    the known measurement variance. 40 seeds x 50 generations: sd of the estimate about 0.01."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(40):
        rows += quality_rows(seed, rng.uniform(0.6, 0.9, 50), rng.uniform(0, 0.3, 50))
        rows += metric_rows(seed, "lenet", "md", 0.1 + 0.05 * rng.standard_normal(51))
    obs = transitions(rows)
    c = constant_factors(obs)[0]
    assert c == pytest.approx(0.8, abs=0.03)
    noisy = replace(obs, var_b0=np.full(len(obs), 0.05**2))
    assert attenuation(noisy) == pytest.approx(0.8, abs=0.03)
    assert c / attenuation(noisy) == pytest.approx(1.0, abs=0.03)
    assert math.isnan(attenuation(obs))

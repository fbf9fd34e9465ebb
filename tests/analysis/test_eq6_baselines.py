"""The models eq. 6 is compared with, against runs simulated from known generation effects."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers.tidy_rows import metric_rows, quality_rows

from selfloop.analysis.eq6_baselines import (
    generation_factors,
    solve_with_generations,
    within_generation_terms,
)
from selfloop.analysis.eq6_fit import fit_eq6
from selfloop.analysis.eq6_transitions import transitions


def test_generation_effects_recover_a_factor_per_transition() -> None:
    """B_t+1 = c_M g_t B_t exactly: the fit gives back every product c_M g_t, and the generation-effects
    column of the A_t table shows it."""
    g, c = [1.3, 0.8, 1.1, 1.0], {"lenet": 1.0, "resnet50": 0.7}
    rows = []
    rng = np.random.default_rng(0)
    for seed in range(3):
        rows += quality_rows(seed, rng.uniform(0.6, 0.9, 4), rng.uniform(0, 0.3, 4))
        for arch, c_m in c.items():
            rows += metric_rows(seed, arch, "md", 0.1 * (1 + seed) * np.cumprod([1.0, *(c_m * np.array(g))]))
    obs = transitions(rows)
    effects = generation_factors(obs, 4)
    products = effects.factor(obs.arch, obs.t, obs.q, obs.u)
    expected = np.array([c[obs.archs[a]] for a in obs.arch]) * np.array(g)[obs.t]
    assert products == pytest.approx(expected, rel=1e-9)
    assert np.mean(effects.g) == pytest.approx(1.0)
    assert math.isnan(effects.factor(np.array([0]), np.array([4]), np.array([0.8]), np.array([0.1]))[0])
    fit = fit_eq6(obs, n_bootstrap=0)
    assert [r.generation_effect for r in fit.a_t if r.arch == "resnet50"] == pytest.approx(
        [0.7 * x for x in g]
    )


def test_eq6_plus_generation_effects_uses_only_variation_within_a_transition() -> None:
    """Eq. 6 times a factor per transition, in the within-transition form: the kappas come back exactly;
    when q_t and u_t are the same for every seed at a transition they are not identified."""
    g, kq, ku = [1.2, 0.9, 1.05, 1.0, 0.95], 0.8, -0.5
    rng = np.random.default_rng(3)
    q = rng.uniform(0.6, 0.95, (4, 5))
    u = rng.uniform(0.0, 0.3, (4, 5))
    rows = []
    for seed in range(4):
        rows += quality_rows(seed, q[seed], u[seed])
        factor = np.array(g) * (1 + kq * (q.mean(0) - q[seed]) + ku * (u[seed] - u.mean(0)))
        rows += metric_rows(seed, "lenet", "md", 0.1 * np.cumprod([1.0, *factor]))
    obs = transitions(rows)
    assert within_generation_terms(obs) == (True, True)
    both = solve_with_generations(obs, 5)
    assert (both.kappa_q, both.kappa_u) == pytest.approx((kq, ku), abs=1e-6)
    assert both.g * both.c[0] == pytest.approx(g, abs=1e-6)
    trending = [
        {**r, "value": 0.9 - 0.01 * r["generation"]} if r["metric"] == "gen_label_acc_kept" else r
        for r in rows
    ]
    obs = transitions(trending)
    assert within_generation_terms(obs) == (False, True)
    assert solve_with_generations(obs, 5).kappa_q == 0.0

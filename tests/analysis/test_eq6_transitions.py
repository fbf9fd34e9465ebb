"""Transitions B_t -> B_t+1 read from tidy rows, and the measurement variance of MD."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_eq6_fit import KAPPA_Q, KAPPA_U, TRUE_C, simulated_rows  # tests/analysis is on sys.path

from selfloop.analysis.eq6_fit import fit_eq6
from selfloop.analysis.eq6_transitions import md_noise_variance, transitions


def test_transitions_pair_b_t_with_the_samples_that_entered_t_plus_1() -> None:
    obs = transitions(simulated_rows(noise=0.0))
    assert obs.archs == ("lenet", "resnet50") and obs.seeds == (0, 1, 2) and len(obs) == 3 * 2 * 6
    first = (obs.unit == 0) & (obs.arch == 0) & (obs.t == 0)
    # B_1 = c (1 + kQ (1 - q_1) + kU u_1) B_0 with the q, u logged under generation 1.
    assert obs.b1[first][0] == pytest.approx(
        TRUE_C["lenet"] * (1 + KAPPA_Q * (1 - obs.q[first][0]) + KAPPA_U * obs.u[first][0]) * 0.1
    )
    assert np.isnan(obs.var_b0).all()  # no test-split size given


def test_md_noise_variance_matches_binomial_draws() -> None:
    """Two subgroups at accuracy 0.9 and 0.7, 1000 test samples: var(MD) = (0.09 + 0.21) / 500 = 6e-4.
    Reference: 20000 simulated test splits (relative sd of the variance estimate 1%; tolerance 5%)."""
    assert md_noise_variance([0.9, 0.7], 1000) == pytest.approx(6e-4)
    assert md_noise_variance([0.9, math.nan, 0.7], 1000) == pytest.approx(6e-4)
    rng = np.random.default_rng(0)
    draws = np.abs(rng.binomial(500, 0.9, 20000) / 500 - rng.binomial(500, 0.7, 20000) / 500)
    assert md_noise_variance([0.9, 0.7], 1000) == pytest.approx(np.var(draws), rel=0.05)
    assert math.isnan(md_noise_variance([0.9], 1000))


def test_test_size_gives_the_measurement_variance_of_md() -> None:
    rows = simulated_rows(noise=0.0)
    for seed in (0, 1, 2):
        for arch in TRUE_C:
            for g in range(7):
                rows += [
                    {"generation": g, "arch": arch, "seed": seed, "metric": f"subgroup_acc_{k}", "value": a}
                    for k, a in enumerate((0.9, 0.7))
                ]
    obs = transitions(rows, test_size=1000)
    assert obs.var_b0 == pytest.approx(np.full(len(obs), 6e-4))
    fit = fit_eq6(obs, n_bootstrap=0)
    expected = 1 - 6e-4 * len(obs) / np.sum(obs.b0**2)
    assert fit.attenuation == pytest.approx(expected) and f"{expected:.3g}" in fit.notes[0]

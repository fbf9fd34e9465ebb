"""Eq. 6 fitted to the transitions of one experiment: parameters, A_t and their bootstrap intervals.

The paper's section 5 conjecture (eq. 6) is ``B_{t+1} = A_t B_t`` with

    A_t = (1 - gamma_M) (1 + delta_D + delta_Q (1 - q_t) + delta_U u_t)

where ``B_t`` is the bias of the generation-t classifier (MD by default), ``q_t`` the quality of the
generated data (``gen_label_acc_kept``), ``u_t`` how unbalanced it is (``u_t``), ``gamma_M`` a robustness
of the architecture and the deltas properties of the data set.

Identifiability and reparametrisation. Expanding eq. 6,
``A_t = (1-gamma_M)(1+delta_D) * (1 + kappa_Q (1 - q_t) + kappa_U u_t)`` with
``kappa_Q = delta_Q / (1+delta_D)`` and ``kappa_U = delta_U / (1+delta_D)``. Within one data set the runs
determine exactly ``c_M = (1 - gamma_M)(1 + delta_D)`` per arch (the growth factor at perfect, balanced
data) and ``kappa_Q``, ``kappa_U`` shared by the archs; ``gamma_M`` and ``delta_D`` are identifiable only
through their product (scaling ``1 + delta_D`` and the deltas by s and ``1 - gamma_M`` by 1/s leaves every
A_t unchanged). The data can identify less: a kappa whose regressor does not vary merges into ``c_M`` and
is fixed at 0; when q_t and u_t are collinear with the per-arch scale (or there are fewer transitions than
parameters) kappa_U, then kappa_Q, is fixed at 0; an arch whose B_t is always 0 gets no ``c_M`` (NaN).

Eq. 6 is fitted by least squares of the one-step prediction ``B_{t+1} - A_t B_t`` from the observed
``B_t`` (``solve``), like the models it is compared with (``selfloop.analysis.eq6_baselines``).

Measurement noise. ``B_t`` is measured on a finite test split, so it is the true bias plus binomial noise
of variance sigma^2; as a regressor that shrinks every fitted factor toward 0 by the reliability
``lambda = 1 - sum sigma^2 / sum B_t^2`` (regression dilution; with noise sd half the RMS of B, a true
factor of 1 is fitted as 0.80, ``tests/analysis/test_eq6_fit.py``). ``attenuation`` estimates lambda when
the test split's size is known; ``c_M / lambda`` is then the noise-corrected factor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from selfloop.analysis.eq6_baselines import constant_factors, full_column_rank, generation_factors
from selfloop.analysis.eq6_transitions import Transitions


def simulate_bias_dynamics(
    c: float, b0: float, q: Sequence[float], u: Sequence[float], kappa_q: float = 0.0, kappa_u: float = 0.0
) -> np.ndarray:
    """Run eq. 6 forward in the fitted parametrisation: ``B_{t+1} = c (1 + kappa_q (1 - q) + kappa_u u) B_t``.

    Args:
        c: ``c_M = (1 - gamma_M)(1 + delta_D)``.
        b0: the bias of generation 0.
        q: data quality of the samples entering generations 1..T (``q[t]`` drives B_t -> B_{t+1}).
        u: unbalanced generation of the same samples.
        kappa_q: ``delta_Q / (1 + delta_D)``.
        kappa_u: ``delta_U / (1 + delta_D)``.

    Returns:
        ``B_0 .. B_T``, length ``len(q) + 1``.
    """
    if len(q) != len(u):
        raise ValueError(f"q and u must have one value per transition; got {len(q)} and {len(u)}")
    b = [float(b0)]
    for q_t, u_t in zip(q, u, strict=True):
        b.append(c * (1.0 + kappa_q * (1.0 - q_t) + kappa_u * u_t) * b[-1])
    return np.array(b)


# The eq. 6 least squares ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """Which parameters of eq. 6 the transitions identify.

    Args:
        active: per arch, whether it has a transition with ``B_t != 0`` (else no ``c_M``).
        free_q: whether kappa_Q is estimated (else fixed at 0).
        free_u: whether kappa_U is estimated.
        notes: why a parameter is fixed, by ``c<arch index>``, ``kappa_Q``, ``kappa_U``.
    """

    active: np.ndarray
    free_q: bool
    free_u: bool
    notes: dict[str, str]

    @property
    def free(self) -> list[str]:
        """The data terms estimated: ``kappa_Q``, ``kappa_U`` or neither."""
        return [name for name, on in (("kappa_Q", self.free_q), ("kappa_U", self.free_u)) if on]


def spec(obs: Transitions) -> Spec:
    """Decide which parameters of eq. 6 the transitions identify (see the module docstring)."""
    notes: dict[str, str] = {}
    informative = obs.b0 != 0
    active = np.array([bool(np.any(informative & (obs.arch == a))) for a in range(obs.n_arch)])
    for a in np.flatnonzero(~active):
        notes[f"c{a}"] = "B_t is 0 (or missing) in every transition: nothing to scale"
    live = obs.subset(informative)
    free_q = bool(len(live) and np.ptp(1.0 - live.q) > 1e-9)
    if not free_q:
        notes["kappa_Q"] = (
            "q_t takes one value in every transition, so its effect merges into c_M; fixed at 0"
        )
    free_u = obs.use_u and bool(len(live) and np.ptp(live.u) > 1e-9)
    if not obs.use_u:
        notes["kappa_U"] = "no u_t metric given; fixed at 0"
    elif not free_u:
        notes["kappa_U"] = (
            "u_t takes one value in every transition, so its effect merges into c_M; fixed at 0"
        )

    def full_rank(fq: bool, fu: bool) -> bool:
        columns = [live.b0 * (live.arch == a) for a in np.flatnonzero(active)]
        columns += [live.b0 * (1.0 - live.q)] if fq else []
        columns += [live.b0 * live.u] if fu else []
        return full_column_rank(columns, live.b0)

    # Drop kappa_U first, then kappa_Q, until the linearised design has full column rank: collinear
    # regressors (or too few transitions) leave only a combination identified.
    if free_u and not full_rank(free_q, free_u):
        free_u = False
        notes["kappa_U"] = (
            "u_t is collinear with q_t and the per-arch scale (or too few transitions); fixed at 0"
        )
    if free_q and not full_rank(free_q, free_u):
        free_q = False
        notes["kappa_Q"] = "q_t is collinear with the per-arch scale (or too few transitions); fixed at 0"
    return Spec(active, free_q, free_u, notes)


def solve(obs: Transitions, identified: Spec) -> np.ndarray:
    """Least squares of ``B_{t+1} - c_M (1 + kQ (1 - q) + kU u) B_t``; returns ``[c_0..c_{M-1}, kQ, kU]``.

    ``c_M >= 0`` (``1 - gamma_M >= 0``); an arch without a transition with ``B_t != 0`` in ``obs`` (possible
    in a bootstrap resample or a cross-validation fold) gets NaN.
    """
    active = np.array(
        [a for a in np.flatnonzero(identified.active) if np.any((obs.arch == a) & (obs.b0 != 0))], dtype=int
    )
    obs = obs.subset(np.isin(obs.arch, active))
    position = {a: i for i, a in enumerate(active)}
    arch_pos = np.array([position[a] for a in obs.arch], dtype=int)
    n_c = len(active)

    def unpack(x: np.ndarray) -> tuple[np.ndarray, float, float]:
        k = n_c
        kq = x[k] if identified.free_q else 0.0
        k += identified.free_q
        ku = x[k] if identified.free_u else 0.0
        return x[:n_c], kq, ku

    def residuals(x: np.ndarray) -> np.ndarray:
        c, kq, ku = unpack(x)
        return c[arch_pos] * (1.0 + kq * (1.0 - obs.q) + ku * obs.u) * obs.b0 - obs.b1

    def jacobian(x: np.ndarray) -> np.ndarray:
        c, kq, ku = unpack(x)
        data = 1.0 + kq * (1.0 - obs.q) + ku * obs.u
        columns = [data * obs.b0 * (arch_pos == i) for i in range(n_c)]
        columns += [c[arch_pos] * (1.0 - obs.q) * obs.b0] if identified.free_q else []
        columns += [c[arch_pos] * obs.u * obs.b0] if identified.free_u else []
        return np.stack(columns, axis=1)

    # Start from the per-arch least-squares ratio with kappas at 0: the no-covariate version of eq. 6.
    c0 = np.maximum(constant_factors(obs)[active], 1e-3)
    x0 = np.concatenate([c0, np.zeros(int(identified.free_q) + int(identified.free_u))])
    lower = np.concatenate([np.zeros(n_c), np.full(len(x0) - n_c, -np.inf)])
    result = least_squares(residuals, x0, jacobian, bounds=(lower, np.inf), method="trf", x_scale="jac")
    c, kq, ku = unpack(result.x)
    full = np.full(obs.n_arch, np.nan)
    full[active] = c
    return np.concatenate([full, [kq, ku]])


def a_values(params: np.ndarray, arch: np.ndarray, q: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Eq. 6's A_t for each (arch, q_t, u_t) under ``solve``'s parameters."""
    n_arch = len(params) - 2
    return params[:n_arch][arch] * (1.0 + params[n_arch] * (1.0 - q) + params[n_arch + 1] * u)


def attenuation(obs: Transitions) -> float:
    """The reliability ``1 - sum sigma^2 / sum B_t^2`` of B_t as a regressor (NaN when sigma^2 is unknown).

    Least-squares factors fitted on a noisy ``B_t`` are shrunk by about this much; it is computed over the
    transitions whose measurement variance ``var_b0`` is known.
    """
    known = np.isfinite(obs.var_b0) & (obs.b0 != 0)
    if not known.any():
        return math.nan
    return float(1.0 - obs.var_b0[known].sum() / np.sum(obs.b0[known] ** 2))


# The full fit ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterEstimate:
    """One fitted parameter.

    Args:
        parameter: ``c[<arch>]``, ``kappa_Q`` or ``kappa_U``.
        estimate: the least-squares estimate on every transition (NaN when not identifiable).
        low: lower end of the bootstrap percentile interval.
        high: upper end.
        identifiable: False when the runs carry no information on it; it is then fixed (kappas at 0).
        note: why it is fixed, or empty.
    """

    parameter: str
    estimate: float
    low: float
    high: float
    identifiable: bool = True
    note: str = ""


@dataclass(frozen=True)
class ATransition:
    """A_t of one arch and transition, at the seeds' mean q_t and u_t.

    Args:
        arch: the classifier arch.
        from_generation: t.
        to_generation: t + 1.
        q: q_t, mean over seeds.
        u: u_t, mean over seeds.
        a: eq. 6's A_t at that q, u.
        a_low: lower end of its bootstrap percentile interval.
        a_high: upper end.
        generation_effect: the generation-effects model's ``c_M g_t`` at that transition.
        observed_ratio: the mean of ``B_{t+1} / B_t`` over seeds with ``B_t > 0``.
    """

    arch: str
    from_generation: int
    to_generation: int
    q: float
    u: float
    a: float
    a_low: float
    a_high: float
    generation_effect: float
    observed_ratio: float


@dataclass(frozen=True)
class Eq6Fit:
    """Eq. 6 fitted to every transition of one experiment (see ``fit_eq6``).

    Args:
        metric: the bias metric B.
        archs: the archs fitted.
        seeds: seeds of the runs (the bootstrap's resampling units).
        n_transitions: observed transitions B_t -> B_{t+1}.
        parameters: c per arch, then kappa_Q and kappa_U.
        a_t: A_t per arch and transition.
        rmse_in_sample: RMSE of the one-step predictions on the fitted transitions.
        attenuation: the reliability of B_t as a regressor (``attenuation``; NaN when unknown).
        notes: caveats (degenerate bootstrap, measurement noise, ...).
        confidence: the intervals' coverage.
        n_bootstrap: bootstrap resamples.
    """

    metric: str
    archs: list[str]
    seeds: list[int]
    n_transitions: int
    parameters: list[ParameterEstimate]
    a_t: list[ATransition]
    rmse_in_sample: float
    attenuation: float = math.nan
    notes: list[str] = field(default_factory=list)
    confidence: float = 0.95
    n_bootstrap: int = 0

    def parameter(self, name: str) -> ParameterEstimate:
        """The estimate called ``name`` (``c[lenet]``, ``kappa_Q``, ``kappa_U``)."""
        for p in self.parameters:
            if p.parameter == name:
                return p
        raise KeyError(name)


def fit_eq6(obs: Transitions, n_bootstrap: int = 200, seed: int = 0, confidence: float = 0.95) -> Eq6Fit:
    """Fit eq. 6 to every transition, with percentile bootstrap intervals over runs.

    The intervals come from ``n_bootstrap`` refits on runs resampled with replacement
    (``numpy.random.default_rng(seed)``); with one run they collapse to the estimate. They describe the fit
    and decide nothing: the verdict is ``selfloop.analysis.eq6_comparison``'s.

    Args:
        obs: the transitions (``selfloop.analysis.eq6_transitions.transitions``).
        n_bootstrap: bootstrap resamples (0 skips them; intervals are then NaN).
        seed: seed of the bootstrap's generator.
        confidence: coverage of the intervals.

    Raises:
        ValueError: when there is no transition, or B is 0 in every one.
    """
    if not len(obs):
        raise ValueError(f"no transition B_t -> B_t+1 with finite {obs.metric}, q_t and u_t to fit")
    identified = spec(obs)
    if not identified.active.any():
        raise ValueError(f"{obs.metric} is 0 in every transition: there is no bias to model")
    params = solve(obs, identified)
    residuals = a_values(params, obs.arch, obs.q, obs.u) * obs.b0 - obs.b1
    residuals = residuals[np.isfinite(residuals)]
    notes: list[str] = []

    # Bootstrap over runs: seeds are the independent replicates; generations within a run are not.
    units = np.unique(obs.unit)
    by_unit = [obs.subset(obs.unit == k) for k in units]
    rng = np.random.default_rng(seed)
    boot = [
        solve(obs.concat([by_unit[i] for i in rng.integers(0, len(units), len(units))]), identified)
        for _ in range(n_bootstrap)
    ]
    boot_arr = np.array(boot) if boot else np.full((0, obs.n_arch + 2), np.nan)
    tail = 100 * (1 - confidence) / 2
    if len(boot_arr):
        low, high = np.nanpercentile(boot_arr, tail, axis=0), np.nanpercentile(boot_arr, 100 - tail, axis=0)
    else:
        low = high = np.full(obs.n_arch + 2, np.nan)
    if len(units) == 1:
        notes.append("one run only: the bootstrap over seeds cannot show seed-to-seed spread")
    reliability = attenuation(obs)
    if math.isfinite(reliability):
        notes.append(
            f"Binomial measurement noise of B_t shrinks the fitted factors by about {reliability:.3g} "
            f"(regression dilution): the noise-corrected c_M is c_M / {reliability:.3g}."
        )

    parameters = [
        ParameterEstimate(f"c[{arch}]", params[i], low[i], high[i], f"c{i}" not in identified.notes,
                          identified.notes.get(f"c{i}", ""))
        for i, arch in enumerate(obs.archs)
    ]  # fmt: skip
    for j, (name, free) in enumerate((("kappa_Q", identified.free_q), ("kappa_U", identified.free_u))):
        k = obs.n_arch + j
        parameters.append(
            ParameterEstimate(name, params[k], low[k], high[k], free, identified.notes.get(name, ""))
        )
    return Eq6Fit(
        metric=obs.metric,
        archs=list(obs.archs),
        seeds=[obs.seeds[k] for k in units],
        n_transitions=len(obs),
        parameters=parameters,
        a_t=_a_table(obs, params, boot_arr, tail),
        rmse_in_sample=float(np.sqrt(np.mean(residuals**2))) if len(residuals) else math.nan,
        attenuation=reliability,
        notes=notes,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
    )


def _a_table(obs: Transitions, params: np.ndarray, boot: np.ndarray, tail: float) -> list[ATransition]:
    """A_t per arch and transition at the seeds' mean q_t and u_t, with bootstrap intervals."""
    effects = generation_factors(obs, int(obs.t.max()) + 1)
    rows = []
    for a, arch in enumerate(obs.archs):
        for t in sorted(set(obs.t[obs.arch == a].tolist())):
            sel = (obs.arch == a) & (obs.t == t)
            at = (np.array([a]), np.array([obs.q[sel].mean()]), np.array([obs.u[sel].mean()]))
            if len(boot):
                draws = np.array([a_values(p, *at)[0] for p in boot])
                lo, hi = float(np.nanpercentile(draws, tail)), float(np.nanpercentile(draws, 100 - tail))
            else:
                lo = hi = math.nan
            positive = sel & (obs.b0 > 0)
            ratio = float(np.mean(obs.b1[positive] / obs.b0[positive])) if positive.any() else math.nan
            rows.append(
                ATransition(
                    arch, int(t), int(t) + 1, float(at[1][0]), float(at[2][0]), float(a_values(params, *at)[0]),
                    lo, hi, float(effects.factor(np.array([a]), np.array([t]), *at[1:])[0]), ratio,
                )
            )  # fmt: skip
    return rows

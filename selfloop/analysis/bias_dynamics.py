"""The paper's section 5 conjecture on how bias evolves across generations, measured and fitted.

The conjecture (eq. 6) is ``B_{t+1} = A_t B_t`` with

    A_t = (1 - gamma_M) (1 + delta_D + delta_Q (1 - q_t) + delta_U u_t)

where ``B_t`` is the bias of the generation-t classifier (MD by default), ``q_t`` the quality of the
generated data (here ``gen_label_acc_kept``: the fraction of kept samples that f_0 labels as the intended
class), ``u_t`` how unbalanced the generation is (``unbalanced_generation``), ``gamma_M`` a robustness of
the architecture and the deltas properties of the data set.

This module fits eq. 6 to the runs of one experiment and tests it on held-out generations against two
simpler nested models (no change, a constant factor per arch); ``u_t`` itself is measured during the run
(``selfloop.metrics.unbalance``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.optimize import least_squares

from selfloop.analysis.runs import GENERATOR_ARCH, Run
from selfloop.analysis.seed_stats import SeedInterval, bootstrap_t_interval
from selfloop.analysis.seed_stats import fmt as _fmt
from selfloop.catalogue import is_fairness_score

# Eq. 6 ----------------------------------------------------------------------------------------------------


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


@dataclass
class ParameterEstimate:
    """One fitted parameter.

    Args:
        name: ``c[<arch>]``, ``kappa_Q`` or ``kappa_U``.
        estimate: the least-squares estimate on every transition (NaN when not identifiable).
        low: lower end of the bootstrap percentile interval.
        high: upper end.
        identifiable: False when the runs carry no information on it; it is then fixed (kappas at 0).
        note: why it is fixed, or empty.
    """

    name: str
    estimate: float
    low: float
    high: float
    identifiable: bool = True
    note: str = ""


@dataclass
class BiasDynamicsFit:
    """The eq. 6 fit to one experiment's runs (see ``fit_bias_dynamics``).

    Args:
        metric: the bias metric B (``md`` by default).
        archs: the archs fitted.
        seeds: seeds of the runs (the bootstrap's resampling units).
        n_transitions: observed transitions B_t -> B_{t+1} used by the full fit.
        parameters: c per arch, then kappa_Q and kappa_U.
        a_t: per arch and transition: ``arch, from_generation, to_generation, q, u, a, a_low, a_high,
            observed_ratio`` (q, u averaged over seeds; ``observed_ratio`` the mean of ``B_{t+1} / B_t``
            over seeds with ``B_t > 0``).
        rmse_in_sample: RMSE of the one-step predictions on the fitted transitions.
        comparison: the held-out comparison with no change and a constant factor, which decides the verdict.
        verdict: a plain sentence on whether q_t / u_t explain the dynamics (``comparison.verdict``).
        notes: caveats (fixed parameters, degenerate bootstrap, ...).
        confidence: the interval's coverage.
        n_bootstrap: bootstrap resamples.
    """

    metric: str
    archs: list[str]
    seeds: list[int]
    n_transitions: int
    parameters: list[ParameterEstimate]
    a_t: list[dict[str, Any]]
    rmse_in_sample: float
    comparison: ModelComparison
    verdict: str
    notes: list[str] = field(default_factory=list)
    confidence: float = 0.95
    n_bootstrap: int = 0

    def parameter(self, name: str) -> ParameterEstimate:
        """The estimate called ``name`` (``c[lenet]``, ``kappa_Q``, ``kappa_U``)."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def parameter_rows(self) -> list[dict[str, Any]]:
        """Parameters as table rows: ``parameter, estimate, low, high, identifiable, note``."""
        return [
            {"parameter": p.name, "estimate": p.estimate, "low": p.low, "high": p.high,
             "identifiable": p.identifiable, "note": p.note}
            for p in self.parameters
        ]  # fmt: skip

    def comparison_rows(self) -> list[dict[str, Any]]:
        """The held-out comparison as one row (see ``ModelComparison.row``)."""
        return [self.comparison.row()]

    def to_markdown(self) -> str:
        """Verdict, held-out comparison, parameters and A_t table as markdown."""
        pct = f"{100 * self.confidence:g}%"
        c = self.comparison
        lines = [f"**Verdict:** {self.verdict}", ""]
        if c.rmse:
            lines += [
                f"Held-out comparison (fit on generations <= {c.fit_until}, predict "
                f"{', '.join(map(str, c.test_generations))}; {c.n_train} training and {c.n_test} held-out "
                f"transitions, {len(c.seeds)} seeds):",
                "",
                "| model | A_t | held-out RMSE |",
                "|---|---|---|",
                f"| no change | 1 | {_fmt(c.rmse['no change'])} |",
                f"| constant factor | c_M | {_fmt(c.rmse['constant factor'])} |",
                f"| eq. 6 | c_M (1 + kappa_Q (1 - q_t) + kappa_U u_t) | {_fmt(c.rmse['eq. 6'])} |",
                "",
            ]
        for name, label in (
            ("constant_vs_none", "constant factor vs no change"),
            ("eq6_vs_constant", "eq. 6 vs constant factor"),
        ):
            interval = getattr(c, name)
            if interval is not None:
                lines.append(f"- log-MSE gain, {label}: {interval.describe()}")
        lines += [
            "",
            f"Parameters of eq. 6 on every transition. Bias metric B = {self.metric}; {len(self.seeds)} runs "
            f"(seeds {', '.join(map(str, self.seeds))}); {self.n_transitions} transitions; {pct} percentile "
            f"bootstrap intervals over seeds ({self.n_bootstrap} resamples; descriptive: with few seeds they are "
            "too narrow, and the verdict does not use them).",
            "",
            f"| parameter | estimate | {pct} interval | identifiable | note |",
            "|---|---|---|---|---|",
        ]
        for p in self.parameters:
            lines.append(
                f"| {p.name} | {_fmt(p.estimate)} | [{_fmt(p.low)}, {_fmt(p.high)}] | {p.identifiable} | {p.note} |"
            )
        lines += ["", f"In-sample one-step RMSE: {_fmt(self.rmse_in_sample)}."]
        lines += [
            "",
            f"| arch | t -> t+1 | q | u | A_t | {pct} interval | observed B_t+1/B_t |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.a_t:
            lines.append(
                f"| {r['arch']} | {r['from_generation']} -> {r['to_generation']} | {_fmt(r['q'])} | {_fmt(r['u'])} | "
                f"{_fmt(r['a'])} | [{_fmt(r['a_low'])}, {_fmt(r['a_high'])}] | {_fmt(r['observed_ratio'])} |"
            )
        if self.notes:
            lines += ["", *(f"- {n}" for n in self.notes)]
        return "\n".join(lines) + "\n"


@dataclass
class _Transitions:
    """Observed B_t -> B_{t+1} with the q, u of the samples that entered generation t+1."""

    unit: np.ndarray
    arch: np.ndarray
    t: np.ndarray
    b0: np.ndarray
    b1: np.ndarray
    q: np.ndarray
    u: np.ndarray

    def __len__(self) -> int:
        return len(self.b0)

    def subset(self, mask: np.ndarray) -> _Transitions:
        return _Transitions(*(getattr(self, f)[mask] for f in ("unit", "arch", "t", "b0", "b1", "q", "u")))

    @staticmethod
    def concat(parts: list[_Transitions]) -> _Transitions:
        return _Transitions(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("unit", "arch", "t", "b0", "b1", "q", "u")
            )
        )


def _cells(table: Iterable[Run] | Iterable[Mapping[str, Any]]) -> tuple[dict, list[int]]:
    """Values by (unit, generation, arch, metric) and the seed of each unit.

    Runs are their own units (so two runs with one seed stay two samples); tidy rows use the seed.
    """
    items = list(table)
    cells: dict[tuple[int, int, str, str], float] = {}
    if items and all(isinstance(r, Run) for r in items):
        groups = {r.group for r in items}
        if len(groups) > 1:
            raise ValueError(f"fit one experiment at a time; the runs span groups {sorted(groups)}")
        for unit, run in enumerate(items):
            for (g, a, m), v in run.metrics.items():
                cells[unit, g, a, m] = v
        return cells, [r.seed for r in items]
    groups = {r.get("group") for r in items if isinstance(r, Mapping)} - {None}
    if len(groups) > 1:
        raise ValueError(f"fit one experiment at a time; the rows span groups {sorted(groups)}")
    seeds: list[int] = []
    index: dict[int, int] = {}
    for r in items:
        try:
            seed = int(r["seed"])
            key = (int(r["generation"]), str(r["arch"]), str(r["metric"]))
            value = float(r["value"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"not a tidy row with generation, arch, seed, metric, value: {r!r}") from None
        if seed not in index:
            index[seed] = len(seeds)
            seeds.append(seed)
        cells[(index[seed], *key)] = value
    return cells, seeds


def _transitions(
    cells: dict, metric: str, q_metric: str, u_metric: str | None
) -> tuple[_Transitions, list[str]]:
    metrics = {m for (_, _, _, m) in cells}
    for name in (metric, q_metric, u_metric):
        if name is not None and name not in metrics:
            raise ValueError(
                f"no '{name}' rows in the table; eq. 6 needs B_t ({metric}), q_t ({q_metric}) and u_t ({u_metric})"
            )
    flip = is_fairness_score(metric)
    bias: dict[tuple[int, str], dict[int, float]] = defaultdict(dict)
    archs: list[str] = []
    for (unit, g, a, m), v in cells.items():
        if m == metric and a != GENERATOR_ARCH and math.isfinite(v):
            bias[unit, a][g] = 1.0 - v if flip else v
            if a not in archs:
                archs.append(a)
    archs.sort()
    cols: dict[str, list] = {k: [] for k in ("unit", "arch", "t", "b0", "b1", "q", "u")}
    for (unit, arch), series in sorted(bias.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        for t, b0 in sorted(series.items()):
            if t + 1 not in series:
                continue
            # The samples logged under generation t+1 are the ones added to generation t+1's training set.
            q = cells.get((unit, t + 1, GENERATOR_ARCH, q_metric), math.nan)
            u = cells.get((unit, t + 1, GENERATOR_ARCH, u_metric), math.nan) if u_metric else 0.0
            if not (math.isfinite(q) and math.isfinite(u)):
                continue
            for k, v in zip(cols, (unit, archs.index(arch), t, b0, series[t + 1], q, u), strict=True):
                cols[k].append(v)
    return _Transitions(
        *(np.asarray(cols[k], dtype=int if k in ("unit", "arch", "t") else float) for k in cols)
    ), archs


@dataclass
class _Spec:
    """Which parameters a fit estimates: archs with information, and which kappas are free."""

    active: np.ndarray  # bool per arch
    free_q: bool
    free_u: bool
    notes: dict[str, str]


def _spec(obs: _Transitions, n_arch: int, use_u: bool) -> _Spec:
    """Decide which parameters the transitions identify (see ``fit_bias_dynamics``)."""
    notes: dict[str, str] = {}
    informative = obs.b0 != 0
    active = np.array([bool(np.any(informative & (obs.arch == a))) for a in range(n_arch)])
    for a in np.flatnonzero(~active):
        notes[f"c{a}"] = "B_t is 0 (or missing) in every transition: nothing to scale"
    live = obs.subset(informative)
    free_q = bool(len(live) and np.ptp(1.0 - live.q) > 1e-9)
    if not free_q:
        notes["kappa_Q"] = (
            "q_t takes one value in every transition, so its effect merges into c_M; fixed at 0"
        )
    free_u = use_u and bool(len(live) and np.ptp(live.u) > 1e-9)
    if not use_u:
        notes["kappa_U"] = "no u_t metric given; fixed at 0"
    elif not free_u:
        notes["kappa_U"] = (
            "u_t takes one value in every transition, so its effect merges into c_M; fixed at 0"
        )

    def full_rank(fq: bool, fu: bool) -> bool:
        columns = [live.b0 * (live.arch == a) for a in np.flatnonzero(active)]
        columns += [live.b0 * (1.0 - live.q)] if fq else []
        columns += [live.b0 * live.u] if fu else []
        design = np.stack(columns, axis=1) if columns else np.zeros((0, 0))
        if design.shape[0] < design.shape[1]:
            return False
        design = design / np.maximum(np.linalg.norm(design, axis=0), 1e-300)
        return int(np.linalg.matrix_rank(design, tol=1e-8)) == design.shape[1]

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
    return _Spec(active, free_q, free_u, notes)


def _solve(obs: _Transitions, n_arch: int, spec: _Spec) -> np.ndarray:
    """Least squares of B_{t+1} - c_M (1 + kQ (1 - q) + kU u) B_t; returns [c_0..c_{M-1}, kQ, kU]."""
    # An arch can lack informative transitions in a bootstrap resample: it then gets no c (NaN).
    active = np.array(
        [a for a in np.flatnonzero(spec.active) if np.any((obs.arch == a) & (obs.b0 != 0))], dtype=int
    )
    keep = np.isin(obs.arch, active)
    obs = obs.subset(keep)
    position = {a: i for i, a in enumerate(active)}
    arch_pos = np.array([position[a] for a in obs.arch], dtype=int)
    n_c = len(active)

    def unpack(x: np.ndarray) -> tuple[np.ndarray, float, float]:
        k = n_c
        kq = x[k] if spec.free_q else 0.0
        k += spec.free_q
        ku = x[k] if spec.free_u else 0.0
        return x[:n_c], kq, ku

    def residuals(x: np.ndarray) -> np.ndarray:
        c, kq, ku = unpack(x)
        return c[arch_pos] * (1.0 + kq * (1.0 - obs.q) + ku * obs.u) * obs.b0 - obs.b1

    # Start from the per-arch least-squares ratio with kappas at 0: the no-covariate version of eq. 6.
    c0 = np.array(
        [max(float(np.dot(obs.b0[arch_pos == i], obs.b1[arch_pos == i]) / np.dot(obs.b0[arch_pos == i], obs.b0[arch_pos == i])), 1e-3)
         for i in range(n_c)]
    )  # fmt: skip
    x0 = np.concatenate([c0, np.zeros(int(spec.free_q) + int(spec.free_u))])
    lower = np.concatenate([np.zeros(n_c), np.full(len(x0) - n_c, -np.inf)])  # 1 - gamma_M >= 0
    result = least_squares(residuals, x0, bounds=(lower, np.inf), method="trf", x_scale="jac")
    c, kq, ku = unpack(result.x)
    full = np.full(n_arch, np.nan)
    full[active] = c
    return np.concatenate([full, [kq, ku]])


def _a_values(params: np.ndarray, arch: np.ndarray, q: np.ndarray, u: np.ndarray) -> np.ndarray:
    n_arch = len(params) - 2
    return params[:n_arch][arch] * (1.0 + params[n_arch] * (1.0 - q) + params[n_arch + 1] * u)


def _rmse(residuals: np.ndarray) -> float:
    residuals = residuals[np.isfinite(residuals)]
    return float(np.sqrt(np.mean(residuals**2))) if len(residuals) else math.nan


def fit_bias_dynamics(
    table: Iterable[Run] | Iterable[Mapping[str, Any]],
    metric: str = "md",
    q_metric: str = "gen_label_acc_kept",
    u_metric: str | None = "u_t",
    n_bootstrap: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    holdout: int = 2,
    n_resamples: int = 2000,
) -> BiasDynamicsFit:
    """Fit eq. 6, ``B_{t+1} = A_t B_t``, to the runs of one experiment (one data set and setting).

    Data: for every run (seed), classifier arch and generation t with both ``B_t`` and ``B_{t+1}`` logged,
    one transition. ``B`` is ``metric`` (for the scores ``meo`` and ``di``, where 1 is fair, ``1 - value``).
    ``q_t`` and ``u_t`` are the generator rows logged under generation t+1: the samples created in
    generation t+1 are the ones added to its classifiers' training set, so they drive B_t -> B_{t+1}.
    Predictions are one step ahead from the observed ``B_t``.

    Identifiability and reparametrisation. Expanding eq. 6,
    ``A_t = (1-gamma_M)(1+delta_D) * (1 + kappa_Q (1 - q_t) + kappa_U u_t)`` with
    ``kappa_Q = delta_Q / (1+delta_D)`` and ``kappa_U = delta_U / (1+delta_D)``. Within one data set the
    runs therefore determine exactly

    * ``c_M = (1 - gamma_M)(1 + delta_D)`` per arch: the growth factor at perfect, balanced data
      (q = 1, u = 0); ``c_M / c_M'`` is the relative robustness ``(1-gamma_M)/(1-gamma_M')``;
    * ``kappa_Q`` and ``kappa_U``, shared by the archs (eq. 6 makes the data terms arch-independent
      up to the common factor ``1 - gamma_M``).

    ``gamma_M`` and ``delta_D`` are not separately identifiable: scaling ``1 + delta_D`` and the deltas
    by s and ``1 - gamma_M`` by 1/s leaves every A_t unchanged, so one data set fixes only their
    product. (Pinning ``delta_D = 0`` by convention gives ``gamma_M = 1 - c_M``, ``delta_Q = kappa_Q``,
    ``delta_U = kappa_U``; comparing data sets with the same archs identifies ratios
    ``(1+delta_D)/(1+delta_D')`` only.) We fit ``c_M`` (bounded below by 0, as ``1 - gamma_M >= 0``),
    ``kappa_Q`` and ``kappa_U``, which is ``n_archs + 2`` parameters instead of eq. 6's ``n_archs + 3``.

    The data can identify less: a kappa whose regressor does not vary (q_t the same in every
    transition) merges into ``c_M`` and is fixed at 0; when q_t and u_t are collinear (or there are
    fewer transitions than parameters) kappa_U, then kappa_Q, is fixed at 0; an arch whose B_t is always
    0 gets no ``c_M`` (NaN). Fixed parameters are flagged ``identifiable=False`` with the reason.

    Uncertainty of the parameters: percentile intervals from ``n_bootstrap`` refits on seeds resampled
    with replacement (``numpy.random.default_rng(seed)``); with one run they collapse to the estimate.
    They describe the fit and decide nothing. The verdict comes from ``compare_models``: eq. 6 against no
    change and a constant factor per arch on the last ``holdout`` generations, with bootstrap-t
    intervals over seeds of the held-out error differences.

    Args:
        table: the runs of one experiment (``Run`` objects of one group) or tidy rows (mappings with
            ``generation, arch, seed, metric, value``; an optional ``group`` must take one value).
        metric: the bias metric B.
        q_metric: the generator metric used as data quality q_t.
        u_metric: the generator metric used as unbalanced generation u_t; None fits without it
            (kappa_U fixed at 0).
        n_bootstrap: bootstrap resamples (0 skips them; intervals are then NaN).
        seed: seed of the bootstrap's generator.
        confidence: coverage of the intervals.
        holdout: generations held out at the end.
        n_resamples: resamples of seeds for the intervals of the held-out comparison.

    Returns:
        The estimates, A_t per arch and transition, the held-out comparison and its verdict.

    Raises:
        ValueError: when a metric is missing, the table spans several experiments, or there is no
            transition to fit.
    """
    cells, seeds = _cells(table)
    obs, archs = _transitions(cells, metric, q_metric, u_metric)
    if not len(obs):
        raise ValueError(f"no transition B_t -> B_t+1 with finite {metric}, {q_metric} and {u_metric} to fit")
    n_arch = len(archs)
    use_u = u_metric is not None
    spec = _spec(obs, n_arch, use_u)
    if not spec.active.any():
        raise ValueError(f"{metric} is 0 in every transition: there is no bias to model")
    params = _solve(obs, n_arch, spec)
    rmse_in = _rmse(_a_values(params, obs.arch, obs.q, obs.u) * obs.b0 - obs.b1)
    notes: list[str] = []

    # Bootstrap over runs: seeds are the independent replicates; generations within a run are not.
    units = np.unique(obs.unit)
    by_unit = [obs.subset(obs.unit == k) for k in units]
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_bootstrap):
        sample = _Transitions.concat([by_unit[i] for i in rng.integers(0, len(units), len(units))])
        boot.append(_solve(sample, n_arch, spec))
    boot_arr = np.array(boot) if boot else np.full((0, n_arch + 2), np.nan)
    tail = 100 * (1 - confidence) / 2
    if len(boot_arr):
        low, high = np.nanpercentile(boot_arr, tail, axis=0), np.nanpercentile(boot_arr, 100 - tail, axis=0)
    else:
        low = high = np.full(n_arch + 2, np.nan)
    if len(units) == 1:
        notes.append("one run only: the bootstrap over seeds cannot show seed-to-seed spread")

    parameters = []
    for i, arch in enumerate(archs):
        note = spec.notes.get(f"c{i}", "")
        parameters.append(ParameterEstimate(f"c[{arch}]", params[i], low[i], high[i], not note, note))
    for j, (name, free) in enumerate((("kappa_Q", spec.free_q), ("kappa_U", spec.free_u))):
        k = n_arch + j
        parameters.append(ParameterEstimate(name, params[k], low[k], high[k], free, spec.notes.get(name, "")))

    a_rows = _a_table(obs, archs, params, boot_arr, tail)
    comparison = compare_models(obs, n_arch, seeds, metric, use_u, holdout, confidence, n_resamples, seed)
    return BiasDynamicsFit(
        metric=metric,
        archs=archs,
        seeds=[seeds[k] for k in units],
        n_transitions=len(obs),
        parameters=parameters,
        a_t=a_rows,
        rmse_in_sample=rmse_in,
        comparison=comparison,
        verdict=comparison.verdict,
        notes=notes,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
    )


def _a_table(
    obs: _Transitions, archs: list[str], params: np.ndarray, boot: np.ndarray, tail: float
) -> list[dict]:
    """A_t per arch and transition at the seeds' mean q_t and u_t, with bootstrap intervals."""
    rows = []
    for a, arch in enumerate(archs):
        for t in sorted(set(obs.t[obs.arch == a].tolist())):
            sel = (obs.arch == a) & (obs.t == t)
            q, u = float(obs.q[sel].mean()), float(obs.u[sel].mean())
            value = float(_a_values(params, np.array([a]), np.array([q]), np.array([u]))[0])
            if len(boot):
                draws = np.array([_a_values(p, np.array([a]), np.array([q]), np.array([u]))[0] for p in boot])
                lo, hi = float(np.nanpercentile(draws, tail)), float(np.nanpercentile(draws, 100 - tail))
            else:
                lo = hi = math.nan
            positive = sel & (obs.b0 > 0)
            ratio = float(np.mean(obs.b1[positive] / obs.b0[positive])) if positive.any() else math.nan
            rows.append(
                {"arch": arch, "from_generation": int(t), "to_generation": int(t) + 1, "q": q, "u": u, "a": value,
                 "a_low": lo, "a_high": hi, "observed_ratio": ratio}
            )  # fmt: skip
    return rows


# Held-out comparison of three nested models -------------------------------------------------------------

MODELS = ("no change", "constant factor", "eq. 6")
Model = Literal["no change", "constant factor", "eq. 6"]
# Bootstrap-t over fewer seeds has too few distinct resamples to set its quantiles.
MIN_SEEDS = 4
# Per-seed log-MSE differences this small are rounding of the least-squares solver, not a gain.
TIE = 1e-6


@dataclass
class ModelComparison:
    """Held-out one-step errors of ``A = 1``, ``A = c_M`` and eq. 6, compared with intervals over seeds.

    Args:
        metric: the bias metric B.
        fit_until: the models are fitted on transitions into generations ``<= fit_until``.
        test_generations: the generations predicted (one step ahead from the observed B_t).
        seeds: seeds of the runs with scored held-out transitions (the interval's units).
        n_train: training transitions with ``B_t != 0``.
        n_test: held-out transitions scored.
        rmse: per model, the RMSE over every held-out transition.
        constant_vs_none: per seed, the log of the held-out MSE of no change minus that of the constant
            factor (above 0 when the constant factor predicts better), mean and interval over seeds; None
            when not compared.
        eq6_vs_constant: the same for the constant factor minus eq. 6.
        free: the data terms the held-out eq. 6 fit estimated (``kappa_Q``, ``kappa_U``).
        preferred: the simplest model no more complex model beats; None when it cannot be judged.
        verdict: the conclusion in words, with its intervals.
    """

    metric: str
    fit_until: int | None
    test_generations: list[int]
    seeds: list[int]
    n_train: int
    n_test: int
    rmse: dict[str, float]
    constant_vs_none: SeedInterval | None
    eq6_vs_constant: SeedInterval | None
    free: list[str]
    preferred: Model | None
    verdict: str

    def row(self) -> dict[str, Any]:
        """As one table row (intervals as estimate, low, high; level and method once)."""
        row: dict[str, Any] = {
            "metric": self.metric,
            "preferred": self.preferred or "cannot be judged",
            "fit_until_generation": self.fit_until,
            "test_generations": " ".join(map(str, self.test_generations)),
            "n_seeds": len(self.seeds),
            "n_train": self.n_train,
            "n_test": self.n_test,
        }
        for model in MODELS:
            row[f"rmse_{model.replace(' ', '_').replace('.', '')}"] = self.rmse.get(model, math.nan)
        for name in ("constant_vs_none", "eq6_vs_constant"):
            interval = getattr(self, name)
            row[f"{name}_log_mse_gain"] = interval.estimate if interval else math.nan
            row[f"{name}_low"] = interval.low if interval else math.nan
            row[f"{name}_high"] = interval.high if interval else math.nan
        interval = self.eq6_vs_constant or self.constant_vs_none
        row["level"] = interval.confidence if interval else math.nan
        row["method"] = interval.method if interval else ""
        return row


def _not_judged(metric: str, reason: str, **known: Any) -> ModelComparison:
    fields: dict[str, Any] = {
        "fit_until": None, "test_generations": [], "seeds": [], "n_train": 0, "n_test": 0, "rmse": {},
        "constant_vs_none": None, "eq6_vs_constant": None, "free": [],
    }  # fmt: skip
    fields.update(known)
    verdict = f"Whether q_t / u_t explain the dynamics of {metric} cannot be judged: {reason}."
    return ModelComparison(metric=metric, preferred=None, verdict=verdict, **fields)


def _constant_factors(obs: _Transitions, n_arch: int) -> np.ndarray:
    """Per arch the least-squares ``c`` of ``B_{t+1} = c B_t`` (NaN without a transition with B_t != 0)."""
    c = np.full(n_arch, np.nan)
    for a in range(n_arch):
        sel = obs.arch == a
        denominator = float(np.dot(obs.b0[sel], obs.b0[sel]))
        if denominator > 0:
            c[a] = float(np.dot(obs.b0[sel], obs.b1[sel])) / denominator
    return c


def compare_models(
    obs: _Transitions,
    n_arch: int,
    seeds: Sequence[int],
    metric: str = "md",
    use_u: bool = True,
    holdout: int = 2,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> ModelComparison:
    """Fit three nested models on the early generations and score them on the last ``holdout`` ones.

    Models of ``B_{t+1} = A_t B_t``: no change (``A = 1``), a constant factor per arch (``A = c_M``,
    least squares) and eq. 6 (``A = c_M (1 + kappa_Q (1 - q_t) + kappa_U u_t)``, see ``_solve``). Each is
    fitted on the transitions into generations ``<= T - holdout`` of every seed and predicts the later
    transitions one step ahead from the observed B_t. Per seed, each model's mean squared error over its
    held-out transitions (all archs); the gain of a model over the next simpler one is the per-seed
    difference of log MSEs, and its interval a bootstrap-t over seeds (``seed_stats.bootstrap_t_interval``).
    Calibrated on simulated runs in ``tests/analysis/test_eq6_calibration.py``.

    Verdict: eq. 6 (q_t / u_t explain the dynamics) only when the interval of its gain over the constant
    factor lies above 0; else the constant factor when its gain over no change lies above 0; else no
    change. Equal errors give a point interval at 0, so never a positive verdict. Not judged (``preferred``
    None) with fewer than ``MIN_SEEDS`` seeds, no held-out or training generations, no more training
    transitions than eq. 6 has parameters, or q_t and u_t that do not vary in the training generations.

    Args:
        obs: the transitions (``_transitions``).
        n_arch: number of archs.
        seeds: seed of each unit in ``obs.unit``.
        metric: the bias metric (for the sentences).
        use_u: whether eq. 6 has the u_t term.
        holdout: generations held out at the end.
        confidence: the intervals' nominal coverage.
        n_resamples: bootstrap resamples of seeds.
        seed: seed of the resampling.
    """
    if holdout < 1 or not len(obs):
        return _not_judged(metric, "no generations are held out")
    last = int(obs.t.max()) + 1
    fit_until = last - holdout
    train = obs.subset((obs.t + 1 <= fit_until) & (obs.b0 != 0))
    test = obs.subset(obs.t + 1 > fit_until)
    test_generations = list(range(fit_until + 1, last + 1))
    if fit_until < 1 or not len(train):
        return _not_judged(
            metric,
            f"holding out the last {holdout} generations leaves no transition to fit on (the runs reach generation "
            f"{last}, and at least generation {holdout + 1} is needed)",
        )
    spec = _spec(train, n_arch, use_u)
    free = [name for name, on in (("kappa_Q", spec.free_q), ("kappa_U", spec.free_u)) if on]
    n_params = int(spec.active.sum()) + len(free)
    known: dict[str, Any] = {
        "fit_until": fit_until,
        "test_generations": test_generations,
        "n_train": len(train),
    }
    if not free:
        return _not_judged(
            metric,
            f"in the training generations (<= {fit_until}) q_t and u_t do not vary independently of the per-arch "
            "factor, so eq. 6 is the constant-factor model",
            **known,
        )
    if len(train) <= n_params:
        return _not_judged(
            metric,
            f"eq. 6 has {n_params} parameters and the training generations (<= {fit_until}) only {len(train)} "
            "transitions, so it would fit them exactly",
            **known,
        )
    predictions = {
        "no change": test.b0,
        "constant factor": _constant_factors(train, n_arch)[test.arch] * test.b0,
        "eq. 6": _a_values(_solve(train, n_arch, spec), test.arch, test.q, test.u) * test.b0,
    }
    scored = np.logical_and.reduce([np.isfinite(p) for p in predictions.values()])
    errors = {m: (p - test.b1)[scored] ** 2 for m, p in predictions.items()}
    units = test.unit[scored]
    order = np.unique(units)
    known.update(n_test=int(scored.sum()), seeds=[seeds[k] for k in order], free=free)
    known["rmse"] = {m: float(np.sqrt(e.mean())) if len(e) else math.nan for m, e in errors.items()}
    if len(order) < MIN_SEEDS:
        return _not_judged(
            metric,
            f"{len(order)} seed{'s' * (len(order) != 1)} with held-out generations, and the bootstrap over seeds "
            f"needs at least {MIN_SEEDS}",
            **known,
        )
    # Log MSE per seed: seeds differ in the scale of B (and errors grow with it), so a difference of raw
    # MSEs is dominated by the largest seed and skewed; the difference of logs is scale-free. The floor,
    # far below any real error, keeps exact fits finite; differences below TIE are rounding, not gains.
    floor = 1e-12 * float(np.mean(test.b1[scored] ** 2)) + 1e-300
    per_seed = {m: np.log(np.array([e[units == k].mean() for k in order]) + floor) for m, e in errors.items()}

    def gain(simpler: str, richer: str) -> SeedInterval:
        d = per_seed[simpler] - per_seed[richer]
        return bootstrap_t_interval(np.where(np.abs(d) <= TIE, 0.0, d), confidence, n_resamples, seed)

    gain_constant, gain_eq6 = gain("no change", "constant factor"), gain("constant factor", "eq. 6")
    where = f"predicting generations {', '.join(map(str, test_generations))} from a fit on generations <= {fit_until}"
    terms = " and ".join({"kappa_Q": "q_t", "kappa_U": "u_t"}[k] for k in free)
    if gain_eq6.sign > 0:
        preferred: Model = "eq. 6"
        verdict = (
            f"{terms} explain the dynamics of {metric} beyond a constant factor per arch: {where}, eq. 6 lowers the "
            f"log held-out mean squared error of the constant factor by {gain_eq6.describe()}."
        )
    elif gain_constant.sign > 0:
        preferred = "constant factor"
        verdict = (
            f"A constant factor per arch (A = c_M) describes {metric} better than no change, and {terms} add "
            f"nothing detectable: {where}, the constant factor lowers the log held-out mean squared error of no change by "
            f"{gain_constant.describe()}; eq. 6 lowers that of the constant factor by {gain_eq6.describe()}."
        )
    else:
        preferred = "no change"
        verdict = (
            f"No model beats no change (A = 1) for {metric}, so these runs give no evidence that {terms} explain "
            f"its dynamics: {where}, the constant factor lowers the log held-out mean squared error of no change by "
            f"{gain_constant.describe()}; eq. 6 lowers that of the constant factor by {gain_eq6.describe()}."
        )
    return ModelComparison(
        metric=metric, constant_vs_none=gain_constant, eq6_vs_constant=gain_eq6, preferred=preferred,
        verdict=verdict, **known,
    )  # fmt: skip


def compare_bias_models(
    table: Iterable[Run] | Iterable[Mapping[str, Any]],
    metric: str = "md",
    q_metric: str = "gen_label_acc_kept",
    u_metric: str | None = "u_t",
    holdout: int = 2,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> ModelComparison:
    """``compare_models`` on the runs of one experiment, without the full fit (see ``fit_bias_dynamics``
    for the arguments and ``compare_models`` for the method)."""
    cells, seeds = _cells(table)
    obs, archs = _transitions(cells, metric, q_metric, u_metric)
    return compare_models(
        obs, len(archs), seeds, metric, u_metric is not None, holdout, confidence, n_resamples, seed
    )

"""Does eq. 6 predict bias better than the generation index alone? Five models, cross-validated over seeds.

Models of ``B_{t+1} = A B_t`` (``selfloop.analysis.eq6_fit``, ``selfloop.analysis.eq6_baselines``), each
predicting one step ahead from the observed ``B_t``:

* no change, ``A = 1``;
* a constant factor per arch, ``A = c_M``;
* generation effects, ``A = c_M g_t``: a factor per transition t -> t+1 shared by every seed and arch, so
  any change of A with the generation index, whatever drives it;
* eq. 6, ``A = c_M (1 + kappa_Q (1 - q_t) + kappa_U u_t)``;
* eq. 6 plus generation effects, ``A = c_M g_t (1 + kappa_Q (qbar_t - q_t) + kappa_U (u_t - ubar_t))``: its
  kappas can use only how q_t and u_t vary across seeds at one transition (``qbar_t``, ``ubar_t`` are the
  means there), which the generation index cannot explain.

Why generation effects. In a self-consuming loop q_t and u_t trend with the generation (the generator
drifts), and so may bias for reasons eq. 6 does not name (the first transition, where real data meets
generated data, is special). A comparison of eq. 6 with a constant factor alone credits q_t / u_t with
whatever changes with t: on simulated runs whose bias was driven by the generation index with q_t, u_t
merely trending along, the earlier comparison (held-out last generations, bootstrap-t) credited them in
58.5% and 95.5% of 200 experiments (two shapes of g_t; an outside review found 73-99.7%).

Why leave-one-seed-out over all transitions. A factor per transition cannot predict a transition it has
not seen, so holding out the last generations (the earlier design) cannot score it. Instead each run (seed)
is held out in turn; every model is fitted on all transitions of the other runs and predicts every
transition of the held-out one. Eq. 6 must then predict a seed's B better than the factor that all other
seeds show at that transition. Runs are the units because generations within a run are not independent.

The test. Per held-out run and model, the mean squared error over its transitions (all archs); per run, the
log of a simpler model's MSE minus a richer one's (above 0: the richer predicts better; scale-free, where a
difference of raw MSEs is dominated by the run with the largest B). The mean over runs gets a Student t
interval (``seed_stats.t_interval``); ``1 - exp(-mean)`` is the reduction of the held-out MSE (one minus
the geometric mean of the MSE ratios). q_t / u_t are credited only when both

1. eq. 6 beats generation effects: the paper's model, without the generation index, predicts better than
   it; and
2. eq. 6 plus generation effects beats generation effects: q_t / u_t carry information that the
   generation index does not. Without this condition eq. 6 can win on parsimony alone when q_t is a copy
   of t (2 parameters against one per transition): with g_t = 0.9 + 0.05 t and q_t = 0.9 - 0.04 t in every
   seed, (1) held in 16.5% of 200 simulated experiments, (1) and (2) in none.

Both intervals must lie above 0 (an intersection-union test: level alpha without correction). When only
(2) holds the verdict is "eq. 6 + generation effects": q_t / u_t matter, but A_t also changes with the
generation in a way they do not explain.

Interval method. A bootstrap-t interval was used before; at 4-6 seeds its one-sided error reached ~10% for
skewed differences. The t-interval holds 2.5% for normal differences; under strong skew (5 centred
exponentials, 2000 samples) both reach 7-12%, and no test on 5 values does better (the exact sign-flip
test reached 10-15%, and cannot reject at 2.5% below 6 seeds). The verdict's own false-credit rates and
power are measured on simulated experiments in ``tests/analysis/test_eq6_calibration.py``.

Minimum data: ``MIN_SEEDS`` runs (every fold fits on at least 3) and ``MIN_TRANSITIONS`` transitions per
run (with fewer, generation effects are hardly different from a constant factor).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from selfloop.analysis.eq6_baselines import (
    constant_factors,
    generation_factors,
    solve_with_generations,
    within_generation_terms,
)
from selfloop.analysis.eq6_fit import a_values, solve, spec
from selfloop.analysis.eq6_transitions import Q_METRIC, U_METRIC, Transitions, transitions
from selfloop.analysis.runs import Run
from selfloop.analysis.seed_stats import SeedInterval, t_interval

Model = Literal["no change", "constant factor", "generation effects", "eq. 6", "eq. 6 + generation effects"]
MODELS: tuple[Model, ...] = (
    "no change",
    "constant factor",
    "generation effects",
    "eq. 6",
    "eq. 6 + generation effects",
)
CREDITED: tuple[Model, ...] = ("eq. 6", "eq. 6 + generation effects")
"""The verdicts that credit q_t / u_t."""
MIN_SEEDS = 4
"""Fewer runs leave each fold 2 runs to fit on and a t-interval with 2 degrees of freedom."""
MIN_TRANSITIONS = 3
"""Transitions per run (generations 0..3) below which generation effects are not judged."""
# Per-seed log-MSE differences this small are rounding of the least-squares solvers, not a gain.
TIE = 1e-6
# The gains, as (name, simpler model, richer model).
GAINS: tuple[tuple[str, Model, Model], ...] = (
    ("constant_vs_none", "no change", "constant factor"),
    ("generation_vs_constant", "constant factor", "generation effects"),
    ("eq6_vs_constant", "constant factor", "eq. 6"),
    ("eq6_vs_generation", "generation effects", "eq. 6"),
    ("terms_vs_generation", "generation effects", "eq. 6 + generation effects"),
)


def reduction(interval: SeedInterval) -> str:
    """A mean log-MSE gain as the reduction of the MSE it means: ``23% [8.1%, 35%] (95% t-interval ...)``.

    The reduction is ``1 - exp(-gain)``: one minus the geometric mean over seeds of the ratio of the richer
    model's MSE to the simpler one's.
    """

    def pct(x: float) -> str:
        if not math.isfinite(x):
            return "nan"
        p = 100 * (1 - math.exp(-x))
        # A model far worse than the other gives reductions of -1000% and below: whole numbers, not 1e+03.
        return f"{p:.3g}%" if abs(p) < 1000 else f"{p:,.0f}%"

    return (
        f"{pct(interval.estimate)} [{pct(interval.low)}, {pct(interval.high)}] "
        f"({100 * interval.confidence:g}% {interval.method} over {interval.n} seed{'s' * (interval.n != 1)})"
    )


@dataclass(frozen=True)
class ComparisonRow:
    """The comparison as one CSV row: per gain the mean log-MSE gain, its interval and the MSE reduction.

    Args:
        metric: the bias metric B.
        preferred: the model the verdict names, or ``cannot be judged``.
        design: how the models were scored.
        n_seeds: runs scored.
        seeds: their seeds, space-separated.
        n_transitions: held-out transitions scored.
        rmse_no_change: RMSE over every held-out transition, per model.
        rmse_constant_factor: see ``rmse_no_change``.
        rmse_generation_effects: see ``rmse_no_change``.
        rmse_eq_6: see ``rmse_no_change``.
        rmse_eq_6_generation_effects: see ``rmse_no_change``.
        constant_vs_none_log_mse_gain: mean over seeds of log MSE(no change) - log MSE(constant factor).
        constant_vs_none_low: lower end of its interval.
        constant_vs_none_high: upper end.
        generation_vs_constant_log_mse_gain: the same for the constant factor minus generation effects.
        generation_vs_constant_low: see ``constant_vs_none_low``.
        generation_vs_constant_high: see ``constant_vs_none_high``.
        eq6_vs_constant_log_mse_gain: the same for the constant factor minus eq. 6.
        eq6_vs_constant_low: see ``constant_vs_none_low``.
        eq6_vs_constant_high: see ``constant_vs_none_high``.
        eq6_vs_generation_log_mse_gain: the same for generation effects minus eq. 6.
        eq6_vs_generation_low: see ``constant_vs_none_low``.
        eq6_vs_generation_high: see ``constant_vs_none_high``.
        terms_vs_generation_log_mse_gain: the same for generation effects minus eq. 6 + generation effects.
        terms_vs_generation_low: see ``constant_vs_none_low``.
        terms_vs_generation_high: see ``constant_vs_none_high``.
        level: the intervals' nominal coverage.
        method: the interval method.
    """

    metric: str
    preferred: str
    design: str
    n_seeds: int
    seeds: str
    n_transitions: int
    rmse_no_change: float
    rmse_constant_factor: float
    rmse_generation_effects: float
    rmse_eq_6: float
    rmse_eq_6_generation_effects: float
    constant_vs_none_log_mse_gain: float
    constant_vs_none_low: float
    constant_vs_none_high: float
    generation_vs_constant_log_mse_gain: float
    generation_vs_constant_low: float
    generation_vs_constant_high: float
    eq6_vs_constant_log_mse_gain: float
    eq6_vs_constant_low: float
    eq6_vs_constant_high: float
    eq6_vs_generation_log_mse_gain: float
    eq6_vs_generation_low: float
    eq6_vs_generation_high: float
    terms_vs_generation_log_mse_gain: float
    terms_vs_generation_low: float
    terms_vs_generation_high: float
    level: float
    method: str


DESIGN = "leave-one-seed-out, one-step predictions of every transition"


@dataclass(frozen=True)
class ModelComparison:
    """Held-out one-step errors of the four models and the verdict on q_t / u_t (see ``compare_models``).

    Args:
        metric: the bias metric B.
        seeds: seeds of the runs scored (the interval's units).
        n_transitions: held-out transitions scored (each run's, predicted from the other runs).
        rmse: per model, the RMSE over every held-out transition.
        constant_vs_none: per seed, log MSE of no change minus that of the constant factor; mean and
            interval over seeds (None when not compared).
        generation_vs_constant: the same for the constant factor minus generation effects.
        eq6_vs_constant: the same for the constant factor minus eq. 6.
        eq6_vs_generation: the same for generation effects minus eq. 6.
        terms_vs_generation: the same for generation effects minus eq. 6 + generation effects (what q_t / u_t
            add within a transition).
        free: the data terms eq. 6 estimated on all transitions (``kappa_Q``, ``kappa_U``).
        preferred: the model the verdict names; None when it cannot be judged.
        verdict: the conclusion in words, with its intervals.
    """

    metric: str
    seeds: list[int]
    n_transitions: int
    rmse: dict[Model, float]
    constant_vs_none: SeedInterval | None
    generation_vs_constant: SeedInterval | None
    eq6_vs_constant: SeedInterval | None
    eq6_vs_generation: SeedInterval | None
    terms_vs_generation: SeedInterval | None
    free: list[str]
    preferred: Model | None
    verdict: str

    @property
    def credits_terms(self) -> bool:
        """Whether q_t / u_t are credited (``CREDITED``): they predict B beyond the generation index."""
        return self.preferred in CREDITED

    def row(self) -> ComparisonRow:
        """As one table row (intervals as estimate, low, high; level and method once)."""
        values: dict[str, Any] = {}
        for name, _, _ in GAINS:
            interval: SeedInterval | None = getattr(self, name)
            values[f"{name}_log_mse_gain"] = interval.estimate if interval else math.nan
            values[f"{name}_low"] = interval.low if interval else math.nan
            values[f"{name}_high"] = interval.high if interval else math.nan
        any_interval = self.eq6_vs_generation or self.constant_vs_none
        return ComparisonRow(
            metric=self.metric,
            preferred=self.preferred or "cannot be judged",
            design=DESIGN,
            n_seeds=len(self.seeds),
            seeds=" ".join(map(str, self.seeds)),
            n_transitions=self.n_transitions,
            rmse_no_change=self.rmse.get("no change", math.nan),
            rmse_constant_factor=self.rmse.get("constant factor", math.nan),
            rmse_generation_effects=self.rmse.get("generation effects", math.nan),
            rmse_eq_6=self.rmse.get("eq. 6", math.nan),
            rmse_eq_6_generation_effects=self.rmse.get("eq. 6 + generation effects", math.nan),
            level=any_interval.confidence if any_interval else math.nan,
            method=any_interval.method if any_interval else "",
            **values,
        )


def _not_judged(metric: str, reason: str, **known: Any) -> ModelComparison:
    values: dict[str, Any] = {"seeds": [], "n_transitions": 0, "rmse": {}, "free": []}
    values.update({name: None for name, _, _ in GAINS})
    values.update(known)
    verdict = f"Whether q_t / u_t explain the dynamics of {metric} cannot be judged: {reason}."
    return ModelComparison(metric=metric, preferred=None, verdict=verdict, **values)


def cross_validated_predictions(obs: Transitions) -> dict[Model, np.ndarray]:
    """Each model's one-step prediction of every transition, fitted on the runs other than its own.

    NaN where the other runs carry no information (an arch or transition only the held-out run has).
    """
    n_generations = int(obs.t.max()) + 1 if len(obs) else 0
    predictions = {m: np.full(len(obs), np.nan) for m in MODELS}
    for k in np.unique(obs.unit):
        held_out = obs.unit == k
        train, test = obs.subset(~held_out & (obs.b0 != 0)), obs.subset(held_out)
        if not len(train):
            continue
        predictions["no change"][held_out] = test.b0
        predictions["constant factor"][held_out] = constant_factors(train)[test.arch] * test.b0
        effects = generation_factors(train, n_generations)
        predictions["generation effects"][held_out] = (
            effects.factor(test.arch, test.t, test.q, test.u) * test.b0
        )
        params = solve(train, spec(train))
        predictions["eq. 6"][held_out] = a_values(params, test.arch, test.q, test.u) * test.b0
        both = solve_with_generations(train, n_generations)
        predictions["eq. 6 + generation effects"][held_out] = (
            both.factor(test.arch, test.t, test.q, test.u) * test.b0
        )
    return predictions


def compare_models(obs: Transitions, confidence: float = 0.95) -> ModelComparison:
    """Score the four models by leave-one-seed-out prediction and decide whether q_t / u_t are credited.

    Verdict (see the module docstring): eq. 6 when its gains over generation effects and over the constant
    factor both have intervals above 0; else generation effects when their gain over the constant factor
    does; else the constant factor when its gain over no change does; else no change. Equal errors give a
    point interval at 0, so never a positive verdict. Not judged (``preferred`` None) with fewer than
    ``MIN_SEEDS`` runs or ``MIN_TRANSITIONS`` transitions per run, or q_t and u_t that do not vary.

    Args:
        obs: the transitions (``selfloop.analysis.eq6_transitions.transitions``).
        confidence: the intervals' nominal coverage.
    """
    metric = obs.metric
    if not len(obs):
        return _not_judged(metric, "there is no transition B_t -> B_t+1 with q_t and u_t")
    identified = spec(obs)
    if not identified.free:
        return _not_judged(
            metric,
            "q_t and u_t do not vary independently of the per-arch factor, so eq. 6 is the constant-factor model",
        )
    longest = max(len(np.unique(obs.t[obs.unit == k])) for k in np.unique(obs.unit))
    if longest < MIN_TRANSITIONS:
        return _not_judged(
            metric,
            f"the runs have {longest} transition{'s' * (longest != 1)}, and generation effects need at least "
            f"{MIN_TRANSITIONS} (generations 0 to {MIN_TRANSITIONS}) to differ from a constant factor",
        )
    predictions = cross_validated_predictions(obs)
    scored = np.logical_and.reduce([np.isfinite(p) for p in predictions.values()])
    errors = {m: (p - obs.b1)[scored] ** 2 for m, p in predictions.items()}
    units = obs.unit[scored]
    order = np.unique(units)
    known: dict[str, Any] = {
        "seeds": [obs.seeds[k] for k in order],
        "n_transitions": int(scored.sum()),
        "free": identified.free,
        "rmse": {m: float(np.sqrt(e.mean())) if len(e) else math.nan for m, e in errors.items()},
    }
    if len(order) < MIN_SEEDS:
        n_runs = len(np.unique(obs.unit))
        seeds = f"{n_runs} seed{'s' * (n_runs != 1)}"
        if n_runs >= MIN_SEEDS:  # a seed whose transitions no other seed has cannot be predicted
            seeds = f"{len(order)} of {seeds} could be scored"
        return _not_judged(metric, f"{seeds}, and leaving one seed out needs at least {MIN_SEEDS}", **known)
    # The floor, far below any real error, keeps exact fits finite; differences below TIE are rounding.
    floor = 1e-12 * float(np.mean(obs.b1[scored] ** 2)) + 1e-300
    per_seed = {m: np.log(np.array([e[units == k].mean() for k in order]) + floor) for m, e in errors.items()}

    def gain(simpler: Model, richer: Model) -> SeedInterval:
        d = per_seed[simpler] - per_seed[richer]
        return t_interval(np.where(np.abs(d) <= TIE, 0.0, d), confidence)

    gains = {name: gain(simpler, richer) for name, simpler, richer in GAINS}
    within = any(within_generation_terms(obs))
    return ModelComparison(
        metric=metric, **known, **gains, **_verdict(metric, identified.free, within, gains)
    )


def _verdict(metric: str, free: list[str], within: bool, gains: dict[str, SeedInterval]) -> dict[str, Any]:
    terms = " and ".join({"kappa_Q": "q_t", "kappa_U": "u_t"}[k] for k in free)
    beats, adds = gains["eq6_vs_generation"], gains["terms_vs_generation"]
    if beats.sign > 0 and adds.sign > 0:
        return {
            "preferred": "eq. 6",
            "verdict": (
                f"{terms} improve the one-step prediction of {metric} beyond generation effects: predicting each seed "
                f"from the other seeds, eq. 6 lowers the held-out MSE of a factor per transition by {reduction(beats)}, "
                f"and adding {terms} to that factor lowers it by {reduction(adds)}."
            ),
        }
    if adds.sign > 0:
        return {
            "preferred": "eq. 6 + generation effects",
            "verdict": (
                f"{terms} predict {metric} beyond the generation index (predicting each seed from the other seeds, "
                f"adding them to a factor per transition lowers its held-out MSE by {reduction(adds)}), but eq. 6 "
                f"without that factor does not beat it ({reduction(beats)}): A_t also changes with the generation "
                f"in a way {terms} do not explain."
            ),
        }
    why = (
        f"adding {terms} to it lowers it by {reduction(adds)}"
        if within
        else f"{terms} vary only with the generation, so their effect cannot be told from it"
    )
    credit = (
        f"{terms} are not credited, as they must beat a factor per transition (generation effects) both in eq. 6 "
        f"and added to it: eq. 6 lowers its held-out MSE by {reduction(beats)}, and {why}."
    )
    if gains["generation_vs_constant"].sign > 0:
        return {
            "preferred": "generation effects",
            "verdict": (
                f"A_t of {metric} changes with the generation: a factor per transition lowers the held-out MSE of a "
                f"constant factor per arch by {reduction(gains['generation_vs_constant'])}. {credit}"
            ),
        }
    if gains["constant_vs_none"].sign > 0:
        return {
            "preferred": "constant factor",
            "verdict": (
                f"A constant factor per arch (A = c_M) predicts {metric} better than no change, lowering its held-out "
                f"MSE by {reduction(gains['constant_vs_none'])}, with no detectable generation effect "
                f"({reduction(gains['generation_vs_constant'])}). {credit}"
            ),
        }
    return {
        "preferred": "no change",
        "verdict": (
            f"No model beats no change (A = 1) for {metric}: a constant factor per arch lowers its held-out MSE by "
            f"{reduction(gains['constant_vs_none'])}. {credit}"
        ),
    }


def compare_bias_models(
    table: Iterable[Run] | Iterable[Mapping[str, Any]],
    metric: str = "md",
    q_metric: str = Q_METRIC,
    u_metric: str | None = U_METRIC,
    confidence: float = 0.95,
) -> ModelComparison:
    """``compare_models`` on the runs of one experiment (see ``eq6_transitions.transitions`` for the table).

    Raises:
        ValueError: when a metric is missing or the table spans several experiments.
    """
    return compare_models(transitions(table, metric, q_metric, u_metric), confidence)

"""The observations behind eq. 6: one transition ``B_t -> B_{t+1}`` per run, arch and generation.

A transition carries the bias of the generation-t classifier ``B_t`` (``b0``), that of generation t+1
(``b1``), and the quality ``q_t`` and unbalance ``u_t`` of the samples that entered generation t+1's
training set: the generator rows logged under generation t+1. Bias metrics that are fairness scores
(``meo``, ``di``: 1 is fair) become ``1 - value`` (``selfloop.core.catalogue.is_fairness_score``).

Measurement noise: B is computed on a finite test split, so each observed ``B_t`` carries binomial noise.
Given the split's size, ``md_noise_variance`` approximates it for MD (``var_b0``), which the fit turns into
the attenuation of its factors (``selfloop.analysis.eq6_fit``).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from selfloop.analysis.runs import GENERATOR_ARCH, Run
from selfloop.core.catalogue import is_fairness_score

Q_METRIC, U_METRIC = "gen_label_acc_kept", "u_t"
"""The generator metrics used as q_t (class fidelity of the kept samples) and u_t (their unbalance)."""

_SUBGROUP_ACC = re.compile(r"subgroup_acc_(\d+)")
# Value by (unit, generation, arch, metric); a unit is a run (or a seed, for tidy rows).
Cells = dict[tuple[int, int, str, str], float]


@dataclass(frozen=True)
class Transitions:
    """Observed transitions, one array entry each (all arrays have one length).

    Args:
        unit: index of the run (into ``seeds``); runs are the independent replicates.
        arch: index of the classifier arch (into ``archs``).
        t: the generation the transition starts from.
        b0: ``B_t``.
        b1: ``B_{t+1}``.
        q: ``q_t``, the quality of the samples that entered generation t+1.
        u: ``u_t``, their unbalance (0 when no u_t metric is used).
        var_b0: binomial measurement variance of ``b0`` (NaN when unknown, see ``md_noise_variance``).
        archs: arch names.
        seeds: the seed of each unit.
        metric: the bias metric B.
        use_u: whether u_t is a regressor (a u_t metric was given).
    """

    unit: np.ndarray
    arch: np.ndarray
    t: np.ndarray
    b0: np.ndarray
    b1: np.ndarray
    q: np.ndarray
    u: np.ndarray
    var_b0: np.ndarray
    archs: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    metric: str = "md"
    use_u: bool = True

    _ARRAYS = ("unit", "arch", "t", "b0", "b1", "q", "u", "var_b0")

    def __len__(self) -> int:
        return len(self.b0)

    @property
    def n_arch(self) -> int:
        return len(self.archs)

    def subset(self, mask: np.ndarray) -> Transitions:
        """The transitions where ``mask`` is True (same archs and seeds)."""
        return replace(self, **{f: getattr(self, f)[mask] for f in self._ARRAYS})

    def concat(self, parts: Sequence[Transitions]) -> Transitions:
        """``parts`` (subsets of this table) one after the other, e.g. a bootstrap resample of runs."""
        return replace(self, **{f: np.concatenate([getattr(p, f) for p in parts]) for f in self._ARRAYS})


def read_cells(table: Iterable[Run] | Iterable[Mapping[str, Any]]) -> tuple[Cells, list[int]]:
    """Values by (unit, generation, arch, metric) and the seed of each unit.

    Runs are their own units (so two runs with one seed stay two samples); tidy rows use the seed.

    Raises:
        ValueError: when the runs or rows span several groups, or a row is not tidy.
    """
    items = list(table)
    cells: Cells = {}
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


def md_noise_variance(subgroup_acc: Sequence[float], test_size: int) -> float:
    """Binomial variance of a measured MD: the two subgroups that set it, each of ``test_size / G`` samples.

    MD is ``max |a_i - a_j|``; near the maximising pair (i, j) its noise is that of ``a_i - a_j``, whose
    variance is ``(a_i (1 - a_i) + a_j (1 - a_j)) / (test_size / G)`` for G equal subgroups. Unequal
    subgroups make the smaller ones noisier, so this is a lower bound for them.

    Args:
        subgroup_acc: the accuracy of each subgroup (NaN for an empty one, left out).
        test_size: samples in the test split.

    Returns:
        The variance; NaN with fewer than two subgroups.
    """
    a = np.asarray([x for x in subgroup_acc if math.isfinite(x)], dtype=float)
    if len(a) < 2 or test_size <= 0:
        return math.nan
    i, j = int(np.argmax(a)), int(np.argmin(a))
    return float((a[i] * (1 - a[i]) + a[j] * (1 - a[j])) * len(a) / test_size)


def _measurement_variance(
    cells: Cells, metric: str, test_size: int | None
) -> dict[tuple[int, int, str], float]:
    """``md_noise_variance`` per (unit, generation, arch) from the logged ``subgroup_acc_<i>`` (MD only)."""
    if test_size is None or metric != "md":
        return {}
    accs: dict[tuple[int, int, str], list[float]] = defaultdict(list)
    for (unit, g, a, m), v in cells.items():
        if a != GENERATOR_ARCH and _SUBGROUP_ACC.fullmatch(m):
            accs[unit, g, a].append(v)
    return {key: md_noise_variance(values, test_size) for key, values in accs.items()}


def transitions(
    table: Iterable[Run] | Iterable[Mapping[str, Any]],
    metric: str = "md",
    q_metric: str = Q_METRIC,
    u_metric: str | None = U_METRIC,
    test_size: int | None = None,
) -> Transitions:
    """Every transition ``B_t -> B_{t+1}`` with finite B, q_t and u_t in the runs of one experiment.

    Args:
        table: the runs of one experiment (``Run`` objects of one group) or tidy rows (mappings with
            ``generation, arch, seed, metric, value``; an optional ``group`` must take one value).
        metric: the bias metric B.
        q_metric: the generator metric used as data quality q_t.
        u_metric: the generator metric used as unbalanced generation u_t; None leaves u_t out (0).
        test_size: samples in the test split that B is measured on; with MD and logged
            ``subgroup_acc_<i>`` it gives ``var_b0`` (else NaN).

    Raises:
        ValueError: when a metric is missing or the table spans several experiments.
    """
    cells, seeds = read_cells(table)
    logged = {m for (_, _, _, m) in cells}
    for name in (metric, q_metric, u_metric):
        if name is not None and name not in logged:
            raise ValueError(
                f"no '{name}' rows in the table; eq. 6 needs B_t ({metric}), q_t ({q_metric}) and u_t ({u_metric})"
            )
    flip = is_fairness_score(metric)
    variance = _measurement_variance(cells, metric, test_size)
    bias: dict[tuple[int, str], dict[int, float]] = defaultdict(dict)
    for (unit, g, a, m), v in cells.items():
        if m == metric and a != GENERATOR_ARCH and math.isfinite(v):
            bias[unit, a][g] = 1.0 - v if flip else v
    archs = sorted({a for (_, a) in bias})
    columns: dict[str, list[float]] = {f: [] for f in Transitions._ARRAYS}
    for (unit, arch), series in sorted(bias.items()):
        for t, b0 in sorted(series.items()):
            if t + 1 not in series:
                continue
            # The samples logged under generation t+1 are the ones added to generation t+1's training set.
            q = cells.get((unit, t + 1, GENERATOR_ARCH, q_metric), math.nan)
            u = cells.get((unit, t + 1, GENERATOR_ARCH, u_metric), math.nan) if u_metric else 0.0
            if not (math.isfinite(q) and math.isfinite(u)):
                continue
            values = (
                unit,
                archs.index(arch),
                t,
                b0,
                series[t + 1],
                q,
                u,
                variance.get((unit, t, arch), math.nan),
            )
            for name, value in zip(Transitions._ARRAYS, values, strict=True):
                columns[name].append(value)
    integer = {"unit", "arch", "t"}
    arrays = {f: np.asarray(columns[f], dtype=int if f in integer else float) for f in Transitions._ARRAYS}
    return Transitions(
        **arrays, archs=tuple(archs), seeds=tuple(seeds), metric=metric, use_u=u_metric is not None
    )

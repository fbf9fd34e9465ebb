"""Expert-guided filtering: score every candidate, drop the weakest r% per class.

Two selection rules (``mode``), both applied per class:

* ``quantile`` (default): generate ``ceil(k / (1 - r))`` candidates per class and keep the ``k``
  best-scored ones, so exactly ``k`` survive per class and the queue stays class-balanced.
* ``score_range`` (the paper's appendix C): split each class's score range ``[min, max]`` into 10
  equal bins and keep the samples in the top ``(1 - r)`` of the range, i.e. those with
  ``score >= min + r * (max - min)``. ``r`` is used exactly, not rounded to whole bins; for the
  paper's values (r = 0.1 MNIST, 0.3 CIFAR, 0.6 ImageNet) the threshold is a bin edge, e.g. r = 0.1
  keeps the top 9 bins. Only ``k`` candidates are generated per class (no over-generation), so how
  many survive depends on how the scores spread: at most ``k`` and at least one per class.

Several scorers' scores are combined per class (``combine``), so that scorers on different scales (a
probability, a cosine similarity) weigh equally and a scorer's per-class offsets (some class prompts
have systematically higher CLIP scores) cannot push one class's candidates above another's:

* ``range_mean``: each scorer's scores are placed in their class's score range, ``(s - min) / (max -
  min)`` in [0, 1] (a constant class gets 1), and averaged. The position is an affine map of the
  score within its class, so the shape of each score distribution, which the paper's range rule
  depends on, is kept: a sample in the bottom bins of both scorers' ranges lands in the bottom bins
  of the combined range. The paper configs use it.
* ``rank_mean`` (the default): each scorer's scores become ranks scaled to [0, 1] (ties share their mean rank;
  scipy's ``rankdata``) and the ranks are averaged. Robust to outliers, but rank-mean scores are spread
  evenly over [0, 1], which makes the range rule close to the quantile rule.

A single scorer's raw scores are used as they are under either rule.

Which candidates of a class's pool survive is the ``selection`` rule (``selfloop.filtering.selection``):
``score`` (default) keeps the best-scored ones as described above; ``subgroup_balanced`` and ``diversity``
look at the pool as a whole (subgroup mix, spread in a feature space) within the same per-class budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor

from selfloop.filtering.scorers import Scorer, ScoringContext, UncertaintyScorer
from selfloop.filtering.selection import (
    AMBIGUOUS,
    BALANCE_TARGETS,
    DIVERSITY_POOLS,
    SELECTIONS,
    BalanceTarget,
    DiversityPool,
    Selection,
    balanced_pick,
    cell_counts,
    cell_targets,
    check_subgroup_ids,
    k_center,
)

FilterMode = Literal["quantile", "score_range"]
CombineRule = Literal["range_mean", "rank_mean"]
COMBINE_RULES: tuple[str, ...] = ("range_mean", "rank_mean")
FILTER_MODES: tuple[str, ...] = ("quantile", "score_range")
SCORE_RANGE_BINS = 10
"""Bins of a class's score range in the paper's rule (each 10% of the range); used by the audit plots."""


@dataclass
class FilterResult:
    """The filter's verdict on a generation's candidates.

    Args:
        scores: combined score per candidate.
        per_scorer: each scorer's raw score per candidate.
        keep: boolean mask of the survivors.
        threshold: float64 ``(num_classes,)``, the score threshold used per class: in ``score_range``
            mode ``min + r * (max - min)`` (unless ``diversity_pool: all`` ignored it); otherwise the
            score of the class's weakest survivor. NaN for a class without candidates (or without
            survivors).
        mode: the per-class rule (``quantile`` or ``score_range``) that set each class's pool and budget.
        selection: the pool-level rule that chose the survivors within them (``score``,
            ``subgroup_balanced``, ``diversity``).
        subgroups: int64 ``(N,)`` subgroup per candidate as the loop's subgroup oracle read it (-1
            ambiguous); None when the loop passed none (then the three counts below are None too).
        cell_kept: int64 ``(num_classes, num_subgroups)`` survivors per (class, subgroup) cell.
        cell_missing: int64 ``(num_classes, num_subgroups)`` survivors that ``subgroup_balanced`` wanted
            in a cell but the class's pool lacked (not re-filled from other cells); zeros under the
            rules without a per-cell target.
        ambiguous_kept: int64 ``(num_classes,)`` survivors of ambiguous subgroup (always 0 under
            ``subgroup_balanced``, which never keeps them).
    """

    scores: Tensor
    per_scorer: dict[str, Tensor]
    keep: Tensor
    threshold: Tensor
    mode: str = "quantile"
    selection: str = "score"
    subgroups: Tensor | None = None
    cell_kept: Tensor | None = None
    cell_missing: Tensor | None = None
    ambiguous_kept: Tensor | None = None

    def cell_metrics(self) -> dict[str, float]:
        """Per-generation scalars for the metrics log: ``kept_c<c>_g<g>`` and ``missing_c<c>_g<g>`` per
        cell, their totals ``cell_missing_total`` and ``ambiguous_kept``; empty without subgroups."""
        if self.cell_kept is None or self.cell_missing is None or self.ambiguous_kept is None:
            return {}
        metrics: dict[str, float] = {}
        classes, subgroups = self.cell_kept.shape
        for c in range(classes):
            for g in range(subgroups):
                metrics[f"kept_c{c}_g{g}"] = float(self.cell_kept[c, g])
                metrics[f"missing_c{c}_g{g}"] = float(self.cell_missing[c, g])
        metrics["cell_missing_total"] = float(self.cell_missing.sum())
        metrics["ambiguous_kept"] = float(self.ambiguous_kept.sum())
        return metrics

    def with_keep(self, keep: Tensor, labels: Tensor) -> FilterResult:
        """A copy with another keep mask (e.g. after a person's review) and its per-cell counts recounted.

        ``cell_missing`` stays: it is the filter's shortfall against its own target, which a review does
        not change.

        Args:
            keep: boolean ``(N,)`` survivors.
            labels: int64 ``(N,)`` class per candidate.
        """
        result = replace(self, keep=keep)
        if self.subgroups is not None and self.cell_kept is not None:
            shape = (self.cell_kept.shape[0], self.cell_kept.shape[1])
            result.cell_kept, result.ambiguous_kept = _kept_cells(labels, self.subgroups, keep, shape)
        return result


def _kept_cells(
    labels: Tensor, subgroups: Tensor, keep: Tensor, shape: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """Survivors per (class, subgroup) cell and survivors of ambiguous subgroup per class."""
    labels, keep = labels.cpu().long(), keep.cpu().bool()
    num_classes, num_subgroups = shape
    cells = cell_counts(labels[keep], subgroups[keep], num_classes, num_subgroups)
    ambiguous = torch.bincount(labels[keep & (subgroups == AMBIGUOUS)], minlength=num_classes)
    return cells, ambiguous


@dataclass
class _Selected:
    """What a selection rule decided: survivors, per-class thresholds, per-cell shortfall (or None)."""

    keep: Tensor
    threshold: Tensor
    cell_missing: Tensor | None


class SampleFilter:
    """Drops the weakest ``drop_fraction`` of each class's candidates by score (see the module doc), or,
    with another ``selection``, chooses the same per-class budget by subgroup mix or spread.

    Args:
        drop_fraction: r (paper: 0.1 MNIST, 0.3 CIFAR, 0.6 ImageNet); 0 keeps everything. In
            ``quantile`` mode the fraction of candidates dropped per class, in ``score_range`` mode
            the fraction of each class's score range dropped from the bottom.
        scorers: the scorers (default: the previous classifier's MC-dropout confidence).
        mode: ``quantile`` keeps exactly ``k`` per class out of ``ceil(k / (1 - r))``; ``score_range``
            keeps the candidates whose score lies in the top ``(1 - r)`` of their class's score range.
        combine: how several scorers' scores are combined per class: ``range_mean``, the mean of each
            scorer's position in its class's score range; ``rank_mean``, the mean of ranks scaled to
            [0, 1] (see the module doc).
        selection: which candidates of a class's pool survive, within the class's budget (see
            ``selfloop.filtering.selection``): ``score``, the best-scored; ``subgroup_balanced``, the
            best-scored per subgroup up to a target subgroup mix (needs the candidates' subgroup ids
            from the loop; candidates of ambiguous subgroup are never kept; short cells are reported,
            not re-filled); ``diversity``, greedy k-center in a feature space from the best-scored
            candidate (needs the candidates' features from the loop).
        balance_target: the subgroup mix ``subgroup_balanced`` aims for in every class: ``uniform``
            (equal shares) or ``real`` (the real training set's per-class mix, passed by the loop).
        diversity_pool: the candidates ``diversity`` chooses from: ``above_threshold``, the mode's
            pool (under ``score_range`` those at or above the range threshold; under ``quantile``
            every candidate); ``all``, every candidate of the class (the budget stays the mode's).
    """

    def __init__(
        self,
        drop_fraction: float = 0.1,
        scorers: list[Scorer] | None = None,
        mode: FilterMode = "quantile",
        combine: CombineRule = "rank_mean",
        selection: Selection = "score",
        balance_target: BalanceTarget = "uniform",
        diversity_pool: DiversityPool = "above_threshold",
    ) -> None:
        if not 0 <= drop_fraction < 1:
            raise ValueError(f"--filter.drop_fraction must be in [0, 1), got {drop_fraction}")
        if mode not in FILTER_MODES:
            raise ValueError(f"--filter.mode must be one of {', '.join(FILTER_MODES)}, got {mode!r}")
        if combine not in COMBINE_RULES:
            raise ValueError(f"--filter.combine must be one of {', '.join(COMBINE_RULES)}, got {combine!r}")
        for flag, value, choices in (
            ("selection", selection, SELECTIONS),
            ("balance_target", balance_target, BALANCE_TARGETS),
            ("diversity_pool", diversity_pool, DIVERSITY_POOLS),
        ):
            if value not in choices:
                raise ValueError(f"--filter.{flag} must be one of {', '.join(choices)}, got {value!r}")
        self.drop_fraction = drop_fraction
        self.mode: FilterMode = mode
        self.combine: CombineRule = combine
        self.selection: Selection = selection
        self.balance_target: BalanceTarget = balance_target
        self.diversity_pool: DiversityPool = diversity_pool
        self.scorers = list(scorers) if scorers is not None else [UncertaintyScorer()]
        if not self.scorers:
            raise ValueError("--filter.scorers must name at least one scorer")
        names = [s.name for s in self.scorers]
        if len(set(names)) != len(names):
            raise ValueError(f"--filter.scorers must not repeat a scorer, got {names}")
        # The CLI builds the filter before the run starts: missing CLIP weights stop it here, not after
        # the first generator fit.
        for scorer in self.scorers:
            scorer.preflight()

    def candidates_per_class(self, kept_per_class: int) -> int:
        """How many candidates to generate per class for ``kept_per_class`` nominal survivors.

        ``quantile``: ``ceil(k / (1 - r))`` so that exactly ``k`` survive. ``score_range``: ``k``, the
        paper's procedure (how many survive depends on the scores).
        """
        if self.mode == "score_range":
            return kept_per_class
        # round() first: 9 / (1 - 0.1) is 10.000000000000002 in floating point, not 10.
        return math.ceil(round(kept_per_class / (1 - self.drop_fraction), 6))

    def score(
        self, images: Tensor, labels: Tensor, context: ScoringContext
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Combined and per-scorer scores of the candidates."""
        per_scorer = {s.name: s.score(images, labels, context).float().cpu() for s in self.scorers}
        for name, values in per_scorer.items():
            if values.shape != labels.shape:
                raise ValueError(
                    f"scorer {name!r} returned shape {tuple(values.shape)}, expected {tuple(labels.shape)}"
                )
            bad = int((~torch.isfinite(values)).sum())
            if bad:
                raise ValueError(
                    f"scorer {name!r} returned {bad} non-finite scores (NaN or inf) of {len(values)}"
                )
        return self.combine_scores(per_scorer, labels), per_scorer

    def combine_scores(self, per_scorer: dict[str, Tensor], labels: Tensor) -> Tensor:
        """Combine per-scorer scores per class with ``combine`` (a single scorer's scores pass unchanged)."""
        if len(per_scorer) == 1:
            return next(iter(per_scorer.values()))
        unit = _unit_ranks if self.combine == "rank_mean" else _unit_range
        labels = labels.cpu()
        combined = torch.zeros(len(labels))
        for c in labels.unique().tolist():
            members = (labels == c).nonzero().flatten()
            combined[members] = torch.stack([unit(values[members]) for values in per_scorer.values()]).mean(0)
        return combined

    def select_with_threshold(
        self, scores: Tensor, labels: Tensor, kept_per_class: int, num_classes: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """The survivors' mask and the per-class threshold (see ``FilterResult.threshold``) under the
        ``score`` selection (the other selections need the loop's subgroups or features: ``__call__``).

        Args:
            scores: combined score per candidate.
            labels: class per candidate.
            kept_per_class: k, survivors per class in ``quantile`` mode and the cap in ``score_range``
                mode (only reached when more than ``k`` candidates of a class were generated).
            num_classes: length of the threshold tensor (default: the largest label + 1).
        """
        selected = self._select("score", scores, labels, kept_per_class, num_classes)
        return selected.keep, selected.threshold

    def _select(
        self,
        selection: Selection,
        scores: Tensor,
        labels: Tensor,
        kept_per_class: int,
        num_classes: int | None,
        subgroups: Tensor | None = None,
        num_subgroups: int | None = None,
        real_mix: Tensor | None = None,
        features: Tensor | None = None,
    ) -> _Selected:
        scores, labels = scores.cpu(), labels.cpu()
        num_classes = max(num_classes or 0, int(labels.max()) + 1 if len(labels) else 0)
        keep = torch.zeros(len(scores), dtype=torch.bool)
        threshold = torch.full((num_classes,), math.nan, dtype=torch.float64)
        missing = None
        if selection == "subgroup_balanced":
            assert subgroups is not None and num_subgroups is not None
            missing = torch.zeros(num_classes, num_subgroups, dtype=torch.long)
        for c in labels.unique().tolist():
            members = (labels == c).nonzero().flatten()
            values = scores[members].double()
            order = torch.argsort(values, descending=True, stable=True)
            # The mode sets the pool (a prefix of the score order) and the budget; the selection picks.
            pool_size = len(order)
            if self.mode == "score_range":
                low, high = values.min(), values.max()
                cut = low + self.drop_fraction * (high - low)
                pool_size = int((values >= cut).sum())
                threshold[c] = cut
            budget = min(pool_size, kept_per_class)
            if selection == "score":
                chosen = order[:budget]
            elif selection == "subgroup_balanced":
                assert subgroups is not None and missing is not None
                pool = order[:pool_size]
                targets = cell_targets(budget, self._target_mix(c, num_subgroups, real_mix))
                positions, _, missing[c] = balanced_pick(subgroups[members[pool]], targets)
                chosen = pool[positions]
            else:
                assert features is not None
                if self.diversity_pool == "all":
                    pool_size = len(order)
                    threshold[c] = math.nan
                pool = order[:pool_size]
                chosen = pool[k_center(features[members[pool]], budget)]
            if len(chosen) and math.isnan(threshold[c]):
                threshold[c] = values[chosen].min()
            keep[members[chosen]] = True
        return _Selected(keep, threshold, missing)

    def _target_mix(self, label: int, num_subgroups: int | None, real_mix: Tensor | None) -> Tensor:
        """The subgroup shares ``subgroup_balanced`` aims for in class ``label``."""
        if self.balance_target == "uniform":
            assert num_subgroups is not None
            return torch.ones(num_subgroups, dtype=torch.float64)
        assert real_mix is not None
        if not bool(real_mix[label].sum() > 0):
            raise ValueError(
                f"--filter.balance_target real: the real training set has no sample of known subgroup in "
                f"class {label}, so it gives no subgroup mix to balance to; use --filter.balance_target uniform"
            )
        return real_mix[label]

    def _check_pool_inputs(
        self,
        labels: Tensor,
        num_classes: int,
        subgroups: Tensor | None,
        num_subgroups: int | None,
        real_mix: Tensor | None,
        features: Tensor | None,
    ) -> tuple[Tensor | None, int | None, Tensor | None, Tensor | None]:
        """The pool inputs on the CPU, checked against the candidates and against what the selection needs."""
        n = len(labels)
        if self.selection == "subgroup_balanced" and subgroups is None:
            raise ValueError(
                "--filter.selection subgroup_balanced needs the candidates' subgroup ids (the data set's "
                "subgroup oracle), and none were passed; use --filter.selection score or diversity"
            )
        if self.selection == "diversity" and features is None:
            raise ValueError(
                "--filter.selection diversity needs the candidates' features, and none were passed"
            )
        if subgroups is not None:
            subgroups = subgroups.cpu().long()
            if num_subgroups is None and real_mix is not None:
                num_subgroups = int(real_mix.shape[1])
            if num_subgroups is None:
                raise ValueError("subgroup ids were passed without num_subgroups (the data set's G)")
            if subgroups.shape != labels.shape:
                raise ValueError(f"{len(subgroups)} subgroup ids for {n} candidates")
            check_subgroup_ids(subgroups, num_subgroups, "candidate subgroups")
        if self.selection == "subgroup_balanced" and self.balance_target == "real":
            if real_mix is None:
                raise ValueError(
                    "--filter.balance_target real needs the real training set's per-class subgroup mix "
                    "(real_mix, see selfloop.filtering.selection.subgroup_mix), and none was passed"
                )
            real_mix = real_mix.cpu().double()
            if real_mix.dim() != 2 or real_mix.shape[0] < num_classes or real_mix.shape[1] != num_subgroups:
                raise ValueError(
                    f"real_mix has shape {tuple(real_mix.shape)}, expected ({num_classes}, {num_subgroups})"
                )
        if features is not None:
            features = features.detach().cpu()
            if features.dim() < 2 or len(features) != n:
                raise ValueError(f"features of shape {tuple(features.shape)} for {n} candidates")
            if not bool(torch.isfinite(features).all()):
                raise ValueError("the candidates' features hold non-finite values (NaN or inf)")
        return subgroups, num_subgroups, real_mix, features

    def __call__(
        self,
        images: Tensor,
        labels: Tensor,
        context: ScoringContext,
        kept_per_class: int,
        *,
        subgroups: Tensor | None = None,
        num_subgroups: int | None = None,
        real_mix: Tensor | None = None,
        features: Tensor | None = None,
    ) -> FilterResult:
        """Score the candidates and choose the survivors.

        Args:
            images: uint8 ``(N, C, H, W)`` candidates.
            labels: int64 ``(N,)`` the classes they were generated for.
            context: see ``ScoringContext``.
            kept_per_class: k (see ``select_with_threshold``).
            subgroups: int64 ``(N,)`` each candidate's subgroup as the data set's subgroup oracle reads
                it (-1 ambiguous). Needed by ``subgroup_balanced``; under any selection it fills the
                result's per-cell counts and the audit's subgroup column.
            num_subgroups: G, the data set's number of subgroups (needed with ``subgroups``; default
                ``real_mix.shape[1]``).
            real_mix: float ``(num_classes, G)``, the real training set's subgroup shares per class
                (``selfloop.filtering.selection.subgroup_mix``); needed by ``balance_target: real``.
            features: ``(N, D)`` the candidates' features (e.g. the judge's penultimate features,
                ``selfloop.metrics.fid.penultimate_extractor``); needed by ``diversity``.
        """
        num_classes = len(context.class_names)
        subgroups, num_subgroups, real_mix, features = self._check_pool_inputs(
            labels, num_classes, subgroups, num_subgroups, real_mix, features
        )
        scores, per_scorer = self.score(images, labels, context)
        selected = self._select(
            self.selection,
            scores,
            labels,
            kept_per_class,
            num_classes,
            subgroups,
            num_subgroups,
            real_mix,
            features,
        )
        result = FilterResult(
            scores=scores,
            per_scorer=per_scorer,
            keep=selected.keep,
            threshold=selected.threshold,
            mode=self.mode,
            selection=self.selection,
        )
        if subgroups is None or num_subgroups is None:
            return result
        shape = (len(selected.threshold), num_subgroups)
        result.subgroups = subgroups
        result.cell_kept, result.ambiguous_kept = _kept_cells(labels, subgroups, selected.keep, shape)
        no_target = torch.zeros(shape, dtype=torch.long)
        result.cell_missing = selected.cell_missing if selected.cell_missing is not None else no_target
        return result


def _unit_ranks(values: Tensor) -> Tensor:
    """Ranks in [0, 1] (ties share the mean rank), via scipy's well-tested rankdata."""
    from scipy.stats import rankdata

    if len(values) < 2:
        return torch.ones_like(values, dtype=torch.float32)
    ranks = torch.as_tensor(rankdata(values.numpy(), method="average"), dtype=torch.float32)
    return (ranks - 1) / (len(values) - 1)


def _unit_range(values: Tensor) -> Tensor:
    """Each value's position in the range ``[min, max]`` of ``values``, in [0, 1]; 1 when all are equal."""
    values = values.double()
    low, high = values.min(), values.max()
    if high == low:
        return torch.ones(len(values), dtype=torch.float32)
    return ((values - low) / (high - low)).float()

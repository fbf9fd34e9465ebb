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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from selfloop.filtering.scorers import Scorer, ScoringContext, UncertaintyScorer

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
            mode ``min + r * (max - min)``; in ``quantile`` mode the score of the class's weakest
            survivor. NaN for a class without candidates (or without survivors).
        mode: the selection rule that produced ``keep``.
    """

    scores: Tensor
    per_scorer: dict[str, Tensor]
    keep: Tensor
    threshold: Tensor
    mode: str = "quantile"


class SampleFilter:
    """Drops the weakest ``drop_fraction`` of each class's candidates by score (see the module doc).

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
    """

    def __init__(
        self,
        drop_fraction: float = 0.1,
        scorers: list[Scorer] | None = None,
        mode: FilterMode = "quantile",
        combine: CombineRule = "rank_mean",
    ) -> None:
        if not 0 <= drop_fraction < 1:
            raise ValueError(f"--filter.drop_fraction must be in [0, 1), got {drop_fraction}")
        if mode not in FILTER_MODES:
            raise ValueError(f"--filter.mode must be one of {', '.join(FILTER_MODES)}, got {mode!r}")
        if combine not in COMBINE_RULES:
            raise ValueError(f"--filter.combine must be one of {', '.join(COMBINE_RULES)}, got {combine!r}")
        self.drop_fraction = drop_fraction
        self.mode: FilterMode = mode
        self.combine: CombineRule = combine
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
        """The survivors' mask and the per-class threshold (see ``FilterResult.threshold``).

        Args:
            scores: combined score per candidate.
            labels: class per candidate.
            kept_per_class: k, survivors per class in ``quantile`` mode and the cap in ``score_range``
                mode (only reached when more than ``k`` candidates of a class were generated).
            num_classes: length of the threshold tensor (default: the largest label + 1).
        """
        scores, labels = scores.cpu(), labels.cpu()
        num_classes = max(num_classes or 0, int(labels.max()) + 1 if len(labels) else 0)
        keep = torch.zeros(len(scores), dtype=torch.bool)
        threshold = torch.full((num_classes,), math.nan, dtype=torch.float64)
        for c in labels.unique().tolist():
            members = (labels == c).nonzero().flatten()
            values = scores[members].double()
            order = torch.argsort(values, descending=True, stable=True)
            if self.mode == "score_range":
                low, high = values.min(), values.max()
                cut = low + self.drop_fraction * (high - low)
                eligible = int((values >= cut).sum())
                chosen = order[: min(eligible, kept_per_class)]
                threshold[c] = cut
            else:
                chosen = order[:kept_per_class]
                if len(chosen):
                    threshold[c] = values[chosen].min()
            keep[members[chosen]] = True
        return keep, threshold

    def __call__(
        self, images: Tensor, labels: Tensor, context: ScoringContext, kept_per_class: int
    ) -> FilterResult:
        scores, per_scorer = self.score(images, labels, context)
        keep, threshold = self.select_with_threshold(scores, labels, kept_per_class, len(context.class_names))
        return FilterResult(
            scores=scores, per_scorer=per_scorer, keep=keep, threshold=threshold, mode=self.mode
        )


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

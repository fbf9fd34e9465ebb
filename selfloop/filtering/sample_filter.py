"""Expert-guided filtering: score every candidate, drop the weakest r% per class."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from selfloop.filtering.scorers import Scorer, ScoringContext, UncertaintyScorer


@dataclass
class FilterResult:
    """The filter's verdict on a generation's candidates.

    Args:
        scores: combined score per candidate.
        per_scorer: each scorer's raw score per candidate.
        keep: boolean mask of the survivors.
    """

    scores: Tensor
    per_scorer: dict[str, Tensor]
    keep: Tensor


class SampleFilter:
    """Drops the bottom ``drop_fraction`` of each class's candidates by score.

    Per class, ``ceil(k / (1 - r))`` candidates are generated for ``k`` survivors, so exactly ``k``
    survive and classes stay balanced. With several scorers, scores are combined by rank average:
    each scorer's scores become ranks scaled to [0, 1] and the ranks are averaged, so scorers on
    different scales (a probability, a cosine similarity) weigh equally.

    Args:
        drop_fraction: r, the fraction of candidates dropped per class (paper: 0.1 MNIST,
            0.3 CIFAR, 0.6 ImageNet); 0 keeps everything.
        scorers: the scorers (default: the previous classifier's MC-dropout confidence).
    """

    def __init__(self, drop_fraction: float = 0.1, scorers: list[Scorer] | None = None) -> None:
        if not 0 <= drop_fraction < 1:
            raise ValueError(f"--filter.drop_fraction must be in [0, 1), got {drop_fraction}")
        self.drop_fraction = drop_fraction
        self.scorers = list(scorers) if scorers is not None else [UncertaintyScorer()]
        if not self.scorers:
            raise ValueError("--filter.scorers must name at least one scorer")

    def candidates_per_class(self, kept_per_class: int) -> int:
        """How many candidates to generate per class so that ``kept_per_class`` survive."""
        return math.ceil(round(kept_per_class / (1 - self.drop_fraction), 6))

    def score(self, images: Tensor, labels: Tensor, context: ScoringContext) -> tuple[Tensor, dict[str, Tensor]]:
        """Combined and per-scorer scores of the candidates."""
        per_scorer = {s.name: s.score(images, labels, context).float().cpu() for s in self.scorers}
        if len(per_scorer) == 1:
            return next(iter(per_scorer.values())), per_scorer
        ranks = torch.stack([_unit_ranks(v) for v in per_scorer.values()])
        return ranks.mean(0), per_scorer

    def select(self, scores: Tensor, labels: Tensor, kept_per_class: int) -> Tensor:
        """Keep the ``kept_per_class`` best-scored candidates of each class (ties: earlier first)."""
        keep = torch.zeros(len(scores), dtype=torch.bool)
        for c in labels.unique().tolist():
            members = (labels == c).nonzero().flatten()
            order = torch.argsort(scores[members], descending=True, stable=True)
            keep[members[order[:kept_per_class]]] = True
        return keep

    def __call__(self, images: Tensor, labels: Tensor, context: ScoringContext, kept_per_class: int) -> FilterResult:
        scores, per_scorer = self.score(images, labels, context)
        return FilterResult(scores=scores, per_scorer=per_scorer, keep=self.select(scores, labels, kept_per_class))


def _unit_ranks(values: Tensor) -> Tensor:
    """Ranks in [0, 1] (ties share the mean rank), via scipy's well-tested rankdata."""
    from scipy.stats import rankdata

    if len(values) < 2:
        return torch.ones_like(values)
    ranks = torch.as_tensor(rankdata(values.numpy(), method="average"), dtype=torch.float32)
    return (ranks - 1) / (len(values) - 1)

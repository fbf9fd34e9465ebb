"""Pool-level selection rules: which of a class's candidates survive, judged on the whole pool.

``SampleFilter(selection=...)`` picks a rule. Every rule works per class on two things that the filter's
``mode`` fixes first (see ``selfloop.filtering.sample_filter``):

* the class's *pool*: its candidates in score order, best first. Under ``quantile`` every candidate
  (the quantile rule has no score floor: dropping the surplus is the selection's job); under
  ``score_range`` those scoring at or above the range threshold ``min + r * (max - min)``.
* its *budget* B, how many may survive: ``min(k, pool size)``.

The rules:

* ``score`` (default): the B best-scored candidates of the pool, i.e. the filter as it always was.
* ``subgroup_balanced`` (algorithmic reparation, as in Wyllie et al., FAccT'24, "Fairness Feedback
  Loops"): B is split over the class's subgroups by a target mix (:func:`cell_targets`: ``uniform``,
  equal shares; ``real``, the real training set's mix of that class, :func:`subgroup_mix`), and each
  (class, subgroup) cell keeps its best-scored candidates up to its share (:func:`balanced_pick`), so
  quality still decides within a cell. A cell whose pool holds fewer candidates than its share stays
  short: the shortfall is returned per cell (``missing``) and is **not** re-filled from other cells,
  because re-filling would quietly move the kept mix back toward the generator's. Candidates whose
  subgroup the oracle could not read (id -1, ``AMBIGUOUS``) are **never kept** under balancing: they
  belong to no cell, and keeping them would add samples of unknown subgroup to a mix that is meant to
  match the target.
* ``diversity``: greedy k-center (farthest-point) selection in a feature space (:func:`k_center`):
  start from the best-scored candidate of the pool, then add, one at a time, the candidate farthest
  (Euclidean) from all those chosen so far, until B are chosen; among equally far candidates the
  better-scored one wins, so the choice is deterministic. The pool is the mode's (``diversity_pool:
  above_threshold``) or every candidate of the class (``all``: the ``score_range`` threshold then
  only sets the budget).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from selfloop.data.colour_oracle import AMBIGUOUS

Selection = Literal["score", "subgroup_balanced", "diversity"]
BalanceTarget = Literal["uniform", "real"]
DiversityPool = Literal["above_threshold", "all"]
SELECTIONS: tuple[str, ...] = ("score", "subgroup_balanced", "diversity")
BALANCE_TARGETS: tuple[str, ...] = ("uniform", "real")
DIVERSITY_POOLS: tuple[str, ...] = ("above_threshold", "all")


def check_subgroup_ids(subgroups: Tensor, num_subgroups: int, what: str = "subgroups") -> None:
    """Raise unless every id lies in ``[0, num_subgroups)`` or is ``AMBIGUOUS`` (-1)."""
    if num_subgroups < 1:
        raise ValueError(f"num_subgroups must be >= 1, got {num_subgroups}")
    bad = (subgroups < AMBIGUOUS) | (subgroups >= num_subgroups)
    if bool(bad.any()):
        raise ValueError(
            f"{what}: subgroup ids must lie in [0, {num_subgroups}) or be {AMBIGUOUS} (ambiguous); "
            f"got {int(subgroups[bad][0])}"
        )


def cell_counts(labels: Tensor, subgroups: Tensor, num_classes: int, num_subgroups: int) -> Tensor:
    """int64 ``(num_classes, num_subgroups)``: samples per (class, subgroup) cell; ambiguous ids left out.

    Args:
        labels: int64 ``(N,)`` class per sample, in ``[0, num_classes)``.
        subgroups: int64 ``(N,)`` subgroup per sample, in ``[0, num_subgroups)`` or ``AMBIGUOUS``.
        num_classes: C.
        num_subgroups: G.
    """
    labels, subgroups = labels.cpu().long(), subgroups.cpu().long()
    if labels.shape != subgroups.shape:
        raise ValueError(f"{len(subgroups)} subgroup ids but {len(labels)} labels")
    check_subgroup_ids(subgroups, num_subgroups)
    known = subgroups != AMBIGUOUS
    flat = labels[known] * num_subgroups + subgroups[known]
    return torch.bincount(flat, minlength=num_classes * num_subgroups).view(num_classes, num_subgroups)


def subgroup_mix(labels: Tensor, subgroups: Tensor, num_classes: int, num_subgroups: int) -> Tensor:
    """float64 ``(num_classes, num_subgroups)``: each subgroup's share among a class's samples.

    Samples of ambiguous subgroup are left out; a class without any known sample gets a row of zeros.
    ``subgroup_mix(real.labels, real.subgroups, C, G)`` of the real training set is the ``real``
    balance target of ``SampleFilter(selection="subgroup_balanced", balance_target="real")``.

    Args:
        labels: int64 ``(N,)`` class per sample.
        subgroups: int64 ``(N,)`` subgroup per sample (``AMBIGUOUS`` where unknown).
        num_classes: C.
        num_subgroups: G.
    """
    counts = cell_counts(labels, subgroups, num_classes, num_subgroups).double()
    totals = counts.sum(1, keepdim=True)
    return torch.where(totals > 0, counts / totals.clamp(min=1), torch.zeros_like(counts))


def cell_targets(budget: int, proportions: Tensor) -> Tensor:
    """Split ``budget`` survivors over subgroups by ``proportions``, by largest remainders.

    Hamilton's method: subgroup g first gets ``floor(budget * p_g)``; the survivors left over go one
    each to the subgroups with the largest remainders ``budget * p_g - floor(budget * p_g)``, ties to
    the lower subgroup id. The targets sum to ``budget`` and each is within 1 of ``budget * p_g``.

    Args:
        budget: B, survivors of the class.
        proportions: ``(G,)`` non-negative shares (normalised here; at least one positive).

    Returns:
        int64 ``(G,)`` targets.
    """
    p = proportions.double().cpu()
    if bool((p < 0).any()) or not bool(p.sum() > 0) or not bool(torch.isfinite(p).all()):
        raise ValueError(f"subgroup proportions must be finite, >= 0 and not all 0, got {p.tolist()}")
    # Rounded so that shares equal in exact arithmetic (1/3 each) tie exactly and go to the lower id.
    quota = torch.round(budget * p / p.sum(), decimals=9)
    targets = quota.floor()
    leftover = budget - int(targets.sum())
    order = torch.argsort(quota - targets, descending=True, stable=True)
    targets[order[:leftover]] += 1
    return targets.long()


def balanced_pick(pool_subgroups: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per subgroup, the first (best-scored) pool candidates up to the subgroup's target.

    Args:
        pool_subgroups: int64 ``(P,)`` subgroup of each pool candidate, the pool in score order (best
            first); ``AMBIGUOUS`` candidates are never picked.
        targets: int64 ``(G,)`` survivors wanted per subgroup (:func:`cell_targets`).

    Returns:
        ``(positions, kept, missing)``: the picked positions in the pool (ascending), and int64 ``(G,)``
        survivors and shortfall per subgroup (``kept + missing == targets``).
    """
    picked = []
    kept = torch.zeros(len(targets), dtype=torch.long)
    for g, target in enumerate(targets.tolist()):
        positions = (pool_subgroups == g).nonzero().flatten()[:target]
        picked.append(positions)
        kept[g] = len(positions)
    positions = torch.cat(picked).sort().values if picked else torch.zeros(0, dtype=torch.long)
    return positions, kept, targets.long() - kept


def k_center(features: Tensor, count: int) -> Tensor:
    """Greedy k-center (farthest-point) selection (Gonzalez, 1985) starting from position 0.

    Each step adds the point whose Euclidean distance to the nearest chosen point is largest; the
    covering radius of the result is at most twice the optimum. Among equally far points the first
    wins, so a pool given in score order starts from its best-scored candidate and breaks ties toward
    better scores.

    Args:
        features: ``(P, D)`` features of the pool (in score order, best first).
        count: how many to choose (at most ``P`` are).

    Returns:
        int64 positions into ``features`` in the order they were chosen.
    """
    count = min(count, len(features))
    if count <= 0:
        return torch.zeros(0, dtype=torch.long)
    points = features.detach().double().cpu().flatten(1)
    chosen = [0]
    # Exact distances (no matrix-product shortcut), so exact ties stay ties.
    nearest = torch.cdist(points, points[:1], compute_mode="donot_use_mm_for_euclid_dist").squeeze(1)
    nearest[0] = -torch.inf  # chosen points are never chosen again, even when duplicates remain
    for _ in range(1, count):
        pick = int(torch.argmax(nearest))  # the first maximum
        chosen.append(pick)
        step = torch.cdist(points, points[pick : pick + 1], compute_mode="donot_use_mm_for_euclid_dist")
        nearest = torch.minimum(nearest, step.squeeze(1))
        nearest[pick] = -torch.inf
    return torch.tensor(chosen, dtype=torch.long)

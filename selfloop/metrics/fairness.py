"""Subgroup fairness metrics computed from per-(class, subgroup) count matrices.

Every evaluation sample has a predicted class, a true class ``c`` in ``[0, C)`` and a subgroup index
``g`` in ``[0, G)``. All metrics below are derived from two ``(C, G)`` integer matrices: ``total[c, g]``
(samples of class ``c`` in subgroup ``g``) and ``correct[c, g]`` (those of them predicted correctly).
Keeping only these counts makes the metric additive across batches and across DDP ranks.

Let ``a_i`` be the accuracy of the samples in subgroup ``i`` pooled over all classes. Pairs are the
unordered pairs ``i < j`` of *non-empty* subgroups; an empty subgroup is reported as NaN in
``subgroup_acc`` and left out of every pair.

=======================  =================================================================================
key                      definition
=======================  =================================================================================
``acc``                  overall accuracy
``subgroup_acc``         list of G floats ``a_0 .. a_{G-1}`` (NaN for an empty subgroup)
``meo``                  ``1 - mean over pairs of |a_i - a_j|``
``di``                   ``1 - mean over pairs of |min(a_i, a_j) / max(a_i, a_j) - 1|``; a pair with
                         ``max = 0`` counts as ratio 1
``md``                   ``max over pairs of |a_i - a_j|``
``ranked_subgroup_acc``  list of length G: for each class, sort the accuracies of its non-empty
                         ``(c, g)`` cells ascending; entry ``k`` is the mean over classes of the ``k``-th
                         smallest (classes with fewer than ``k + 1`` non-empty cells are skipped for rank
                         ``k``; NaN where no class has ``k + 1`` cells)
``worst_group_acc``      min over non-empty ``(c, g)`` cells
``md_within_class``      mean over eligible classes of ``MD_c`` (see "Within-class disparities" below)
``meo_within_class``     mean over eligible classes of ``MEO_c``
``di_within_class``      mean over eligible classes of ``DI_c``
``worst_class_md``       max over eligible classes of ``MD_c``
``worst_class_meo``      min over eligible classes of ``MEO_c``
``worst_class_di``       min over eligible classes of ``DI_c``
=======================  =================================================================================

Within-class disparities:
    ``meo``, ``di`` and ``md`` compare subgroup "position ``g``" pooled over all classes. Where subgroup
    ``g`` of one class has nothing to do with subgroup ``g`` of another (CIFAR-20: position ``g`` is a
    different fine class in every superclass), pooling averages unrelated cells and hides disparities:
    with 20 classes of 5 subgroups and independent uniform cell accuracies, the pooled ``md`` is about
    0.16 while the mean within-class one is about 0.67. So
    the same three disparities are also computed inside each class ``c`` over its cell accuracies
    ``a_{c,g} = correct[c, g] / total[c, g]``: pairs ``g < h`` of non-empty cells of class ``c``,
    ``MD_c = max |a_{c,g} - a_{c,h}|``, ``MEO_c = 1 - mean |a_{c,g} - a_{c,h}|`` and
    ``DI_c = 1 - mean |min/max - 1|`` (a pair with ``max = 0`` counts as ratio 1). A class is
    *eligible* when it has at least two non-empty cells; the six keys are NaN when no class is.

Conventions:
    * With fewer than two non-empty subgroups there is no pair that could disagree, so
      ``meo = di = 1.0`` and ``md = 0.0``.
    * With no samples at all, ``acc`` and ``worst_group_acc`` are NaN.
    * The within-class keys are NaN, not "no disparity", when no class has two non-empty cells: an
      average over no class is unknown, and a pooled ``md = 0`` next to it already says "no pair".

Note on DI:
    The paper writes disparate impact as ``|a_i / a_j - 1|`` summed over ``i != j`` and divided by
    ``C(G, 2)``. That form is ambiguous (ordered pairs counted twice but divided by the number of
    unordered pairs), undefined when an accuracy is 0, and ``1 - DI`` can go negative because
    ``a_i / a_j`` is unbounded. We pin the symmetric form ``|min/max - 1|`` per unordered pair, which is
    in ``[0, 1]`` so ``di`` is in ``[0, 1]`` with 1 meaning perfectly equal subgroup accuracies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric

ArrayLike = torch.Tensor | np.ndarray | Sequence[Any]

WITHIN_CLASS_KEYS = (
    "md_within_class",
    "meo_within_class",
    "di_within_class",
    "worst_class_md",
    "worst_class_meo",
    "worst_class_di",
)
SUMMARY_KEYS = (
    "acc",
    "subgroup_acc",
    "meo",
    "di",
    "md",
    "ranked_subgroup_acc",
    "worst_group_acc",
    *WITHIN_CLASS_KEYS,
)


def _as_labels(preds: ArrayLike, num_classes: int) -> torch.Tensor:
    """Turn predicted labels or ``(N, num_classes)`` scores into a 1-D integer label tensor."""
    preds = torch.as_tensor(preds)
    if preds.ndim == 2:
        if preds.shape[1] != num_classes:
            raise ValueError(
                f"2-D preds must have shape (N, num_classes={num_classes}), got {tuple(preds.shape)}"
            )
        return preds.argmax(dim=1)
    if preds.ndim != 1:
        raise ValueError(f"preds must be 1-D labels or 2-D (N, C) scores, got shape {tuple(preds.shape)}")
    if preds.is_floating_point() or preds.is_complex():
        raise ValueError(f"1-D preds must be integer class labels, got dtype {preds.dtype}")
    return preds


def _check_ids(name: str, ids: torch.Tensor, upper: int) -> None:
    """Raise ValueError unless ``ids`` is a 1-D integer tensor with values in ``[0, upper)``."""
    if ids.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(ids.shape)}")
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"{name} must be integer indices, got dtype {ids.dtype}")
    if ids.numel() == 0:
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= upper:
        raise ValueError(f"{name} must lie in [0, {upper}), got values in [{lo}, {hi}]")


def _pair_terms(a_i: torch.Tensor, a_j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pair of accuracies: the gap ``|a_i - a_j|`` and the DI term ``|min / max - 1|``."""
    gaps = (a_i - a_j).abs()
    lo, hi = torch.minimum(a_i, a_j), torch.maximum(a_i, a_j)
    # max == 0 means both subgroups are equally (fully) wrong: no disparity, ratio 1. The clamp only
    # keeps the discarded branch of torch.where from evaluating 0/0.
    ratio = torch.where(hi > 0, lo / hi.clamp_min(torch.finfo(hi.dtype).tiny), torch.ones_like(hi))
    return gaps, (ratio - 1.0).abs()


def _within_class(cell_acc: torch.Tensor, nonempty: torch.Tensor) -> dict[str, float]:
    """The six within-class keys from float64 ``(C, G)`` cell accuracies and their non-empty mask."""
    num_subgroups = cell_acc.shape[1]
    iu = torch.triu_indices(num_subgroups, num_subgroups, offset=1, device=cell_acc.device)
    # Empty cells are NaN; zeroing them keeps NaN out of the sums, and ``valid`` drops their pairs.
    acc = torch.where(nonempty, cell_acc, torch.zeros_like(cell_acc))
    gaps, di_terms = _pair_terms(acc[:, iu[0]], acc[:, iu[1]])  # (C, pairs)
    valid = nonempty[:, iu[0]] & nonempty[:, iu[1]]
    n_pairs = valid.sum(dim=1)
    eligible = n_pairs > 0  # at least two non-empty cells
    if not bool(eligible.any()):
        return dict.fromkeys(WITHIN_CLASS_KEYS, float("nan"))
    zero = torch.zeros_like(gaps)
    n = n_pairs[eligible].to(gaps.dtype)
    md_c = torch.where(valid, gaps, zero).max(dim=1).values[eligible]  # gaps >= 0, so 0 fill is safe
    meo_c = 1.0 - torch.where(valid, gaps, zero).sum(dim=1)[eligible] / n
    di_c = 1.0 - torch.where(valid, di_terms, zero).sum(dim=1)[eligible] / n
    return {
        "md_within_class": float(md_c.mean().item()),
        "meo_within_class": float(meo_c.mean().item()),
        "di_within_class": float(di_c.mean().item()),
        "worst_class_md": float(md_c.max().item()),
        "worst_class_meo": float(meo_c.min().item()),
        "worst_class_di": float(di_c.min().item()),
    }


def count_matrices(
    preds: ArrayLike, targets: ArrayLike, subgroups: ArrayLike, num_classes: int, num_subgroups: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Count correct and total samples per (true class, subgroup) cell.

    Args:
        preds: Predicted labels of shape ``(N,)`` or scores/logits of shape ``(N, num_classes)``.
        targets: True labels of shape ``(N,)`` in ``[0, num_classes)``.
        subgroups: Subgroup indices of shape ``(N,)`` in ``[0, num_subgroups)``.
        num_classes: Number of classes ``C``.
        num_subgroups: Number of subgroups ``G``.

    Returns:
        ``(correct, total)``, two int64 tensors of shape ``(C, G)`` on the device of ``targets``.

    Raises:
        ValueError: On shape mismatch, non-integer labels, or ids outside their range.

    Example:
        >>> correct, total = count_matrices([0, 1], [0, 0], [1, 1], num_classes=2, num_subgroups=2)
        >>> correct.tolist(), total.tolist()
        ([[0, 1], [0, 0]], [[0, 2], [0, 0]])
    """
    if num_classes < 1 or num_subgroups < 1:
        raise ValueError(f"num_classes and num_subgroups must be >= 1, got {num_classes}, {num_subgroups}")
    targets = torch.as_tensor(targets)
    subgroups = torch.as_tensor(subgroups, device=targets.device)
    preds = _as_labels(torch.as_tensor(preds, device=targets.device), num_classes)
    _check_ids("targets", targets, num_classes)
    _check_ids("subgroups", subgroups, num_subgroups)
    if not preds.shape[0] == targets.shape[0] == subgroups.shape[0]:
        raise ValueError(
            "preds, targets and subgroups must have the same length, got "
            f"{preds.shape[0]}, {targets.shape[0]}, {subgroups.shape[0]}"
        )
    # One flat cell index per sample turns the 2-D histogram into a single bincount.
    cell = targets.long() * num_subgroups + subgroups.long()
    n_cells = num_classes * num_subgroups
    total = torch.bincount(cell, minlength=n_cells).reshape(num_classes, num_subgroups)
    hit = preds.long() == targets.long()
    correct = torch.bincount(cell[hit], minlength=n_cells).reshape(num_classes, num_subgroups)
    return correct, total


def summary_from_counts(correct: torch.Tensor, total: torch.Tensor) -> dict[str, float | list[float]]:
    """Compute all fairness metrics from ``(C, G)`` count matrices.

    This is the single implementation behind both :func:`fairness_summary` and :class:`GroupFairness`.

    Args:
        correct: Correctly predicted sample counts, shape ``(C, G)``.
        total: Sample counts, shape ``(C, G)``; must be ``>= correct`` element-wise.

    Returns:
        Dict with the keys of ``SUMMARY_KEYS`` in that order: ``acc``, ``subgroup_acc``, ``meo``, ``di``,
        ``md``, ``ranked_subgroup_acc``, ``worst_group_acc`` and the within-class ``md_within_class``,
        ``meo_within_class``, ``di_within_class``, ``worst_class_md``, ``worst_class_meo``,
        ``worst_class_di`` (see the module docstring). Scalars are python floats, list entries are python
        floats with NaN for empty subgroups / ranks.

    Example:
        >>> correct = torch.tensor([[2, 1, 0]])
        >>> total = torch.tensor([[2, 2, 2]])
        >>> s = summary_from_counts(correct, total)
        >>> s["subgroup_acc"], s["md"], round(s["meo"], 4)
        ([1.0, 0.5, 0.0], 1.0, 0.3333)
    """
    if correct.shape != total.shape or correct.ndim != 2:
        raise ValueError(
            f"correct and total must both have shape (C, G), got {tuple(correct.shape)}, {tuple(total.shape)}"
        )
    # float64 so that the returned python floats match a reference computed in plain python.
    correct = correct.detach().to(torch.float64)
    total = total.detach().to(torch.float64)
    nan = float("nan")
    num_subgroups = total.shape[1]

    acc = (correct.sum() / total.sum()).item()  # 0/0 -> NaN when there are no samples

    group_correct, group_total = correct.sum(dim=0), total.sum(dim=0)
    subgroup_acc = group_correct / group_total  # NaN for empty subgroups
    present = subgroup_acc[group_total > 0]

    if present.numel() >= 2:
        # Upper triangle of the pairwise matrices = unordered pairs i < j of non-empty subgroups.
        iu = torch.triu_indices(present.numel(), present.numel(), offset=1, device=present.device)
        gaps, di_terms = _pair_terms(present[iu[0]], present[iu[1]])
        meo = 1.0 - gaps.mean().item()
        di = 1.0 - di_terms.mean().item()
        md = gaps.max().item()
    else:
        # No pair exists, so nothing can disagree.
        meo, di, md = 1.0, 1.0, 0.0

    nonempty = total > 0
    cell_acc = correct / total
    worst = cell_acc[nonempty].min().item() if bool(nonempty.any()) else nan

    # Empty cells become +inf so that the ascending sort pushes them past every real accuracy; the
    # per-class cell count then tells which sorted slots are real.
    sorted_acc, _ = torch.where(nonempty, cell_acc, torch.full_like(cell_acc, float("inf"))).sort(dim=1)
    n_cells = nonempty.sum(dim=1, keepdim=True)
    valid = torch.arange(num_subgroups, device=total.device).unsqueeze(0) < n_cells
    rank_sum = torch.where(valid, sorted_acc, torch.zeros_like(sorted_acc)).sum(dim=0)
    ranked = rank_sum / valid.sum(dim=0)  # 0/0 -> NaN for ranks no class reaches

    return {
        "acc": float(acc),
        "subgroup_acc": [float(x) for x in subgroup_acc.tolist()],
        "meo": float(meo),
        "di": float(di),
        "md": float(md),
        "ranked_subgroup_acc": [float(x) for x in ranked.tolist()],
        "worst_group_acc": float(worst),
        **_within_class(cell_acc, nonempty),
    }


def fairness_summary(
    preds: ArrayLike, targets: ArrayLike, subgroups: ArrayLike, num_classes: int, num_subgroups: int
) -> dict[str, float | list[float]]:
    """Accuracy and subgroup fairness metrics for one evaluation set.

    Args:
        preds: Predicted labels of shape ``(N,)`` or scores/logits of shape ``(N, num_classes)``
            (reduced with argmax). Tensors, numpy arrays and lists are accepted.
        targets: True labels of shape ``(N,)`` in ``[0, num_classes)``.
        subgroups: Subgroup indices of shape ``(N,)`` in ``[0, num_subgroups)``.
        num_classes: Number of classes ``C``.
        num_subgroups: Number of subgroups ``G``.

    Returns:
        Dict with the keys of ``SUMMARY_KEYS`` (pooled ``acc``, ``subgroup_acc``, ``meo``, ``di``, ``md``,
        ``ranked_subgroup_acc``, ``worst_group_acc`` and the six within-class disparities) as defined in
        the module docstring.

    Raises:
        ValueError: If targets or subgroups fall outside their range, or the inputs disagree in length.

    Example:
        >>> s = fairness_summary([0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 1, 1], num_classes=2, num_subgroups=2)
        >>> s["acc"], s["subgroup_acc"], s["md"]
        (0.75, [1.0, 0.5], 0.5)
    """
    correct, total = count_matrices(preds, targets, subgroups, num_classes, num_subgroups)
    return summary_from_counts(correct, total)


class GroupFairness(Metric):
    """Streaming, DDP-safe version of :func:`fairness_summary`.

    The only states are the ``(num_classes, num_subgroups)`` count matrices ``correct`` and ``total``,
    summed across processes, so results do not depend on how the data is split into batches or ranks.

    Args:
        num_classes: Number of classes ``C``.
        num_subgroups: Number of subgroups ``G``.
        **kwargs: Forwarded to :class:`torchmetrics.Metric`.

    Example:
        >>> metric = GroupFairness(num_classes=2, num_subgroups=2)
        >>> metric.update(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([0, 0]))
        >>> metric.update(torch.tensor([1, 0]), torch.tensor([0, 0]), torch.tensor([1, 1]))
        >>> metric.compute()["subgroup_acc"]
        [1.0, 0.5]
    """

    full_state_update = False
    higher_is_better = None
    is_differentiable = False

    correct: torch.Tensor
    total: torch.Tensor

    def __init__(self, num_classes: int, num_subgroups: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_classes < 1 or num_subgroups < 1:
            raise ValueError(
                f"num_classes and num_subgroups must be >= 1, got {num_classes}, {num_subgroups}"
            )
        self.num_classes = num_classes
        self.num_subgroups = num_subgroups
        shape = (num_classes, num_subgroups)
        self.add_state("correct", default=torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, targets: torch.Tensor, subgroups: torch.Tensor) -> None:
        """Add a batch to the counts.

        Args:
            preds: Predicted labels ``(N,)`` or scores/logits ``(N, num_classes)``.
            targets: True labels ``(N,)`` in ``[0, num_classes)``.
            subgroups: Subgroup indices ``(N,)`` in ``[0, num_subgroups)``.

        Raises:
            ValueError: If targets or subgroups fall outside their range, or lengths disagree.
        """
        correct, total = count_matrices(
            torch.as_tensor(preds, device=self.device),
            torch.as_tensor(targets, device=self.device),
            torch.as_tensor(subgroups, device=self.device),
            self.num_classes,
            self.num_subgroups,
        )
        self.correct += correct
        self.total += total

    def compute(self) -> dict[str, float | list[float]]:
        """Return the fairness summary of everything seen so far (see :func:`summary_from_counts`)."""
        return summary_from_counts(self.correct, self.total)

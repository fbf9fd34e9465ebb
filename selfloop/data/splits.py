"""Seeded, class-stratified splits."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def stratified_split(labels: Tensor, fractions: Sequence[float], generator: torch.Generator) -> list[Tensor]:
    """Split indices per class so every part holds every class in proportion.

    Args:
        labels: int64 ``(N,)`` class ids.
        fractions: the fraction of each class for each of the first parts; the last part takes the rest.
        generator: the RNG that shuffles each class.

    Returns:
        ``len(fractions) + 1`` sorted index tensors.
    """
    parts: list[list[Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for c in labels.unique().tolist():
        members = (labels == c).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        start = 0
        for part, fraction in zip(parts[:-1], fractions, strict=True):
            stop = start + round(len(members) * fraction)
            part.append(members[start:stop])
            start = stop
        parts[-1].append(members[start:])
    return [torch.cat(part).sort().values for part in parts]


def stratified_limit(labels: Tensor, limit: int | None, generator: torch.Generator) -> Tensor:
    """Indices of about ``limit`` items, stratified by class (all indices when ``limit`` is ``None``).

    Raises:
        ValueError: naming ``--data.train_limit`` when the limit, rounded per class, keeps nothing.
    """
    if limit is None or limit >= len(labels):
        return torch.arange(len(labels))
    index = stratified_split(labels, (limit / len(labels),), generator)[0]
    if not len(index):
        # Rounded per class, a limit below half an item per class keeps nothing.
        raise ValueError(f"--data.train_limit {limit} is too small to keep any of {len(labels)} images")
    return index


def check_holdout_args(val_fraction: float, train_limit: int | None) -> None:
    """Validate ``--data.val_fraction`` and ``--data.train_limit`` of data sets with an official train split.

    Raises:
        ValueError: naming the flag.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"--data.val_fraction must be in (0, 1), got {val_fraction}")
    if train_limit is not None and train_limit < 1:
        raise ValueError(f"--data.train_limit must be >= 1 or null, got {train_limit}")


def validation_holdout(
    labels: Tensor, val_fraction: float, train_limit: int | None, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``(val_idx, train_idx)``: a class-stratified hold-out of the official training split.

    Raises:
        ValueError: naming the flags when either part would be empty.
    """
    val_idx, train_idx = stratified_split(labels, (val_fraction,), generator)
    if not (len(val_idx) and len(train_idx)):
        empty = "validation" if not len(val_idx) else "training"
        raise ValueError(
            f"--data.val_fraction {val_fraction} of {len(labels)} training images (--data.train_limit "
            f"{train_limit}) leaves the {empty} split empty"
        )
    return val_idx, train_idx

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

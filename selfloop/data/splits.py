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

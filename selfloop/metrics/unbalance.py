"""u_t: how unbalanced a generation's subgroup mix is against the real set's, per class.

Generated samples whose subgroup the oracle would not read (id :data:`AMBIGUOUS`, -1: no stroke or no
dominant colour) are left out of ``u_t``; :func:`ambiguous_fraction` reports how many there were, so
that a drop of ``u_t`` bought by abstaining shows up next to it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from selfloop.data.colour_oracle import AMBIGUOUS


def _as_numpy(values: Any) -> np.ndarray:
    # Tensors go through .cpu() so CUDA tensors work too, without importing torch here.
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _joint_counts(subgroups: Any, labels: Any, num_classes: int, num_subgroups: int, name: str) -> np.ndarray:
    g = _as_numpy(subgroups).astype(np.int64).ravel()
    y = _as_numpy(labels).astype(np.int64).ravel()
    if g.shape != y.shape:
        raise ValueError(f"{name}: {len(g)} subgroup ids but {len(y)} labels")
    if len(g) and (g.min() < 0 or g.max() >= num_subgroups):
        raise ValueError(f"{name}: subgroup ids must lie in [0, {num_subgroups}); got {g.min()}..{g.max()}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name}: labels must lie in [0, {num_classes}); got {y.min()}..{y.max()}")
    return np.bincount(y * num_subgroups + g, minlength=num_classes * num_subgroups).reshape(
        num_classes, num_subgroups
    )


def ambiguous_fraction(subgroups: Any) -> float:
    """The fraction of subgroup ids equal to :data:`AMBIGUOUS` (-1); NaN when there is none at all.

    Args:
        subgroups: subgroup ids of generated samples (e.g. from ``colour_oracle``); tensor or array.

    Returns:
        A float in [0, 1], or NaN for an empty input.
    """
    g = _as_numpy(subgroups).ravel()
    if g.size == 0:
        return math.nan
    return float(np.count_nonzero(g == AMBIGUOUS) / g.size)


def unbalanced_generation(
    generated_subgroups: Any,
    generated_labels: Any,
    real_subgroups: Any,
    real_labels: Any,
    num_classes: int,
    num_subgroups: int,
) -> float:
    """u_t: how far the subgroup mix of generated samples is from the real set's, per class.

    For each class c, ``TV_c = 1/2 * sum_g |P_gen(g | c) - P_real(g | c)|`` (total variation distance, in
    [0, 1]); u_t is the unweighted mean of ``TV_c`` over classes, so every class counts the same however
    many samples it got. A class with no generated sample (or no real sample) has no distribution to
    compare and is skipped; when no class is left the result is NaN (a loggable "unknown", not a crash).

    Generated samples with subgroup id :data:`AMBIGUOUS` (-1) are dropped first: the oracle did not read
    their subgroup, so they join neither the counts nor the class totals (a class whose generated samples
    are all ambiguous is skipped). Real subgroup ids must all be known.

    Args:
        generated_subgroups: subgroup id of each generated sample (e.g. from ``colour_oracle``), in
            ``[0, G)`` or ``AMBIGUOUS``.
        generated_labels: intended class of each generated sample.
        real_subgroups: subgroup id of each real sample (the real training set).
        real_labels: class of each real sample.
        num_classes: C; labels lie in ``[0, C)``.
        num_subgroups: G; subgroup ids lie in ``[0, G)``.

    Returns:
        u_t in [0, 1]: 0 when every class's generated subgroup mix equals the real one.

    Raises:
        ValueError: when ids are out of range or a subgroup array and its label array differ in length.
    """
    gen_g = _as_numpy(generated_subgroups).astype(np.int64).ravel()
    gen_y = _as_numpy(generated_labels).astype(np.int64).ravel()
    if gen_g.shape != gen_y.shape:
        raise ValueError(f"generated: {len(gen_g)} subgroup ids but {len(gen_y)} labels")
    known = gen_g != AMBIGUOUS
    generated = _joint_counts(gen_g[known], gen_y[known], num_classes, num_subgroups, "generated")
    real = _joint_counts(real_subgroups, real_labels, num_classes, num_subgroups, "real")
    gen_totals, real_totals = generated.sum(1), real.sum(1)
    present = (gen_totals > 0) & (real_totals > 0)
    if not present.any():
        return math.nan
    p_gen = generated[present] / gen_totals[present, None]
    p_real = real[present] / real_totals[present, None]
    return float((0.5 * np.abs(p_gen - p_real).sum(1)).mean())

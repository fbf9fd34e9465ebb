"""u_t: how unbalanced a generation's subgroup mix is against the real set's, per class."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


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

    Args:
        generated_subgroups: subgroup id of each generated sample (e.g. from ``colour_oracle``).
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
    generated = _joint_counts(generated_subgroups, generated_labels, num_classes, num_subgroups, "generated")
    real = _joint_counts(real_subgroups, real_labels, num_classes, num_subgroups, "real")
    gen_totals, real_totals = generated.sum(1), real.sum(1)
    present = (gen_totals > 0) & (real_totals > 0)
    if not present.any():
        return math.nan
    p_gen = generated[present] / gen_totals[present, None]
    p_real = real[present] / real_totals[present, None]
    return float((0.5 * np.abs(p_gen - p_real).sum(1)).mean())

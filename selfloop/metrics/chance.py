"""Whether a classifier learned anything: its test accuracy against the best constant guess.

A classifier that predicts one class for every image scores the test set's largest class share and looks
perfectly fair by the single-bias metrics (MEO 1, DI 1, MD 0: every subgroup gets the same answer), so its
bias figures mean nothing. :func:`chance_warning` says so when the accuracy is not significantly above that
share (scipy's one-sided exact binomial test).
"""

from __future__ import annotations

import torch
from scipy.stats import binomtest
from torch import Tensor

__all__ = ["ALPHA", "chance_warning"]

ALPHA = 0.01
"""Significance level of the test that the accuracy is above chance."""


def chance_warning(accuracy: float, labels: Tensor) -> str | None:
    """A one-line warning when ``accuracy`` on test images with ``labels`` is not above chance, else ``None``.

    Chance is the accuracy of always guessing the most frequent test label; the test is one-sided and exact
    (binomial, ``ALPHA``), over ``len(labels)`` images.
    """
    total = len(labels)
    chance = torch.bincount(labels).max().item() / total
    correct = round(accuracy * total)
    p_value = binomtest(correct, total, chance, alternative="greater").pvalue
    if p_value < ALPHA:
        return None
    return (
        f"accuracy {accuracy:.3f} is not above chance ({chance:.3f}, always guessing the commonest class; "
        f"binomial p = {p_value:.2g} over {total:,} test images): its bias metrics describe a classifier that "
        "learned nothing (one answer for every subgroup reads as fair); check its lr, epochs and data"
    )

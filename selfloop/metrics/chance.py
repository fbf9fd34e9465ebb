"""Whether a classifier learned anything: its test accuracy against the best constant guess.

A classifier that predicts one class for every image scores the test set's largest class share and looks
perfectly fair by the single-bias metrics (MEO 1, DI 1, MD 0: every subgroup gets the same answer), so its
bias figures mean nothing. :func:`chance_p_value` tests the accuracy against that share (scipy's one-sided
exact binomial test); the loop logs it with every classifier's metrics (``CHANCE_P``), prints
:func:`chance_warning` when it is not significant, and the report notes every such classifier.
"""

from __future__ import annotations

import torch
from scipy.stats import binomtest
from torch import Tensor

__all__ = ["ALPHA", "CHANCE_P", "chance_p_value", "chance_warning"]

ALPHA = 0.01
"""Significance level of the test that the accuracy is above chance."""
CHANCE_P = "acc_chance_p"
"""The metric name of :func:`chance_p_value` in ``metrics.csv``."""


def _chance(labels: Tensor) -> float:
    """The accuracy of always guessing the most frequent of ``labels``."""
    return torch.bincount(labels).max().item() / len(labels)


def chance_p_value(accuracy: float, labels: Tensor) -> float:
    """The p-value that ``accuracy`` on test images with ``labels`` is no better than chance (always guessing
    the most frequent test label): one-sided exact binomial test over ``len(labels)`` images."""
    total = len(labels)
    return float(binomtest(round(accuracy * total), total, _chance(labels), alternative="greater").pvalue)


def chance_warning(accuracy: float, labels: Tensor) -> str | None:
    """A one-line warning when ``accuracy`` on test images with ``labels`` is not above chance
    (:func:`chance_p_value` at least ``ALPHA``), else ``None``."""
    p_value = chance_p_value(accuracy, labels)
    if p_value < ALPHA:
        return None
    return (
        f"accuracy {accuracy:.3f} is not above chance ({_chance(labels):.3f}, always guessing the commonest class; "
        f"binomial p = {p_value:.2g} over {len(labels):,} test images): its bias metrics describe a classifier that "
        "learned nothing (one answer for every subgroup reads as fair); check its lr, epochs and data"
    )

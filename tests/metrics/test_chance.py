"""A classifier's accuracy against chance: the warning that its bias metrics mean nothing."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from selfloop.metrics.chance import ALPHA, chance_p_value, chance_warning

BALANCED = torch.arange(3000) % 10  # 10 classes, 300 test images each, as the study's test split


def test_a_constant_guess_on_a_balanced_test_set_is_at_chance():
    warning = chance_warning(0.1, BALANCED)
    assert warning is not None
    assert warning.startswith(
        "accuracy 0.100 is not above chance (0.100, always guessing the commonest class"
    )
    assert "over 3,000 test images" in warning


@pytest.mark.parametrize(
    ("accuracy", "warned"),
    # 300 correct expected by chance, standard deviation 16.4: 315 is 0.9 of it above, 360 is 3.7 above.
    [(0.105, True), (0.12, False), (0.97, False)],
)
def test_only_an_accuracy_significantly_above_chance_passes(accuracy, warned):
    assert (chance_warning(accuracy, BALANCED) is not None) == warned


def test_chance_on_an_unbalanced_test_set_is_the_commonest_class_share():
    labels = torch.tensor([0] * 900 + [1] * 100)
    warning = chance_warning(0.9, labels)
    assert warning is not None and "not above chance (0.900" in warning
    assert chance_warning(0.95, labels) is None


def test_the_logged_p_value_is_the_exact_binomial_upper_tail():
    # 315 of 3,000 right where always guessing one class gets 300: P(X >= 315) for X ~ Binomial(3000, 0.1).
    assert chance_p_value(0.105, BALANCED) == pytest.approx(stats.binom.sf(314, 3000, 0.1), rel=1e-9)
    assert chance_p_value(0.105, BALANCED) >= ALPHA > chance_p_value(0.12, BALANCED)

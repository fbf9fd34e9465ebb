"""u_t against a hand-computed total variation distance; ambiguous oracle reads are left out."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from selfloop.data.colour_oracle import AMBIGUOUS, colour_oracle
from selfloop.metrics.unbalance import ambiguous_fraction, unbalanced_generation


def test_unbalanced_generation_equals_hand_computed_tv_distance() -> None:
    # Class 0: real mix (0.4, 0.4, 0.2), generated (0.6, 0.3, 0.1): TV = (0.2 + 0.1 + 0.1) / 2 = 0.2.
    # Class 1: real (1/3, 1/3, 1/3), generated all subgroup 2: TV = (1/3 + 1/3 + 2/3) / 2 = 2/3.
    # Class 2 is real but never generated: skipped. u = (0.2 + 2/3) / 2 = 13/30.
    real_g = [0] * 4 + [1] * 4 + [2] * 2 + [0, 1, 2] * 3 + [0, 1]
    real_y = [0] * 10 + [1] * 9 + [2] * 2
    gen_g = [0] * 6 + [1] * 3 + [2] * 1 + [2] * 5
    gen_y = [0] * 10 + [1] * 5
    u = unbalanced_generation(gen_g, gen_y, real_g, real_y, num_classes=3, num_subgroups=3)
    assert u == pytest.approx(13 / 30)
    # Tensors give the same; the real mix itself gives 0; a disjoint mix gives 1.
    as_tensors = unbalanced_generation(
        torch.tensor(gen_g), torch.tensor(gen_y), torch.tensor(real_g), torch.tensor(real_y), 3, 3
    )
    assert as_tensors == pytest.approx(13 / 30)
    assert unbalanced_generation(real_g, real_y, real_g, real_y, 3, 3) == pytest.approx(0.0)
    assert unbalanced_generation([1, 1], [0, 0], [0, 0], [0, 0], 1, 2) == pytest.approx(1.0)


def test_unbalanced_generation_edge_cases() -> None:
    assert math.isnan(unbalanced_generation([0], [1], [0], [0], 2, 2))  # no class in both sets
    with pytest.raises(ValueError, match="subgroup ids"):
        unbalanced_generation([3], [0], [0], [0], 2, 3)
    with pytest.raises(ValueError, match="labels"):
        unbalanced_generation([0], [2], [0], [0], 2, 3)


def test_ambiguous_generated_samples_are_dropped_before_counting() -> None:
    # Same hand example as above, plus ambiguous samples in class 0 and 1 and a class-2 sample that is
    # ambiguous only: u_t is unchanged (class 2 is still skipped), where counting them would break it.
    real_g = [0] * 4 + [1] * 4 + [2] * 2 + [0, 1, 2] * 3 + [0, 1]
    real_y = [0] * 10 + [1] * 9 + [2] * 2
    gen_g = [0] * 6 + [1] * 3 + [2] * 1 + [2] * 5
    gen_y = [0] * 10 + [1] * 5
    noisy_g = gen_g + [AMBIGUOUS] * 7
    noisy_y = gen_y + [0, 0, 0, 1, 1, 2, 2]
    u = unbalanced_generation(noisy_g, noisy_y, real_g, real_y, num_classes=3, num_subgroups=3)
    assert u == pytest.approx(13 / 30)
    as_tensors = unbalanced_generation(
        torch.tensor(noisy_g), torch.tensor(noisy_y), torch.tensor(real_g), torch.tensor(real_y), 3, 3
    )
    assert as_tensors == pytest.approx(13 / 30)
    # Only ambiguous samples: nothing left to compare.
    assert math.isnan(unbalanced_generation([AMBIGUOUS] * 3, [0, 1, 2], real_g, real_y, 3, 3))
    # Other negative ids are still errors, and so are ambiguous real ids.
    with pytest.raises(ValueError, match="generated: subgroup ids"):
        unbalanced_generation([-2], [0], [0], [0], 2, 3)
    with pytest.raises(ValueError, match="real: subgroup ids"):
        unbalanced_generation([0], [0], [AMBIGUOUS], [0], 2, 3)
    with pytest.raises(ValueError, match="2 subgroup ids but 1 labels"):
        unbalanced_generation([0, AMBIGUOUS], [0], [0], [0], 2, 3)


def test_yellow_samples_no_longer_inflate_red() -> None:
    # Real class 0 is all green. The generator draws 4 green and 4 yellow digits: a plain argmax read the
    # yellow ones as red (u_t = 0.5); the oracle abstains on them, so u_t is 0 and the loss is visible
    # as an ambiguous fraction of 1/2 instead.
    images = np.zeros((8, 3, 6, 6), dtype=np.uint8)
    images[:, 1, 2:4, 1:5] = 220
    images[4:, 0, 2:4, 1:5] = 220
    subgroups = colour_oracle(images)
    assert subgroups.tolist() == [1] * 4 + [AMBIGUOUS] * 4
    u = unbalanced_generation(subgroups, [0] * 8, [1] * 5, [0] * 5, num_classes=1, num_subgroups=3)
    assert u == pytest.approx(0.0)
    assert ambiguous_fraction(subgroups) == pytest.approx(0.5)


def test_ambiguous_fraction() -> None:
    assert ambiguous_fraction([0, AMBIGUOUS, 2, AMBIGUOUS]) == pytest.approx(0.5)
    assert ambiguous_fraction(torch.tensor([1, 2, 0])) == 0.0
    assert ambiguous_fraction(np.full(3, AMBIGUOUS)) == 1.0
    assert math.isnan(ambiguous_fraction([]))
    assert math.isnan(ambiguous_fraction(torch.zeros(0, dtype=torch.long)))

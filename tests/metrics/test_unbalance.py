"""u_t against a hand-computed total variation distance."""

from __future__ import annotations

import math

import pytest
import torch

from selfloop.metrics.unbalance import unbalanced_generation


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

"""Precision, recall and KID against independent computations on tiny sets."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor, nn

from selfloop.classifiers.image_classifier import ImageClassifier
from selfloop.metrics.diversity import (
    features_of,
    kernel_inception_distance,
    kid_subset_size,
    knn_radii,
    precision_recall,
)
from selfloop.metrics.fid import penultimate_extractor


def brute_force_precision_recall(
    real: list[list[float]], fake: list[list[float]], k: int
) -> tuple[float, float]:
    """The paper's definitions with explicit loops over pairs (math.dist), no tensors."""

    def radii(points):
        return [
            sorted(math.dist(p, q) for j, q in enumerate(points) if j != i)[k - 1]
            for i, p in enumerate(points)
        ]

    def share_inside(points, centers):
        r = radii(centers)
        return sum(any(math.dist(p, c) <= r[j] for j, c in enumerate(centers)) for p in points) / len(points)

    return share_inside(fake, real), share_inside(real, fake)


def test_precision_recall_on_a_hand_case():
    # k = 1. Real points 0, 1, 2, 3 on a line: every radius is 1. Generated 0.5 (inside) and 10 (outside):
    # precision 1/2. The two generated points are 9.5 apart, so their balls cover every real point: recall 1.
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    fake = torch.tensor([[0.5], [10.0]])
    assert knn_radii(real, 1).tolist() == [1.0, 1.0, 1.0, 1.0]
    assert precision_recall(real, fake, k=1) == {"precision": 0.5, "recall": 1.0}


def test_precision_recall_match_brute_force_and_ignore_the_batch_size():
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        real = torch.randn(12, 3, generator=generator, dtype=torch.float64)
        fake = torch.randn(9, 3, generator=generator, dtype=torch.float64) * 1.5 + 0.5
        expected = brute_force_precision_recall(real.tolist(), fake.tolist(), k=3)
        result = precision_recall(real, fake)  # k = 3 by default
        assert (result["precision"], result["recall"]) == pytest.approx(expected, abs=1e-12)
        assert precision_recall(real, fake, batch_size=2) == result


def test_mode_dropping_lowers_recall_not_precision():
    # Two real clusters; the generated samples copy one of them: every one is realistic (precision 1) but
    # half of the real data is uncovered (recall 1/2).
    generator = torch.Generator().manual_seed(1)
    cluster = torch.randn(10, 2, generator=generator) * 0.1
    real = torch.cat([cluster, cluster + 100.0])
    result = precision_recall(real, cluster.clone())
    assert result == {"precision": 1.0, "recall": 0.5}


def test_precision_recall_refuse_too_few_samples_and_mismatched_features():
    with pytest.raises(ValueError, match="k = 3 need more than 3 samples, got 3"):
        precision_recall(torch.zeros(3, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="real features have 2 dimensions, generated ones 4"):
        precision_recall(torch.zeros(5, 2), torch.zeros(5, 4))


class TinyFeatures(nn.Module):
    """A fixed random projection of uint8 images scaled to [0, 1]: a real module, seeded, no weights file."""

    def __init__(self, pixels: int, dims: int = 4) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(7)
        self.register_buffer("projection", torch.randn(pixels, dims, generator=generator))

    def forward(self, images: Tensor) -> Tensor:
        return images.float().flatten(1) / 255 @ self.projection


def unbiased_poly_mmd2(x: list[list[float]], y: list[list[float]]) -> float:
    """Unbiased MMD^2 with k(a, b) = (a . b / d + 1)^3, with explicit loops (Bińkowski et al., 2018, eq. 2)."""
    m, d = len(x), len(x[0])

    def kernel(a, b):
        return (sum(p * q for p, q in zip(a, b, strict=True)) / d + 1) ** 3

    same = sum(kernel(x[i], x[j]) + kernel(y[i], y[j]) for i, j in itertools.permutations(range(m), 2))
    cross = sum(kernel(a, b) for a in x for b in y)
    return same / (m * (m - 1)) - 2 * cross / m**2


def images(seed: int, count: int, low: int, high: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (count, 1, 3, 3), generator=generator, dtype=torch.uint8)


def test_kid_on_one_full_subset_equals_the_unbiased_mmd_by_hand():
    real, fake = images(0, 8, 0, 200), images(1, 8, 100, 256)
    feature = TinyFeatures(9)
    result = kernel_inception_distance(real, fake, feature, subsets=1, subset_size=8, batch_size=3)
    expected = unbiased_poly_mmd2(feature(real).double().tolist(), feature(fake).double().tolist())
    assert result["kid"] == pytest.approx(expected, rel=1e-4)
    assert result["kid_std"] == 0.0  # one subset
    assert result["kid_subset_size"] == 8.0
    assert expected > 1.0  # the two pixel ranges differ: clearly apart


def test_kid_subset_size_follows_the_sample_counts_and_the_seed_fixes_the_subsets():
    assert kid_subset_size(5000, 300) == 300
    assert kid_subset_size(5000, 4000) == 1000
    real, fake = images(2, 12, 0, 256), images(3, 7, 0, 256)
    feature = TinyFeatures(9)
    first = kernel_inception_distance(real, fake, feature, subsets=5, seed=3)
    assert first["kid_subset_size"] == 7.0
    assert kernel_inception_distance(real, fake, feature, subsets=5, seed=3) == first
    with pytest.raises(ValueError, match=r"subset_size must lie in \[2, 7\]"):
        kernel_inception_distance(real, fake, feature, subset_size=8)
    with pytest.raises(ValueError, match="KID needs at least 2 real and 2 generated samples"):
        kernel_inception_distance(real, fake[:1], feature)


def test_features_of_batches_like_one_pass():
    batch = images(4, 10, 0, 256)
    feature = TinyFeatures(9)
    assert torch.allclose(features_of(feature, batch, batch_size=3), feature(batch))


def test_kid_and_precision_recall_through_the_judges_penultimate_extractor():
    # The extractor FID's `domain` mode uses: a frozen LeNet's penultimate features (84-d).
    torch.manual_seed(0)
    extractor = penultimate_extractor(
        ImageClassifier(arch="lenet", num_classes=3, in_channels=1, image_size=16)
    )
    generator = torch.Generator().manual_seed(5)
    real = torch.randint(0, 256, (6, 1, 16, 16), dtype=torch.uint8, generator=generator)
    fake = torch.randint(0, 128, (6, 1, 16, 16), dtype=torch.uint8, generator=generator)
    result = kernel_inception_distance(real, fake, extractor, subsets=1)
    real_features, fake_features = features_of(extractor, real), features_of(extractor, fake)
    expected = unbiased_poly_mmd2(real_features.double().tolist(), fake_features.double().tolist())
    assert result["kid"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    pr = precision_recall(real_features, fake_features)
    assert (pr["precision"], pr["recall"]) == pytest.approx(
        brute_force_precision_recall(real_features.tolist(), fake_features.tolist(), k=3)
    )

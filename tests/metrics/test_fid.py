"""FidTracker against closed-form Fréchet distances, its real-statistics cache, and its extractors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from selfloop.classifiers.image_classifier import ImageClassifier
from selfloop.metrics.fid import (
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    FidTracker,
    InceptionFeatures,
    MissingInceptionWeightsError,
    penultimate_extractor,
    write_fid_table,
)

DIM = 4


class Features(nn.Module):
    """Identity-like extractor: (N, D, 1, 1) inputs are returned as the (N, D) features themselves."""

    num_features = DIM

    def forward(self, x):
        return x.flatten(1)


def gaussian(n, mean, scale, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(DIM, DIM, generator=g, dtype=torch.float64) * scale
    x = torch.randn(n, DIM, generator=g, dtype=torch.float64) @ a + torch.as_tensor(mean, dtype=torch.float64)
    return x.view(n, DIM, 1, 1)


def closed_form_fid(x, y):
    """||mu_x - mu_y||^2 + Tr(S_x + S_y - 2 (S_x S_y)^1/2) of the samples' means and unbiased covariances."""
    x, y = x.flatten(1).numpy(), y.flatten(1).numpy()
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(sx @ sy).real
    return float(((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(sx + sy - 2 * root))


def test_fid_of_two_gaussian_sets_equals_the_closed_form():
    real, fake = gaussian(200, [0, 0, 0, 0], 1.0, seed=1), gaussian(200, [1, -1, 0.5, 0], 0.7, seed=2)
    tracker = FidTracker(
        Features(), num_samples=200, seed=0, extractor_name="identity", resize="none", batch_size=64
    )
    tracker.set_real(real)
    expected = closed_form_fid(real, fake)
    assert expected > 1  # the sets really differ
    # torchmetrics takes sqrt of the eigenvalues of S_x S_y, scipy sqrtm: both in float64.
    assert tracker.score(fake) == pytest.approx(expected, rel=1e-6)
    # Real statistics survive scoring: a second generation is scored against the same real set.
    other = gaussian(200, [0, 0, 2, 0], 1.0, seed=3)
    assert tracker.score(other) == pytest.approx(closed_form_fid(real, other), rel=1e-6)


def test_fid_of_a_set_against_itself_is_zero():
    real = gaussian(100, [3, 0, 0, 1], 1.0, seed=4)
    tracker = FidTracker(Features(), num_samples=100, seed=0, extractor_name="identity", resize="none")
    tracker.set_real(real)
    assert abs(tracker.score(real)) < 1e-6  # numerical error of the matrix square root only


def test_subsampling_is_seeded_and_needs_n_images():
    real, fake = gaussian(300, [0] * DIM, 1.0, seed=5), gaussian(300, [1] * DIM, 1.0, seed=6)

    def fid(seed):
        tracker = FidTracker(Features(), num_samples=50, seed=seed, extractor_name="identity", resize="none")
        tracker.set_real(real)
        return tracker.score(fake)

    assert fid(7) == fid(7)
    assert fid(7) != fid(8)
    tracker = FidTracker(Features(), num_samples=50, seed=0, extractor_name="identity", resize="none")
    with pytest.raises(ValueError, match="FID needs 50 real images"):
        tracker.set_real(real[:10])
    with pytest.raises(RuntimeError, match="before set_real"):
        tracker.score(fake)
    assert tracker.describe() == {
        "extractor": "identity",
        "num_samples": 50,
        "resize": "none",
        "seed": 0,
        "num_features": DIM,
    }


def test_real_statistics_cache_round_trip(tmp_path):
    real, fake = gaussian(120, [0] * DIM, 1.0, seed=9), gaussian(120, [0.5] * DIM, 1.0, seed=10)
    junk = torch.zeros_like(real)
    cache = tmp_path / "fid" / "real_stats.pt"

    def tracker(n=100):
        return FidTracker(Features(), num_samples=n, seed=0, extractor_name="identity", resize="none")

    first = tracker()
    first.set_real(real, cache_path=cache)
    assert cache.is_file()
    expected = first.score(fake)

    # A resumed run loads the statistics: the images it passes are not even looked at.
    resumed = tracker()
    resumed.set_real(junk, cache_path=cache)
    assert resumed.score(fake) == expected

    # Other settings (here N) make the cache stale: recomputed from the images given, and rewritten.
    changed = tracker(n=120)
    changed.set_real(real, cache_path=cache)
    assert changed.score(fake) == pytest.approx(closed_form_fid(real, fake), rel=1e-6)
    assert torch.load(cache, weights_only=True)["meta"]["num_samples"] == 120


def test_untrusted_or_unreadable_cache_is_recomputed_from_the_real_images(tmp_path):
    real, fake = gaussian(120, [0] * DIM, 1.0, seed=9), gaussian(120, [0.5] * DIM, 1.0, seed=10)
    cache = tmp_path / "real_stats.pt"

    def tracker():
        return FidTracker(Features(), num_samples=100, seed=0, extractor_name="identity", resize="none")

    first = tracker()
    first.set_real(real, cache_path=cache)
    expected, original = first.score(fake), cache.read_bytes()
    # Edited statistics that still load: the caller (the loop, by the manifest's hash) says not to use them.
    stats = torch.load(cache, weights_only=True)
    stats["real_features_sum"] += 1.0
    torch.save(stats, cache)
    edited = tracker()
    edited.set_real(real, cache_path=cache, use_cache=False)
    assert edited.score(fake) == expected and cache.read_bytes() == original
    # Flipped bytes that no longer load: recomputed too.
    cache.write_bytes(original[:50] + bytes(b ^ 0xFF for b in original[50:90]) + original[90:])
    damaged = tracker()
    damaged.set_real(real, cache_path=cache)
    assert damaged.score(fake) == expected


def test_inception_missing_weights_names_the_path_and_url(tmp_path, monkeypatch):
    missing = tmp_path / "weights.pth"
    with pytest.raises(MissingInceptionWeightsError) as info:
        InceptionFeatures(missing)
    assert str(missing) in str(info.value) and INCEPTION_WEIGHTS_URL in str(info.value)

    # By default the file is expected where torch-fidelity caches it: torch hub's checkpoints folder.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError) as info:
        InceptionFeatures()
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILE) in str(info.value)


def test_domain_extractor_returns_the_penultimate_features_of_a_frozen_copy():
    torch.manual_seed(0)
    classifier = ImageClassifier(arch="lenet", num_classes=3, in_channels=1, image_size=16)
    extractor = penultimate_extractor(classifier)
    assert extractor.num_features == 84
    images = torch.randint(
        0, 256, (12, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )

    features = extractor(images)
    classifier.eval()
    with torch.no_grad():
        net = classifier.net
        expected = net.classifier[:-1](net.pool(net.features(classifier.preprocess(images))))
    assert torch.allclose(features, expected)
    extractor.train()  # cannot be put back in train mode: dropout would make features random
    assert torch.equal(extractor(images), features)
    # The caller's classifier is untouched.
    assert all(p.requires_grad for p in classifier.parameters())

    tracker = FidTracker(extractor, num_samples=12, seed=0, extractor_name="domain", resize="native 16 px")
    tracker.set_real(images)
    assert abs(tracker.score(images)) < 1e-3  # float32 features


def test_fid_table_pivots_settings_by_generation(tmp_path):
    rows = [
        {"setting": "no filter", "generation": 0, "fid": 10.0},
        {"setting": "no filter", "generation": 1, "fid": 12.345},
        {"setting": "filter r=0.1", "generation": 1, "fid": 11.0},
        {"setting": "filter r=0.1", "generation": 2, "fid": 9.5},
    ]
    write_fid_table(tmp_path / "fid.csv", tmp_path / "fid.md", rows)
    with open(tmp_path / "fid.csv", newline="") as handle:
        table = list(csv.reader(handle))
    assert table == [
        ["setting", "g0", "g1", "g2"],
        ["no filter", "10.0", "12.345", ""],
        ["filter r=0.1", "", "11.0", "9.5"],
    ]
    assert (tmp_path / "fid.md").read_text().splitlines() == [
        "| setting | gen 0 | gen 1 | gen 2 |",
        "| --- | ---: | ---: | ---: |",
        "| no filter | 10.00 | 12.35 | - |",
        "| filter r=0.1 | - | 11.00 | 9.50 |",
    ]
    with pytest.raises(ValueError, match="two values for generation 1"):
        write_fid_table(tmp_path / "x.csv", tmp_path / "x.md", rows + [rows[1]])

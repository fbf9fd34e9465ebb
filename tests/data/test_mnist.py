"""ColoredMNISTDataModule on a tiny MNIST written in the real IDX format."""

from __future__ import annotations

import gzip
from urllib.error import URLError

import pytest
import torch
from fixtures_formats import truncate, write_mnist

from selfloop.data.coloring import colorize
from selfloop.data.errors import CorruptDatasetError, DatasetNotFoundError
from selfloop.data.mnist import MNIST_FILES, ColoredMNISTDataModule

# 12 train digits per class, 1/6 held out: 10 train + 2 val per class; 2 test digits per class.
TRAIN_PER_CLASS, TEST_PER_CLASS, VAL_FRACTION = 12, 2, 1 / 6


@pytest.fixture
def mnist_root(tmp_path):
    write_mnist(tmp_path, TRAIN_PER_CLASS, TEST_PER_CLASS)
    return tmp_path


def _module(root, **kwargs) -> ColoredMNISTDataModule:
    return ColoredMNISTDataModule(root=str(root), val_fraction=VAL_FRACTION, **kwargs)


def _counts(labels: torch.Tensor, subgroups: torch.Tensor) -> torch.Tensor:
    counts = torch.zeros(10, 3, dtype=torch.long)
    counts.index_put_((labels, subgroups), torch.ones_like(labels), accumulate=True)
    return counts


def test_shapes_dtypes_and_split_sizes(mnist_root):
    real = _module(mnist_root).real
    for split in (real.train, real.val, real.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (3, 32, 32)
        assert split.labels.dtype == torch.long and split.subgroups.dtype == torch.long
    assert len(real.train) == 10 * 10 and len(real.val) == 10 * 2
    assert len(real.test) == 3 * 10 * TEST_PER_CLASS
    assert torch.bincount(real.train.labels).tolist() == [10] * 10


def test_digits_are_padded_centred_and_painted_in_their_subgroup_colour(tmp_path):
    fixture = write_mnist(tmp_path, TRAIN_PER_CLASS, TEST_PER_CLASS)
    test = _module(tmp_path).real.test
    # The test split keeps the official order, once per colour: image i is test digit i % n.
    n = len(fixture.test_labels)
    gray = torch.from_numpy(fixture.test_images)
    assert torch.equal(test.labels[:n], torch.from_numpy(fixture.test_labels))
    expected = torch.nn.functional.pad(gray[:, None], (2, 2, 2, 2))
    assert torch.equal(test.images, colorize(expected.repeat(3, 1, 1, 1), test.subgroups))
    # Only the subgroup's channel carries strokes, and the 2 px border is black.
    assert test.images[:, :, :2].eq(0).all() and test.images[:, :, :, -2:].eq(0).all()


def test_image_size_28_keeps_digits_unpadded(mnist_root):
    assert _module(mnist_root, image_size=28).real.train.images.shape[1:] == (3, 28, 28)
    with pytest.raises(ValueError, match="--data.image_size"):
        _module(mnist_root, image_size=24)


def test_test_split_is_balanced_over_class_and_colour(mnist_root):
    test = _module(mnist_root, bias="biased").real.test
    assert (_counts(test.labels, test.subgroups) == TEST_PER_CLASS).all()


def test_biased_majority_counts_are_exact(mnist_root):
    train = _module(mnist_root, bias="biased", majority=0.8).real.train
    counts = _counts(train.labels, train.subgroups)
    # 10 train digits per class: 8 in the class's colour c % 3, 1 in each other colour.
    for c in range(10):
        expected = [1, 1, 1]
        expected[c % 3] = 8
        assert counts[c].tolist() == expected


def test_biased_color_table_counts_are_exact(mnist_root):
    table = [[0.6, 0.4, 0.0], [0.0, 0.3, 0.7]] * 5
    train = _module(mnist_root, bias="biased", color_probs=table).real.train
    counts = _counts(train.labels, train.subgroups)
    for c in range(10):
        assert counts[c].tolist() == [round(p * 10) for p in table[c]]


def test_unbiased_colours_are_uniform_per_class(mnist_root):
    train = _module(mnist_root).real.train
    counts = _counts(train.labels, train.subgroups)
    assert (counts.max(1).values - counts.min(1).values <= 1).all()


def test_same_split_seed_same_colours_other_seed_differs(mnist_root):
    a, b = _module(mnist_root).real.train, _module(mnist_root).real.train
    c = _module(mnist_root, split_seed=1).real.train
    assert torch.equal(a.images, b.images) and torch.equal(a.subgroups, b.subgroups)
    assert not torch.equal(a.subgroups, c.subgroups)


def test_train_limit_caps_every_split_stratified(mnist_root):
    real = _module(mnist_root, train_limit=60).real
    # 60 of 120 train digits = 6 per class, 1 of them held out; 60 >= 20 test digits keeps all.
    assert torch.bincount(real.train.labels).tolist() == [5] * 10
    assert torch.bincount(real.val.labels).tolist() == [1] * 10
    assert len(real.test) == 3 * 10 * TEST_PER_CLASS


def test_train_limit_caps_the_test_split_too(tmp_path):
    write_mnist(tmp_path, train_per_class=6, test_per_class=4)
    real = ColoredMNISTDataModule(root=str(tmp_path), val_fraction=1 / 3, train_limit=30).real
    # 30 of 60 train digits: 3 per class, 1 held out; 30 of 40 test digits: 3 per class, in 3 colours.
    assert torch.bincount(real.train.labels).tolist() == [2] * 10
    assert (_counts(real.test.labels, real.test.subgroups) == 3).all()


@pytest.mark.parametrize(("limit", "flag"), [(4, "--data.train_limit"), (20, "--data.val_fraction")])
def test_limits_that_empty_a_split_name_the_flag(mnist_root, limit, flag):
    # 4 of 120 rounds to 0 per class; 20 keeps 2 per class, of which a sixth rounds to 0 held out.
    with pytest.raises(ValueError, match=flag):
        _ = _module(mnist_root, train_limit=limit).real


def test_gz_only_copy_is_decompressed(tmp_path):
    fixture = write_mnist(tmp_path, TRAIN_PER_CLASS, TEST_PER_CLASS, extracted=False)
    real = _module(tmp_path).real
    assert len(real.train) + len(real.val) == 10 * TRAIN_PER_CLASS
    assert all((fixture.raw_folder / name).is_file() for name in MNIST_FILES)


def test_missing_root_names_root_files_and_download_flag(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as info:
        _ = _module(root).real
    message = str(info.value)
    assert str(root) in message and "--data.download true" in message
    assert "MNIST/raw/train-images-idx3-ubyte(.gz)" in message and "t10k-labels-idx1-ubyte" in message


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    # torchvision's real download code runs; only its network call fails, as offline.
    def offline(url, *args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    with pytest.raises(DatasetNotFoundError, match="(?s)could not download MNIST.*no network"):
        _ = _module(tmp_path, download=True).real


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
def test_truncated_idx_file_is_named(mnist_root, name):
    path = mnist_root / "MNIST" / "raw" / name
    truncate(path)
    with pytest.raises(CorruptDatasetError) as info:
        _ = _module(mnist_root).real
    assert info.value.path == path and str(path) in str(info.value)


def test_labels_file_of_the_wrong_length_is_named(mnist_root):
    labels = mnist_root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[4:8] = (TRAIN_PER_CLASS * 10 - 1).to_bytes(4, "big")  # one label fewer than digits
    labels.write_bytes(bytes(data[:-1]))
    with pytest.raises(CorruptDatasetError, match="train-labels-idx1-ubyte"):
        _ = _module(mnist_root).real


def test_corrupt_gz_is_named(tmp_path):
    fixture = write_mnist(tmp_path, TRAIN_PER_CLASS, TEST_PER_CLASS, extracted=False)
    packed = fixture.raw_folder / "t10k-images-idx3-ubyte.gz"
    truncate(packed, keep=40)
    with pytest.raises(CorruptDatasetError) as info:
        _ = _module(tmp_path).real
    assert info.value.path == packed
    assert not (fixture.raw_folder / "t10k-images-idx3-ubyte").exists()  # no half-written file left


def test_bad_color_probs_name_the_flag(mnist_root):
    with pytest.raises(ValueError, match="--data.color_probs.*shape"):
        _module(mnist_root, bias="biased", color_probs=[[1.0, 0.0, 0.0]] * 9)
    with pytest.raises(ValueError, match="--data.color_probs.*sum"):
        _module(mnist_root, bias="biased", color_probs=[[0.5, 0.0, 0.0]] * 10)


def test_fixture_is_valid_gzip(mnist_root):
    # The .gz files are what a download leaves: they decompress to the extracted files byte for byte.
    raw = mnist_root / "MNIST" / "raw"
    for name in MNIST_FILES:
        assert gzip.decompress((raw / f"{name}.gz").read_bytes()) == (raw / name).read_bytes()

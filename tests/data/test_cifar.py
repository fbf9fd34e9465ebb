"""CIFAR20DataModule and CIFAR100DataModule on a tiny CIFAR-100 written as the real python pickles."""

from __future__ import annotations

import pickle
from urllib.error import URLError

import pytest
import torch
from fixtures_formats import MarkerPayload, truncate, write_cifar100

from selfloop.data.cifar import CIFAR20DataModule, CIFAR100DataModule
from selfloop.data.errors import CorruptDatasetError, DatasetNotFoundError, UntrustedPickleError

# 4 train images per fine class, a quarter held out: 3 train + 1 val per fine class; 1 test image each.
TRAIN_PER_FINE, TEST_PER_FINE, VAL_FRACTION = 4, 1, 0.25


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    # Module-scoped: no test here modifies these files (the corruption tests write their own copy).
    return write_cifar100(tmp_path_factory.mktemp("cifar"), TRAIN_PER_FINE, TEST_PER_FINE)


def _cifar20(root, **kwargs) -> CIFAR20DataModule:
    return CIFAR20DataModule(root=str(root), check_integrity=False, val_fraction=VAL_FRACTION, **kwargs)


def test_cifar20_shapes_labels_and_split_sizes(cifar):
    dm = _cifar20(cifar.folder.parent)
    real = dm.real
    for split in (real.train, real.val, real.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (3, 32, 32)
        assert split.labels.dtype == torch.long and split.subgroups.dtype == torch.long
        assert split.labels.max() < 20 and split.subgroups.max() < 5
    assert (len(real.train), len(real.val), len(real.test)) == (300, 100, 100)
    # Stratified by fine class: every (class, subgroup) cell holds 3 train and 1 val image.
    for split, per_cell in ((real.train, 3), (real.val, 1), (real.test, 1)):
        cells = torch.bincount(split.labels * 5 + split.subgroups, minlength=100)
        assert cells.eq(per_cell).all()
    assert dm.class_names == cifar.coarse_label_names


def test_subgroups_follow_the_fine_to_coarse_mapping(cifar):
    dm = _cifar20(cifar.folder.parent)
    test = dm.real.test
    fine_to_coarse = torch.from_numpy(cifar.fine_to_coarse)
    # The test split keeps the official order: image i is the fixture's test image i.
    assert torch.equal(test.images, torch.from_numpy(cifar.test_images))
    fine = torch.from_numpy(cifar.test_fine)
    assert torch.equal(test.labels, fine_to_coarse[fine])
    for c in range(20):
        members = sorted((fine_to_coarse == c).nonzero().flatten().tolist())
        # Subgroup g of superclass c is its g-th fine class by fine label id.
        assert dm.fine_class_names[c] == [cifar.fine_label_names[f] for f in members]
        for g, f in enumerate(members):
            assert test.subgroups[fine == f].eq(g).all()
    assert dm.subgroup_names == ["sub0", "sub1", "sub2", "sub3", "sub4"]


def test_cifar100_has_fine_classes_and_one_subgroup(cifar):
    dm = CIFAR100DataModule(root=str(cifar.folder.parent), check_integrity=False, val_fraction=VAL_FRACTION)
    real = dm.real
    assert (dm.num_classes, dm.num_subgroups) == (100, 1)
    assert torch.equal(real.test.labels, torch.from_numpy(cifar.test_fine))
    assert real.train.subgroups.eq(0).all() and torch.bincount(real.train.labels).eq(3).all()
    assert dm.class_names == cifar.fine_label_names


def test_split_seed_is_deterministic(cifar):
    root = cifar.folder.parent
    a, b, c = _cifar20(root).real.val, _cifar20(root).real.val, _cifar20(root, split_seed=1).real.val
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)


def test_train_limit_is_stratified_over_fine_classes(cifar):
    root = str(cifar.folder.parent)
    real = CIFAR20DataModule(root=root, check_integrity=False, val_fraction=0.5, train_limit=200).real
    # 200 of 400 train images = 2 per fine class, half of them held out.
    for split in (real.train, real.val):
        assert torch.bincount(split.labels * 5 + split.subgroups, minlength=100).eq(1).all()
    assert len(real.test) == 100  # 200 >= the 100 test images: all kept


@pytest.mark.parametrize(("limit", "flag"), [(40, "--data.train_limit"), (120, "--data.val_fraction")])
def test_limits_that_empty_a_split_name_the_flag(cifar, limit, flag):
    # 40 of 400 rounds to 0 per fine class; 120 keeps 1 per fine class, none of which a quarter holds out.
    with pytest.raises(ValueError, match=flag):
        _ = _cifar20(cifar.folder.parent, train_limit=limit).real


def test_missing_root_names_root_files_and_download_flag(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as info:
        _ = _cifar20(root).real
    message = str(info.value)
    assert str(root) in message and "--data.download true" in message
    for name in ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"):
        assert name in message


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    # torchvision's real download code runs; only its network call fails, as offline.
    def offline(url, *args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    with pytest.raises(DatasetNotFoundError, match="could not download CIFAR-100.*no network"):
        _ = CIFAR20DataModule(root=str(tmp_path), download=True).real


def test_checksum_mismatch_names_the_file_and_the_escape_hatch(cifar):
    with pytest.raises(CorruptDatasetError) as info:
        _ = CIFAR20DataModule(root=str(cifar.folder.parent)).real  # check_integrity defaults to True
    assert info.value.path.parent == cifar.folder
    assert "md5" in str(info.value) and "--data.check_integrity false" in str(info.value)


@pytest.mark.parametrize("name", ["train", "test", "meta"])
def test_truncated_pickle_is_named(tmp_path, name):
    fixture = write_cifar100(tmp_path, 1, 1)
    truncate(fixture.folder / name)
    with pytest.raises(CorruptDatasetError, match="does not unpickle") as info:
        _ = _cifar20(tmp_path).real
    assert info.value.path == fixture.folder / name and str(fixture.folder / name) in str(info.value)


def test_pickle_with_wrong_structure_is_named(tmp_path):
    fixture = write_cifar100(tmp_path, 1, 1)
    path = fixture.folder / "test"
    entry = pickle.loads(path.read_bytes())
    entry["coarse_labels"] = entry["coarse_labels"][:-1]
    path.write_bytes(pickle.dumps(entry))
    with pytest.raises(CorruptDatasetError, match="100 images but 100 fine and 99 coarse") as info:
        _ = _cifar20(tmp_path).real
    assert info.value.path == path


def test_inconsistent_hierarchy_is_reported(tmp_path):
    fixture = write_cifar100(tmp_path, 1, 1)
    path = fixture.folder / "train"
    entry = pickle.loads(path.read_bytes())
    entry["coarse_labels"][0] = (entry["coarse_labels"][0] + 1) % 20  # one fine class in two superclasses
    path.write_bytes(pickle.dumps(entry))
    with pytest.raises(CorruptDatasetError, match="hierarchy"):
        _ = _cifar20(tmp_path).real


@pytest.mark.parametrize("name", ["train", "meta"])
def test_crafted_pickle_is_refused_without_running_it(tmp_path, name):
    # check_integrity=False skips the md5 check that would refuse the file first: the unpickler itself
    # must not run what the pickle names.
    fixture = write_cifar100(tmp_path, 1, 1)
    marker, path = tmp_path / "marker", fixture.folder / name
    entry = pickle.loads(path.read_bytes())
    entry["batch_label"] = MarkerPayload(marker)
    path.write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(UntrustedPickleError) as info:
        _ = _cifar20(tmp_path).real
    assert not marker.exists()
    assert info.value.path == path
    assert "not the official CIFAR-100 release" in str(info.value) and "--data.download true" in str(
        info.value
    )

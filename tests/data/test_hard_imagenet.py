"""HardImageNetDataModule on a tiny tree in the real release's layout (JPEG images, PNG masks, meta pickles)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from helpers.image_trees import ImageNetFolders, tree_fixtures
from torchvision.io import write_png

from selfloop.callbacks.ablation_metrics import AblationMetrics
from selfloop.callbacks.evaluation import evaluation_callback
from selfloop.data.errors import CorruptDatasetError, DatasetNotFoundError
from selfloop.data.hard_imagenet import HardImageNetDataModule
from selfloop.data.segmented import boxes_from_masks

NUM_CLASSES = 15
# ImageNet indices of the 15 classes in label order (deliberately not sorted), with made-up wnids.
INDICES = [979, 3, 500, 17, 250, 999, 0, 640, 120, 333, 801, 42, 777, 555, 900]
HEIGHT, WIDTH = 40, 50  # ImageNet images are rarely square


def wnid_of(index: int) -> str:
    return f"n{90000000 + index:08d}"


def class_name_of(index: int) -> str:
    return f"thing {index}, synonym {index}"  # ImageNet names list synonyms after a comma


def write_tree(root: Path, train_per_class: int = 4, val_per_class: int = 2) -> dict[str, Path]:
    """Write ``root/imagenet`` and ``root/hard_imagenet`` as the real data sets lay them out.

    Train images ``n<..>_<k>.JPEG`` and val images ``ILSVRC2012_val_<8 digits>.JPEG`` in wnid folders;
    masks ``<wnid>_<image file name>`` (PNG data under the ``.JPEG`` name, as in the release) in
    ``hard_imagenet/{train,val}``; one extra train image per class without a mask. The colour of
    every image is ``(label * 16, 100, 200)``; each mask is a rectangle whose corner depends on
    the image, with values 1 (red channel) and 255 (elsewhere) to exercise the ``> 0`` binarisation.
    """
    imagenet, hard = root / "imagenet", root / "hard_imagenet"
    (hard / "meta").mkdir(parents=True)
    with open(hard / "meta" / "hard_imagenet_idx.pkl", "wb") as f:
        pickle.dump(INDICES, f)
    with open(hard / "meta" / "idx_to_wnid.pkl", "wb") as f:
        pickle.dump({i: wnid_of(i) for i in range(1000)}, f)
    with open(hard / "meta" / "imagenet_classnames.pkl", "wb") as f:
        pickle.dump([class_name_of(i) for i in range(1000)], f)
    folders = ImageNetFolders(imagenet, first_train_index=1000)
    for label, index in enumerate(INDICES):
        wnid = wnid_of(index)
        colour = torch.tensor([label * 16, 100, 200], dtype=torch.uint8)[:, None, None]
        image = colour.expand(3, HEIGHT, WIDTH).contiguous()
        for split, count in (("train", train_per_class + 1), ("val", val_per_class)):
            (hard / split).mkdir(parents=True, exist_ok=True)
            images = folders.write(split, wnid, image, count)
            if split == "train":
                images = images[:-1]  # the last is an ImageNet train image the release did not segment
            for k, path in enumerate(images):
                mask = torch.zeros(3, HEIGHT, WIDTH, dtype=torch.uint8)
                mask[1:, 10:30, 20 + k : 40] = 255
                mask[0, 10:30, 20 + k : 40] = 1
                write_png(mask, str(hard / split / f"{wnid}_{path.name}"))
    return {"root": root, "imagenet": imagenet, "hard": hard}


def make(tree: dict[str, Path], **kwargs) -> HardImageNetDataModule:
    small = {"image_size": 32, "resize_size": 40, "val_fraction": 0.25, "decode_threads": 2, "batch_size": 8}
    return HardImageNetDataModule(
        imagenet_root=str(tree["imagenet"]), hard_imagenet_root=str(tree["hard"]), **{**small, **kwargs}
    )


tree, own_tree = tree_fixtures(write_tree, train_per_class=2, val_per_class=1)


def test_splits_labels_and_class_names_follow_the_meta_files(tree):
    dm = make(tree)
    assert (dm.num_classes, dm.num_subgroups, dm.channels, dm.image_size) == (15, 1, 3, 32)
    assert dm.wnids == [wnid_of(i) for i in INDICES]
    assert dm.class_names == [f"thing {i}" for i in INDICES]
    real = dm.real
    # 4 masked train images per class (the unmasked fifth is not part of Hard ImageNet), 1 held out.
    assert len(real.train) == 45 and len(real.val) == 15 and len(real.test) == 30
    for split in (real.train, real.val, real.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (3, 32, 32)
        assert torch.equal(split.subgroups, torch.zeros_like(split.labels))
    assert torch.bincount(real.train.labels).tolist() == [3] * 15
    assert torch.bincount(real.val.labels).tolist() == [1] * 15
    assert torch.bincount(real.test.labels).tolist() == [2] * 15
    # Every image of class c has colour (16 c, 100, 200), up to JPEG's rounding.
    for split in (real.train, real.val, real.test):
        expected = torch.stack(
            [split.labels * 16, torch.full_like(split.labels, 100), torch.full_like(split.labels, 200)], 1
        )
        mean = split.images.float().mean((2, 3))
        assert (mean - expected).abs().max() < 4


def test_square_resize_then_centre_crop_with_binary_masks(tree):
    test = make(tree, resize_mode="square").segmented_test_set
    assert test.masks.dtype == torch.bool and test.masks.shape == (30, 32, 32)
    # Val image k=0 of class 0: mask rows 10-29, cols 20-39 of 40x50. Square resize to 40x40 keeps
    # the rows and maps column j to floor(1.25 j) (nearest): cols 16-31; the centre crop removes 4.
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[6:26, 12:28] = True
    assert torch.equal(test.masks[0], expected)
    assert test.boxes[0].tolist() == [6, 25, 12, 27]
    assert torch.equal(test.boxes, boxes_from_masks(test.masks))
    assert test.labels[:2].tolist() == [0, 0]


def test_shorter_side_resize_keeps_the_aspect_ratio(tree):
    test = make(tree, resize_mode="shorter_side").segmented_test_set
    # 40x50 is already 40 on its shorter side; the 32x32 centre crop starts at row 4, column 9.
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[6:26, 11:31] = True
    assert torch.equal(test.masks[0], expected)
    assert test.boxes[0].tolist() == [6, 25, 11, 30]


def test_default_resize_is_256_for_224():
    assert HardImageNetDataModule(image_size=224).crop.resize_size == 256
    assert HardImageNetDataModule(image_size=32).crop.resize_size == 37


def test_limits_per_class(tree):
    real = make(tree, train_limit=2, val_limit=1, val_fraction=0.5).real
    assert len(real.train) == 15 and len(real.val) == 15 and len(real.test) == 15


def test_evaluation_callback_measures_ablations_on_the_test_split(tree):
    dm = make(tree)
    callback = evaluation_callback(dm, lambda metrics: None)
    assert isinstance(callback, AblationMetrics)
    assert callback.data is dm.segmented_test_set
    assert torch.equal(callback.data.images, dm.real.test.images)


def test_val_image_without_mask_names_both_paths(own_tree):
    wnid = wnid_of(INDICES[3])
    image = next((own_tree["imagenet"] / "val" / wnid).iterdir())
    mask = own_tree["hard"] / "val" / f"{wnid}_{image.name}"
    mask.unlink()
    with pytest.raises(DatasetNotFoundError, match="has no mask") as err:
        _ = make(own_tree).real
    assert str(image) in str(err.value) and str(mask) in str(err.value)


def test_mask_without_image_names_the_missing_image(own_tree):
    wnid = wnid_of(INDICES[0])
    image = own_tree["imagenet"] / "train" / wnid / f"{wnid}_1000.JPEG"
    image.unlink()
    with pytest.raises(DatasetNotFoundError, match="has no ImageNet image") as err:
        _ = make(own_tree).real
    assert str(image) in str(err.value) and "image-net.org" in str(err.value)


@pytest.mark.parametrize(
    ("remove", "hint"),
    [
        ("imagenet", "image-net.org"),
        ("imagenet/val", "one folder per wnid"),
        ("hard_imagenet/train", "HardImageNet"),
        ("hard_imagenet/val", "HardImageNet"),
        ("hard_imagenet/meta/hard_imagenet_idx.pkl", "HardImageNet"),
        ("hard_imagenet/meta/idx_to_wnid.pkl", "HardImageNet"),
        ("hard_imagenet/meta/imagenet_classnames.pkl", "HardImageNet"),
    ],
)
def test_missing_pieces_raise_one_error_naming_the_path(own_tree, remove, hint):
    import shutil

    path = own_tree["root"] / remove
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(DatasetNotFoundError, match=hint) as err:
        _ = make(own_tree).real
    assert str(path) in str(err.value)
    assert isinstance(err.value, FileNotFoundError)


@pytest.mark.parametrize("damaged", ["image", "meta"])
def test_damaged_files_name_the_file(own_tree, damaged):
    if damaged == "image":
        wnid = wnid_of(INDICES[5])
        path = next((own_tree["imagenet"] / "val" / wnid).iterdir())
    else:
        path = own_tree["hard"] / "meta" / "idx_to_wnid.pkl"
    path.write_bytes(b"not an image nor a pickle")
    with pytest.raises(CorruptDatasetError) as err:
        _ = make(own_tree).real
    assert str(path) in str(err.value)


def test_separate_mask_root(tmp_path):
    tree = write_tree(tmp_path, train_per_class=2, val_per_class=1)
    masks = tmp_path / "masks"
    masks.mkdir()
    for split in ("train", "val"):
        (tree["hard"] / split).rename(masks / split)
    real = make(tree, mask_root=str(masks), val_fraction=0.5).real
    assert len(real.test) == 15


def test_bad_arguments_name_the_flag():
    with pytest.raises(ValueError, match="resize_size"):
        HardImageNetDataModule(image_size=64, resize_size=32)
    with pytest.raises(ValueError, match="train_limit"):
        HardImageNetDataModule(train_limit=0)
    with pytest.raises(ValueError, match="val_fraction"):
        HardImageNetDataModule(val_fraction=1.0)

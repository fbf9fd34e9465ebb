"""Hard ImageNet (Moayeri, Singla & Feizi, 2022): 15 ImageNet classes with strong spurious cues.

The release (https://github.com/mmoayeri/HardImageNet, file ``hardImageNet.zip``) holds object
segmentations and metadata, not the images: those come from ImageNet (ILSVRC 2012). Expected layout::

    <imagenet_root>/train/<wnid>/<wnid>_<k>.JPEG                   ImageNet train images
    <imagenet_root>/val/<wnid>/ILSVRC2012_val_<8 digits>.JPEG      ImageNet val images, sorted into
                                                                   one folder per wnid
    <mask_root>/train/<wnid>_<image file name>                     e.g. n04228054_n04228054_10231.JPEG
    <mask_root>/val/<wnid>_<image file name>                       e.g. n04228054_ILSVRC2012_val_00001234.JPEG
    <hard_imagenet_root>/meta/hard_imagenet_idx.pkl                list of the 15 ImageNet class indices
    <hard_imagenet_root>/meta/idx_to_wnid.pkl                      dict ImageNet index -> wnid
    <hard_imagenet_root>/meta/imagenet_classnames.pkl              the 1000 ImageNet class names, by index

``mask_root`` defaults to ``hard_imagenet_root``: the unzipped release holds ``train/``, ``val/`` and
``meta/`` side by side. As in the release's own loader (``datasets/hard_imagenet.py``), a mask is
named ``<wnid>_`` followed by the full file name of its ImageNet image, extension included (the masks
keep the ``.JPEG`` suffix whatever their encoding; they are decoded by content, so PNG or JPEG data
both work). Any nonzero value in any channel of a mask is object.

Splits:
    * ``train`` (and ``val``, for early stopping): the ImageNet train images *that have a mask*: the
      release segments about 19k of the 19.5k train images of the 15 classes, and, like the release,
      this data set is the masked images. ``val_fraction`` of them, stratified by class, are held
      out for early stopping (ImageNet's val split is kept for evaluation).
    * ``test``: ImageNet's val split, 50 images per class, 750 in all. Every one must have a mask: its
      masks and bounding boxes feed the ablation evaluation (:class:`AblationMetrics`).

Labels are positions 0..14 in ``hard_imagenet_idx.pkl`` (the release's ``ft=True`` labels); class
names are the ImageNet names of those indices, cut at the first comma ("dogsled, dog sled, dog
sleigh" becomes "dogsled"), used in the generator's prompts. There are no subgroups
(``num_subgroups = 1``; every subgroup id is 0).

Preprocessing, identical for an image and its mask: resize to ``resize_size`` (default
``image_size * 256 / 224``, i.e. 256 for 224) and centre-crop ``image_size``. ``resize_mode: square``
resizes both sides to ``resize_size`` as the release's ``standard_resize_center_crop`` does;
``shorter_side`` keeps the aspect ratio (torchvision's classic ``Resize(256)``). Images are resized
bilinearly with antialiasing; masks are binarised first and resized with nearest-neighbour, so they
stay binary.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torchvision.io import ImageReadMode
from torchvision.transforms import InterpolationMode

from selfloop.data.base import RealSplits
from selfloop.data.errors import CorruptDatasetError, DatasetNotFoundError
from selfloop.data.image_files import (
    GET_IMAGENET,
    ImageNetFoldersDataModule,
    ResizeMode,
    check_limit,
    load_in_threads,
    read_image,
    shown_path,
)
from selfloop.data.image_set import ImageSet
from selfloop.data.safe_pickle import NUMPY_GLOBALS, load_restricted
from selfloop.data.segmented import SegmentedImages, boxes_from_masks
from selfloop.data.splits import stratified_split

__all__ = ["HARD_IMAGENET_URL", "META_FILES", "HardImageNetDataModule"]

HARD_IMAGENET_URL = "https://github.com/mmoayeri/HardImageNet"
META_FILES = ("hard_imagenet_idx.pkl", "idx_to_wnid.pkl", "imagenet_classnames.pkl")
"""The files read from ``<hard_imagenet_root>/meta/``."""

_GET_RELEASE = (
    f"Download the Hard ImageNet release (hardImageNet.zip, linked from {HARD_IMAGENET_URL}) and unzip it "
    "so that it holds train/, val/ and meta/; pass that folder as --data.init_args.hard_imagenet_root "
    "(and --data.init_args.mask_root if the masks live elsewhere)."
)


class HardImageNetDataModule(ImageNetFoldersDataModule):
    """Hard ImageNet: ImageNet images of 15 classes with object masks (see the module docstring).

    Images are kept in memory as uint8 ``(N, 3, image_size, image_size)``; the test split's masks
    and bounding boxes are kept too (``segmented_test_set``) for the ablation evaluation, which
    replaces the subgroup fairness evaluation of the other data sets.

    Args:
        root: parent folder of the default ``imagenet_root`` (``<root>/imagenet``) and
            ``hard_imagenet_root`` (``<root>/hard_imagenet``).
        imagenet_root: ImageNet folder holding ``train/<wnid>/`` and ``val/<wnid>/``.
        hard_imagenet_root: the unzipped Hard ImageNet release, holding ``meta/`` (and by default
            ``train/`` and ``val/`` masks).
        mask_root: folder holding the ``train/`` and ``val/`` masks (default: ``hard_imagenet_root``).
        image_size: side of the centre crop.
        resize_size: side (``square``) or shorter side (``shorter_side``) before cropping; default
            ``round(image_size * 256 / 224)``.
        resize_mode: ``square`` as the release's loader, or ``shorter_side`` keeping the aspect ratio.
        train_limit: keep at most this many masked train images per class (first by file name);
            ``None`` keeps all. For quick runs.
        val_limit: keep at most this many ImageNet val (test) images per class; ``None`` keeps all 50.
        val_fraction: fraction of each class's train images held out for early stopping.
        split_seed: seed of that hold-out, fixed so that ``--loop.seed`` varies training, not data.
        decode_threads: threads decoding and resizing JPEGs while loading.
        batch_size: images per batch.
        num_workers: DataLoader worker processes.
    """

    num_classes = 15
    num_subgroups = 1
    evaluation = "ablations"

    def __init__(
        self,
        root: str = "data",
        imagenet_root: str | None = None,
        hard_imagenet_root: str | None = None,
        mask_root: str | None = None,
        image_size: int = 224,
        resize_size: int | None = None,
        resize_mode: ResizeMode = "square",
        train_limit: int | None = None,
        val_limit: int | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        decode_threads: int = 8,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            root=root, imagenet_root=imagenet_root, image_size=image_size, resize_size=resize_size,
            resize_mode=resize_mode, train_limit=train_limit, val_fraction=val_fraction, split_seed=split_seed,
            decode_threads=decode_threads, batch_size=batch_size, num_workers=num_workers,
        )  # fmt: skip
        check_limit("val_limit", val_limit)
        self.hard_imagenet_root = Path(
            hard_imagenet_root if hard_imagenet_root is not None else Path(root) / "hard_imagenet"
        )
        self.mask_root = Path(mask_root) if mask_root is not None else self.hard_imagenet_root
        self.val_limit = val_limit
        self._meta: tuple[list[str], list[str]] | None = None
        self._segmented_test: SegmentedImages | None = None

    # Metadata ------------------------------------------------------------------------------------

    @property
    def wnids(self) -> list[str]:
        """The 15 WordNet ids, in label order."""
        return self._metadata()[0]

    @property
    def class_names(self) -> list[str]:
        return self._metadata()[1]

    @property
    def subgroup_names(self) -> list[str]:
        return ["all"]

    def _metadata(self) -> tuple[list[str], list[str]]:
        if self._meta is None:
            meta = self.hard_imagenet_root / "meta"
            indices = [int(i) for i in _load_pickle(meta / "hard_imagenet_idx.pkl")]
            idx_to_wnid = _load_pickle(meta / "idx_to_wnid.pkl")
            names = _load_pickle(meta / "imagenet_classnames.pkl")
            if len(indices) != self.num_classes:
                raise ValueError(
                    f"{meta / 'hard_imagenet_idx.pkl'} lists {len(indices)} classes, expected "
                    f"{self.num_classes}: is it the Hard ImageNet release's file? {_GET_RELEASE}"
                )
            try:
                wnids = [str(idx_to_wnid[i]) for i in indices]
                class_names = [str(names[i]).split(",")[0].strip() for i in indices]
            except (KeyError, IndexError, TypeError) as err:
                raise ValueError(
                    f"the meta files in {meta} do not agree: ImageNet index {err} of hard_imagenet_idx.pkl is "
                    f"missing from idx_to_wnid.pkl or imagenet_classnames.pkl. {_GET_RELEASE}"
                ) from None
            self._meta = (wnids, class_names)
        return self._meta

    # Loading -------------------------------------------------------------------------------------

    def load_real(self) -> RealSplits:
        wnids = self.wnids
        train_pairs, train_labels = self._train_pairs(wnids)
        test_pairs, test_labels = self._test_pairs(wnids)
        train_images, _ = self._decode(train_pairs, keep_masks=False)
        test_images, test_masks = self._decode(test_pairs, keep_masks=True)

        train_labels_t = torch.as_tensor(train_labels, dtype=torch.long)
        generator = torch.Generator().manual_seed(self.split_seed)
        val_idx, train_idx = stratified_split(train_labels_t, (self.val_fraction,), generator)
        test_labels_t = torch.as_tensor(test_labels, dtype=torch.long)
        self._segmented_test = SegmentedImages(
            test_images, test_labels_t, test_masks, boxes_from_masks(test_masks)
        )
        return RealSplits(
            train=_image_set(train_images[train_idx], train_labels_t[train_idx]),
            val=_image_set(train_images[val_idx], train_labels_t[val_idx]),
            test=_image_set(test_images, test_labels_t),
        )

    @property
    def segmented_test_set(self) -> SegmentedImages:
        """The test split (ImageNet val) with its masks and inclusive ``(ymin, ymax, xmin, xmax)`` boxes."""
        _ = self.real
        assert self._segmented_test is not None
        return self._segmented_test

    def _train_pairs(self, wnids: Sequence[str]) -> tuple[list[tuple[Path, Path]], list[int]]:
        """(image, mask) paths of the masked train images, driven by the mask files."""
        self._split_dir(self.imagenet_root, "train", "image")
        mask_dir = self._split_dir(self.mask_root, "train", "mask")
        by_class: dict[str, list[Path]] = {w: [] for w in wnids}
        for path in mask_dir.iterdir():
            wnid = path.name.split("_", 1)[0]
            if wnid in by_class:
                by_class[wnid].append(path)
        pairs, labels = [], []
        for label, wnid in enumerate(wnids):
            masks = sorted(by_class[wnid])
            if not masks:
                raise DatasetNotFoundError(
                    f"no train masks of class {wnid} ({self.class_names[label]}) in {mask_dir}: expected files "
                    f"named {wnid}_<image file name>, e.g. {wnid}_{wnid}_10026.JPEG. {_GET_RELEASE}"
                )
            for mask in masks[: self.train_limit]:
                image = self.imagenet_root / "train" / wnid / mask.name[len(wnid) + 1 :]
                if not image.is_file():
                    raise DatasetNotFoundError(
                        f"the mask {mask} has no ImageNet image: {image} does not exist. {GET_IMAGENET}"
                    )
                pairs.append((image, mask))
                labels.append(label)
        return pairs, labels

    def _test_pairs(self, wnids: Sequence[str]) -> tuple[list[tuple[Path, Path]], list[int]]:
        """(image, mask) paths of ImageNet's val images of the 15 classes; each must have a mask."""
        image_root = self._split_dir(self.imagenet_root, "val", "image")
        mask_dir = self._split_dir(self.mask_root, "val", "mask")
        pairs, labels = [], []
        for label, wnid in enumerate(wnids):
            folder = image_root / wnid
            images = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
            if not images:
                raise DatasetNotFoundError(
                    f"no ImageNet val images of class {wnid} in {folder}. {GET_IMAGENET}"
                )
            for image in images[: self.val_limit]:
                mask = mask_dir / f"{wnid}_{image.name}"
                if not mask.is_file():
                    raise DatasetNotFoundError(
                        f"the ImageNet val image {image} has no mask: expected {mask} (named <wnid>_<image file "
                        f"name>). Every val image of the 15 classes is segmented in the release; is "
                        f"--data.init_args.mask_root the unzipped release? {_GET_RELEASE}"
                    )
                pairs.append((image, mask))
                labels.append(label)
        return pairs, labels

    def _split_dir(self, root: Path, split: str, kind: Literal["image", "mask"]) -> Path:
        folder = root / split
        if not folder.is_dir():
            how = GET_IMAGENET if kind == "image" else _GET_RELEASE
            raise DatasetNotFoundError(
                f"Hard ImageNet {kind} folder not found: {shown_path(folder)} does not exist. {how}"
            )
        return folder

    def _decode(self, pairs: Sequence[tuple[Path, Path]], keep_masks: bool) -> tuple[Tensor, Tensor]:
        """uint8 images ``(N, 3, S, S)`` and bool masks ``(N, S, S)`` (empty when not kept)."""
        size = self.image_size
        images = torch.empty(len(pairs), 3, size, size, dtype=torch.uint8)
        masks = torch.zeros(len(pairs) if keep_masks else 0, size, size, dtype=torch.bool)

        def load(pair: tuple[Path, Path]) -> tuple[Tensor, ...]:
            image_path, mask_path = pair
            image = read_image(image_path, ImageReadMode.RGB)
            resized = self.crop.resized_shape(image.shape)
            if not keep_masks:
                return (self.crop(image, resized),)
            # Binarised, then resized nearest-neighbour to the image's shape: binary, and aligned with it.
            mask = (read_image(mask_path, ImageReadMode.UNCHANGED) > 0).any(0, keepdim=True).to(torch.uint8)
            return self.crop(image, resized), self.crop(mask, resized, InterpolationMode.NEAREST)[0].bool()

        load_in_threads(pairs, load, (images, masks) if keep_masks else (images,), self.decode_threads)
        return images, masks


def _image_set(images: Tensor, labels: Tensor) -> ImageSet:
    return ImageSet(images, labels, torch.zeros_like(labels))


def _load_pickle(path: Path) -> Any:
    """Unpickle a metadata file, admitting only plain containers, numbers, strings and numpy values.

    The release publishes no checksums of ``meta/*.pkl``: their content (class indices, wnids, names)
    must be trusted, i.e. come from the official release. A crafted file still cannot run code here:
    any other global raises :class:`~selfloop.data.errors.UntrustedPickleError` before it is imported.
    """
    if not path.is_file():
        raise DatasetNotFoundError(
            f"Hard ImageNet metadata not found: {shown_path(path)} does not exist. {_GET_RELEASE}"
        )
    try:
        return load_restricted(path, NUMPY_GLOBALS, "Hard ImageNet", _GET_RELEASE)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as err:
        raise CorruptDatasetError(
            path, f"not a readable pickle ({type(err).__name__}: {err}). {_GET_RELEASE}"
        ) from None

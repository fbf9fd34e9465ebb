"""Colored MNIST: the 70,000 MNIST digits, zero-padded to ``image_size`` and painted red, green or blue.

Files, read with torchvision's ``MNIST`` (which also downloads them with ``--data.download true``)::

    <root>/MNIST/raw/train-images-idx3-ubyte     (or the .gz the download leaves beside it)
    <root>/MNIST/raw/train-labels-idx1-ubyte
    <root>/MNIST/raw/t10k-images-idx3-ubyte
    <root>/MNIST/raw/t10k-labels-idx1-ubyte

torchvision reads only the *uncompressed* IDX files (its download extracts each ``.gz`` and keeps
both). When only the ``.gz`` files are there (copied by hand from a machine with internet), they are
decompressed next to themselves first. torchvision checks no checksum of the IDX files and not that the
image and label files agree, so the shapes, counts and label range are checked here.

Splits:
    * ``train`` / ``val``: the official 60,000 training digits, ``val_fraction`` of each class held
      out (seeded by ``split_seed``) for early stopping. Each digit gets one colour, drawn from its
      class's colour distribution with exact counts (:func:`~selfloop.data.coloring.assign_colors`).
    * ``test``: the official 10,000 test digits, each rendered once in every colour (30,000 images),
      so the test split is balanced over (class, colour).
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.datasets import MNIST
from torchvision.datasets.mnist import read_image_file, read_label_file

from selfloop.data.base import RealSplits
from selfloop.data.coloring import ColorizedDigits
from selfloop.data.errors import CorruptDatasetError, DatasetNotFoundError
from selfloop.data.splits import check_holdout_args, stratified_limit, validation_holdout

__all__ = ["MNIST_FILES", "MNIST_SIZE", "ColoredMNISTDataModule", "check_pad_size", "pad_digits"]

MNIST_SIZE = 28
"""Side of an MNIST digit in pixels."""

MNIST_FILES: tuple[str, ...] = tuple(os.path.splitext(name)[0] for name, _ in MNIST.resources)
"""The uncompressed IDX files torchvision reads from ``<root>/MNIST/raw`` (train images, train labels,
test images, test labels), taken from torchvision's own list so that they cannot drift apart."""


class ColoredMNISTDataModule(ColorizedDigits):
    """Colored MNIST (see the module docstring): digit strokes painted in the hidden subgroup's colour.

    Args:
        root: folder holding ``MNIST/raw/`` (torchvision's layout).
        download: fetch MNIST into ``root`` with torchvision when it is missing (needs internet; once
            the files are there the flag is harmless, nothing is downloaded again).
        image_size: side of the square images; the 28 px digits are zero-padded, centred, to this size
            (28 keeps them as they are; the DCGAN needs 32).
        val_fraction: fraction of each class of the official training split held out for validation
            (early stopping).
        split_seed: seed of the validation hold-out, of ``train_limit``'s subsets and of the colour
            assignment; fixed per data set so that ``--loop.seed`` varies training, not the data.
        train_limit: for quick runs: keep about this many digits of each official split (train before
            the validation hold-out, and test before it is painted in three colours), a class-stratified
            random subset (rounded per class). ``None`` keeps all.
        **kwargs: the colour table flags of :class:`~selfloop.data.coloring.ColorizedDigits`
            (``bias``, ``color_probs``, ``majority``), ``batch_size`` and ``num_workers``.
    """

    def __init__(
        self,
        root: str = "data",
        download: bool = False,
        image_size: int = 32,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        train_limit: int | None = None,
        **kwargs: Any,
    ) -> None:
        check_pad_size(image_size)
        check_holdout_args(val_fraction, train_limit)
        super().__init__(root=root, **kwargs)
        self.download = download
        self.image_size = image_size
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.train_limit = train_limit

    @property
    def raw_folder(self) -> Path:
        """Where torchvision keeps the IDX files: ``<root>/MNIST/raw``."""
        return Path(self.root) / MNIST.__name__ / "raw"

    def load_real(self) -> RealSplits:
        if not self.download:
            self._check_files()
        train_gray, train_labels = self._read_split(train=True)
        test_gray, test_labels = self._read_split(train=False)

        generator = torch.Generator().manual_seed(self.split_seed)
        train_keep = stratified_limit(train_labels, self.train_limit, generator)
        test_keep = stratified_limit(test_labels, self.train_limit, generator)
        train_gray, train_labels = train_gray[train_keep], train_labels[train_keep]
        test_gray, test_labels = test_gray[test_keep], test_labels[test_keep]

        val_idx, train_idx = validation_holdout(train_labels, self.val_fraction, self.train_limit, generator)
        return self.paint_splits(
            train=(train_gray[train_idx], train_labels[train_idx]),
            val=(train_gray[val_idx], train_labels[val_idx]),
            test=(test_gray, test_labels),
            generator=generator,
        )

    def _check_files(self) -> None:
        """Without download: every IDX file must be there (a lone ``.gz`` is decompressed)."""
        processed = Path(self.root) / MNIST.__name__ / "processed"
        if all((processed / name).is_file() for name in (MNIST.training_file, MNIST.test_file)):
            return  # torchvision < 0.9's cache, which torchvision still reads first
        missing = []
        for name in MNIST_FILES:
            path = self.raw_folder / name
            if path.is_file():
                continue
            packed = path.with_name(name + ".gz")
            if packed.is_file():
                _gunzip(packed, path)
            else:
                missing.append(name)
        if missing:
            expected = ", ".join(f"MNIST/raw/{name}(.gz)" for name in MNIST_FILES)
            raise DatasetNotFoundError(
                f"MNIST not found under --data.root {self.root}: missing {', '.join(missing)} in {self.raw_folder}. "
                f"Expected {expected}. Pass --data.download true once to download it there (needs internet), "
                f"or copy those files from a machine that has them."
            )

    def _read_split(self, train: bool) -> tuple[Tensor, Tensor]:
        """The split's uint8 ``(N, 1, image_size, image_size)`` digits and int64 labels."""
        images_name, labels_name = MNIST_FILES[:2] if train else MNIST_FILES[2:]
        images_file, labels_file = self.raw_folder / images_name, self.raw_folder / labels_name
        try:
            dataset = MNIST(self.root, train=train, download=self.download)
        except Exception as err:
            # torchvision signals a failed download and a missing file with bare RuntimeErrors, and a
            # damaged IDX file with whatever the parser trips on (AssertionError, RuntimeError, ...).
            if self.download and not (images_file.is_file() and labels_file.is_file()):
                raise DatasetNotFoundError(
                    f"could not download MNIST into --data.root {self.root} ({type(err).__name__}: {err}). "
                    f"Without internet, copy MNIST/raw/{images_file.name}(.gz) and the other IDX files "
                    f"{', '.join(MNIST_FILES)} into {self.raw_folder}."
                ) from err
            raise _corrupt_idx(images_file, labels_file, err) from err
        # Read the dataset's tensors directly: indexing it would build one PIL image per digit.
        gray, labels = dataset.data, dataset.targets.long()
        if gray.dtype != torch.uint8 or gray.shape[1:] != (MNIST_SIZE, MNIST_SIZE):
            raise CorruptDatasetError(
                images_file,
                f"expected uint8 {MNIST_SIZE}x{MNIST_SIZE} digits, got {gray.dtype} {tuple(gray.shape)}",
            )
        if labels.shape != (len(gray),):
            raise CorruptDatasetError(
                labels_file,
                f"holds {tuple(labels.shape)} labels for the {len(gray)} digits of {images_file.name}",
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise CorruptDatasetError(
                labels_file, f"labels must be digits 0-9, found {labels.min()}..{labels.max()}"
            )
        return pad_digits(gray[:, None], self.image_size), labels


def check_pad_size(image_size: int) -> None:
    """Refuse an ``--data.image_size`` below MNIST's 28 px: digits are padded to it, never cropped."""
    if image_size < MNIST_SIZE:
        raise ValueError(
            f"--data.image_size must be >= {MNIST_SIZE} (digits are padded, never cropped); got {image_size}"
        )


def pad_digits(gray: Tensor, image_size: int) -> Tensor:
    """Zero-pad ``(N, 1, 28, 28)`` digits to ``image_size`` px, centred."""
    extra = image_size - MNIST_SIZE
    before = extra // 2
    # (left, right, top, bottom): centred, the odd pixel (if any) going right and bottom.
    return F.pad(gray, (before, extra - before, before, extra - before))


def _corrupt_idx(images_file: Path, labels_file: Path, err: Exception) -> CorruptDatasetError:
    """Name the IDX file the loader choked on: torchvision's exception does not say which."""
    for path, read in ((images_file, read_image_file), (labels_file, read_label_file)):
        try:
            read(str(path))
        except Exception as probe:
            reason = f"{type(probe).__name__}: {probe}" if str(probe) else type(probe).__name__
            break
    else:  # both parse on their own (e.g. torchvision read a damaged legacy processed/*.pt cache)
        return CorruptDatasetError(
            images_file.parent.parent,
            f"torchvision could not read MNIST ({type(err).__name__}: {err}) although {images_file.name} and "
            f"{labels_file.name} parse; delete MNIST/processed/ if it exists, else re-download with "
            f"--data.download true.",
        )
    return CorruptDatasetError(
        path,
        f"not a readable MNIST IDX file ({reason}); it is probably truncated or corrupt. Delete it (and its "
        f".gz) and pass --data.download true to fetch it again.",
    )


def _gunzip(packed: Path, target: Path) -> None:
    """Decompress ``packed`` to ``target`` atomically, so an interrupted run leaves no half file."""
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as out, gzip.open(packed, "rb") as source:
            shutil.copyfileobj(source, out)
        os.replace(partial, target)
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        Path(partial).unlink(missing_ok=True)
        raise CorruptDatasetError(
            packed, f"cannot be decompressed ({err}); delete it and download it again"
        ) from err

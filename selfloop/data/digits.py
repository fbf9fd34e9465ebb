"""Colorized digits: scikit-learn's embedded 8x8 handwritten digits, upsampled and painted.

:class:`EmbeddedColoredDigits` is the base of digit sets that ship whole inside a Python package
(no download, no official split): it splits them into train/val/test, stratified by class.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from selfloop.data.base import RealSplits
from selfloop.data.coloring import ColorizedDigits
from selfloop.data.splits import stratified_split

__all__ = ["ColoredDigitsDataModule", "EmbeddedColoredDigits"]


class EmbeddedColoredDigits(ColorizedDigits):
    """Colourised digits held in memory, split train/val/test by class with a fixed seed.

    Train and validation images get one colour each, drawn from the class's colour distribution; every
    test digit is rendered in all three colours, so the test split is balanced over (class, colour).
    Subclasses say where the grayscale digits come from (:meth:`load_gray`).

    Args:
        root: unused (the digits ship with a Python package); kept so every data set takes
            ``--data.root``.
        image_size: side of the square images.
        val_fraction: fraction of the digits held out for validation (early stopping).
        test_fraction: fraction of the digits held out for testing.
        split_seed: seed of the train/val/test split and of the colour assignment; fixed per data
            set so that ``--loop.seed`` varies training, not the data.
        **kwargs: the colour table flags of :class:`~selfloop.data.coloring.ColorizedDigits`
            (``bias``, ``color_probs``, ``majority``), ``batch_size`` and ``num_workers``.
    """

    def __init__(
        self,
        root: str = "data",
        image_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if not (val_fraction > 0 and test_fraction > 0 and val_fraction + test_fraction < 1):
            raise ValueError("--data.val_fraction and --data.test_fraction must be > 0 and sum to < 1")
        super().__init__(root=root, **kwargs)
        self.image_size = image_size
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed

    @abstractmethod
    def load_gray(self) -> tuple[Tensor, Tensor]:
        """Every digit: uint8 ``(N, 1, image_size, image_size)`` stroke intensities and int64 labels."""

    def load_real(self) -> RealSplits:
        gray, labels = self.load_gray()
        generator = torch.Generator().manual_seed(self.split_seed)
        test_idx, val_idx, train_idx = stratified_split(
            labels, (self.test_fraction, self.val_fraction), generator
        )
        return self.paint_splits(
            train=(gray[train_idx], labels[train_idx]),
            val=(gray[val_idx], labels[val_idx]),
            test=(gray[test_idx], labels[test_idx]),
            generator=generator,
        )


class ColoredDigitsDataModule(EmbeddedColoredDigits):
    """Colorized digits from ``sklearn.datasets.load_digits`` (1,797 images; no download).

    Each 8x8 digit is upsampled to ``image_size`` and its strokes painted red, green or blue; the
    colour is the hidden subgroup (splits: see :class:`EmbeddedColoredDigits`, whose other flags it
    takes).

    Args:
        root: unused (the data ships with scikit-learn); kept so every data set takes ``--data.root``.
        image_size: side of the square images after upsampling.
    """

    def load_gray(self) -> tuple[Tensor, Tensor]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        # sklearn's digits are 0..16 intensities; stretch to 0..255 before upsampling.
        gray = torch.as_tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
        gray = F.interpolate(
            gray, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
        gray = (gray.clamp(0, 1) * 255).round().to(torch.uint8)
        return gray, torch.as_tensor(digits.target, dtype=torch.long)

"""Colorized digits: scikit-learn's embedded 8x8 handwritten digits, upsampled and painted."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from selfloop.data.base import RealSplits, SelfLoopDataModule
from selfloop.data.coloring import (
    ColorizedDigits,
    paint_every_color,
)
from selfloop.data.splits import stratified_split


class ColoredDigitsDataModule(ColorizedDigits, SelfLoopDataModule):
    """Colorized digits from ``sklearn.datasets.load_digits`` (1,797 images; no download).

    Each 8x8 digit is upsampled to ``image_size`` and its strokes painted red, green or blue; the
    colour is the hidden subgroup. Train and validation images get one colour each, drawn from the
    class's colour distribution; every test digit is rendered in all three colours, so the test split
    is balanced over (class, colour).

    Args:
        root: unused (the data ships with scikit-learn); kept so every data set takes ``--data.root``.
        bias: ``unbiased`` gives every class a uniform colour distribution; ``biased`` uses
            ``color_probs``.
        color_probs: per-class colour probabilities (10 rows of 3: red, green, blue) for
            ``bias: biased``. Default: class c is colour ``c % 3`` with probability ``majority``.
        majority: the majority-colour probability of the default biased table.
        image_size: side of the square images after upsampling.
        val_fraction: fraction of the digits held out for validation (early stopping).
        test_fraction: fraction of the digits held out for testing.
        split_seed: seed of the train/val/test split and of the colour assignment; fixed per data
            set so that ``--loop.seed`` varies training, not the data.
        batch_size: images per batch.
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        root: str = "data",
        bias: Literal["unbiased", "biased"] = "unbiased",
        color_probs: list[list[float]] | None = None,
        majority: float = 0.8,
        image_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__(root=root, batch_size=batch_size, num_workers=num_workers)
        if not (val_fraction > 0 and test_fraction > 0 and val_fraction + test_fraction < 1):
            raise ValueError("--data.val_fraction and --data.test_fraction must be > 0 and sum to < 1")
        self.init_colors(bias, color_probs, majority)
        self.image_size = image_size
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed

    def load_real(self) -> RealSplits:
        from sklearn.datasets import load_digits

        digits = load_digits()
        # sklearn's digits are 0..16 intensities; stretch to 0..255 before upsampling.
        gray = torch.as_tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
        gray = F.interpolate(
            gray, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
        gray = (gray.clamp(0, 1) * 255).round().to(torch.uint8)
        labels = torch.as_tensor(digits.target, dtype=torch.long)

        generator = torch.Generator().manual_seed(self.split_seed)
        test_idx, val_idx, train_idx = stratified_split(
            labels, (self.test_fraction, self.val_fraction), generator
        )
        train = self.paint_once(gray[train_idx], labels[train_idx], generator)
        val = self.paint_once(gray[val_idx], labels[val_idx], generator)
        test = paint_every_color(gray[test_idx], labels[test_idx])
        return RealSplits(train=train, val=val, test=test)

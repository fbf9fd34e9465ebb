"""Paint grayscale digit strokes red, green or blue; the colour is the hidden subgroup.

:class:`ColorizedDigits` is the base of the colourised digit data sets (``digits``, ``mnist``,
``mnist_subset``): the colour table flags, the painting of the splits and the colour oracle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from selfloop.data.base import RealSplits, SelfLoopDataModule
from selfloop.data.colour_oracle import colour_oracle
from selfloop.data.image_set import ImageSet

COLORS: tuple[str, ...] = ("red", "green", "blue")


def colorize(gray: Tensor, colors: Tensor) -> Tensor:
    """Paint each grayscale image's strokes in one primary colour on black.

    Args:
        gray: uint8 ``(N, 1, H, W)`` or ``(N, H, W)`` stroke intensities.
        colors: int64 ``(N,)`` colour ids in ``[0, 3)`` (red, green, blue).

    Returns:
        uint8 ``(N, 3, H, W)`` where channel ``colors[i]`` holds the strokes and the others are 0.
    """
    if gray.ndim == 3:
        gray = gray[:, None]
    onehot = torch.nn.functional.one_hot(colors.long(), len(COLORS)).to(torch.uint8)
    return gray * onehot[:, :, None, None]


def validate_color_probs(color_probs: Sequence[Sequence[float]], num_classes: int, flag: str) -> Tensor:
    """Check a per-class colour distribution table and return it as a tensor.

    Raises:
        ValueError: naming ``flag`` when the table is not ``num_classes`` rows of 3 non-negative
            probabilities that sum to 1.
    """
    table = torch.as_tensor(color_probs, dtype=torch.float64)
    if table.shape != (num_classes, len(COLORS)):
        raise ValueError(
            f"{flag} must have one row per class and one column per colour, i.e. shape "
            f"({num_classes}, {len(COLORS)}); got {tuple(table.shape)}"
        )
    if (table < 0).any() or not torch.allclose(
        table.sum(1), torch.ones(num_classes, dtype=torch.float64), atol=1e-6
    ):
        bad = [i for i, row in enumerate(table) if (row < 0).any() or abs(float(row.sum()) - 1) > 1e-6]
        raise ValueError(
            f"{flag}: every row must hold non-negative probabilities summing to 1; rows {bad} do not"
        )
    return table


def majority_color_probs(num_classes: int, majority: float) -> list[list[float]]:
    """Class c's strokes are colour ``c % 3`` with probability ``majority``, the others share the rest."""
    minority = (1.0 - majority) / (len(COLORS) - 1)
    return [
        [majority if k == c % len(COLORS) else minority for k in range(len(COLORS))]
        for c in range(num_classes)
    ]


def assign_colors(labels: Tensor, color_probs: Tensor, generator: torch.Generator) -> Tensor:
    """Draw a colour per image from its class's row of ``color_probs``.

    Counts are exact rather than sampled: per class, ``round(p_k * n_c)`` images get colour k (the
    remainder goes to the likeliest colours), then the assignment is shuffled. A biased data set then
    has exactly the configured ratios, not ratios that wobble with the seed.
    """
    colors = torch.empty_like(labels)
    for c in labels.unique().tolist():
        members = (labels == c).nonzero().flatten()
        counts = _exact_counts(color_probs[c], len(members))
        pool = torch.repeat_interleave(torch.arange(len(COLORS)), counts)
        colors[members] = pool[torch.randperm(len(members), generator=generator)]
    return colors


def _exact_counts(probs: Tensor, n: int) -> Tensor:
    raw = probs * n
    counts = raw.floor().long()
    # Largest remainders get the leftover images so the counts add up to n.
    leftover = n - int(counts.sum())
    order = torch.argsort(raw - counts, descending=True, stable=True)
    counts[order[:leftover]] += 1
    return counts


def paint_every_color(gray: Tensor, labels: Tensor) -> ImageSet:
    """Render every image once in each colour: a test split balanced over (class, colour)."""
    parts = []
    for color in range(len(COLORS)):
        colors = torch.full_like(labels, color)
        parts.append(ImageSet(colorize(gray, colors), labels, colors))
    return ImageSet.concat(parts)


class ColorizedDigits(SelfLoopDataModule):
    """Base of the colourised digit data sets: 10 digit classes, the stroke colour as subgroup.

    Holds the per-class colour table, paints train/val images once each and the test images in every
    colour, and reads the subgroup of generated images back from their stroke colour (an exact oracle).

    Args:
        bias: ``unbiased`` gives every class a uniform colour distribution; ``biased`` uses
            ``color_probs``.
        color_probs: per-class colour probabilities (10 rows of 3: red, green, blue) for
            ``bias: biased``. Default: class c is colour ``c % 3`` with probability ``majority``.
        majority: the majority-colour probability of the default biased table.
        **kwargs: ``root``, ``batch_size`` and ``num_workers`` of :class:`SelfLoopDataModule`.
    """

    num_classes = 10
    num_subgroups = len(COLORS)
    channels = 3

    def __init__(
        self,
        bias: Literal["unbiased", "biased"] = "unbiased",
        color_probs: list[list[float]] | None = None,
        majority: float = 0.8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if bias == "biased":
            table = (
                color_probs if color_probs is not None else majority_color_probs(self.num_classes, majority)
            )
        else:
            table = [[1 / len(COLORS)] * len(COLORS)] * self.num_classes
        self.bias = bias
        self.color_probs = validate_color_probs(table, self.num_classes, "--data.color_probs")

    @property
    def class_names(self) -> list[str]:
        return [str(d) for d in range(self.num_classes)]

    @property
    def subgroup_names(self) -> list[str]:
        return list(COLORS)

    def paint_once(self, gray: Tensor, labels: Tensor, generator: torch.Generator) -> ImageSet:
        """Paint each image in one colour drawn from its class's row of the colour table."""
        colors = assign_colors(labels, self.color_probs, generator)
        return ImageSet(colorize(gray, colors), labels, colors)

    def paint_splits(
        self,
        train: tuple[Tensor, Tensor],
        val: tuple[Tensor, Tensor],
        test: tuple[Tensor, Tensor],
        generator: torch.Generator,
    ) -> RealSplits:
        """The real splits from ``(gray, labels)`` pairs of each split.

        Train, then val, digits are painted once each (:meth:`paint_once`, their colours drawn from
        ``generator`` in that order); every test digit is painted in every colour, so the test split is
        balanced over (class, colour).
        """
        return RealSplits(
            train=self.paint_once(*train, generator),
            val=self.paint_once(*val, generator),
            test=paint_every_color(*test),
        )

    def subgroup_oracle(self, images: Tensor) -> Tensor:
        return torch.as_tensor(colour_oracle(images), dtype=torch.long)

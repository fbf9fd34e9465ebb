"""PNG grids of generated samples, a row per class."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torchvision.io import encode_png
from torchvision.utils import make_grid

from selfloop.run.atomic import atomic_write_bytes


def save_sample_grid(path: str | Path, images: Tensor, labels: Tensor, per_class: int) -> None:
    """Save the first ``per_class`` images of every class as one row each (black where fewer)."""
    classes = int(labels.max()) + 1 if len(labels) else 0
    cells = torch.zeros(classes * per_class, *images.shape[1:], dtype=torch.uint8)
    for c in range(classes):
        chosen = images[labels == c][:per_class]
        cells[c * per_class : c * per_class + len(chosen)] = chosen
    grid = make_grid(cells, nrow=per_class, padding=2)
    if grid.shape[0] == 1:
        grid = grid.expand(3, -1, -1)
    atomic_write_bytes(path, encode_png(grid.contiguous()).numpy().tobytes())

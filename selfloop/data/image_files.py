"""Reading image files of on-disk data sets, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor
from torchvision.io import ImageReadMode, decode_image

from selfloop.data.errors import CorruptDatasetError


def shown_path(path: Path) -> str:
    """A path as given, with its absolute form when it is relative (the working directory matters)."""
    return str(path) if path.is_absolute() else f"{path} (= {path.absolute()})"


def read_image(path: Path, mode: ImageReadMode) -> Tensor:
    """Decode an image file as uint8 ``(C, H, W)``.

    Raises:
        CorruptDatasetError: naming the file when it cannot be decoded.
    """
    try:
        return decode_image(str(path), mode=mode)
    except RuntimeError as err:
        raise CorruptDatasetError(
            path, f"cannot decode it ({err}); restore the file from its source"
        ) from None

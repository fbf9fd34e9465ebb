"""Data sets read from ImageNet's folders (Breeds, Hard ImageNet): what they share.

Image files decoded with errors that name the file (``read_image``), the resize-and-centre-crop
preprocessing (``ResizeCrop``), threaded decoding into preallocated tensors (``load_in_threads``), and
``ImageNetFoldersDataModule``, the base holding and validating the settings every such data set has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import torchvision.transforms.v2.functional as TF
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import InterpolationMode

from selfloop.data.base import SelfLoopDataModule
from selfloop.data.errors import CorruptDatasetError
from selfloop.data.splits import check_holdout_args

ResizeMode = Literal["square", "shorter_side"]
T = TypeVar("T")

GET_IMAGENET = (
    "ImageNet (ILSVRC 2012) comes from https://image-net.org/download.php (registration required); its "
    "val images must be sorted into one folder per wnid (val/<wnid>/ILSVRC2012_val_*.JPEG, e.g. with "
    "torchvision.datasets.ImageNet or the usual valprep.sh). Pass the folder holding train/ and val/ as "
    "--data.init_args.imagenet_root."
)
"""Where ImageNet comes from and how it is laid out: the end of every "ImageNet not found" message."""


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


def check_limit(flag: str, limit: int | None) -> None:
    """Validate a per-class image cap (``--data.<flag>``): at least 1, or None for every image.

    Raises:
        ValueError: naming the flag.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"--data.{flag} must be >= 1 or null (every image), got {limit}")


@dataclass(frozen=True)
class ResizeCrop:
    """Resize, then centre-crop a square: the ImageNet preprocessing of an image and of its mask alike.

    Args:
        image_size: side of the centre crop.
        resize_size: side (``square``) or shorter side (``shorter_side``) before cropping.
        mode: ``square`` resizes both sides to ``resize_size``; ``shorter_side`` keeps the aspect ratio
            (torchvision's classic ``Resize(256)``).
    """

    image_size: int
    resize_size: int
    mode: ResizeMode

    @classmethod
    def from_flags(cls, image_size: int, resize_size: int | None, mode: ResizeMode) -> ResizeCrop:
        """From ``--data.image_size``, ``--data.resize_size`` (None: ``round(image_size * 256 / 224)``, 256
        for 224) and ``--data.resize_mode``.

        Raises:
            ValueError: naming the flag whose value cannot work.
        """
        if image_size < 1:
            raise ValueError(f"--data.image_size must be >= 1, got {image_size}")
        resize_size = resize_size if resize_size is not None else round(image_size * 256 / 224)
        if resize_size < image_size:
            raise ValueError(
                f"--data.resize_size ({resize_size}) must be >= --data.image_size ({image_size})"
            )
        if mode not in ("square", "shorter_side"):
            raise ValueError(f"--data.resize_mode must be square or shorter_side, got {mode!r}")
        return cls(image_size, resize_size, mode)

    def resized_shape(self, shape: Sequence[int]) -> list[int]:
        """``[height, width]`` after the resize of an image of ``shape`` (its last two entries)."""
        if self.mode == "square":
            return [self.resize_size, self.resize_size]
        height, width = int(shape[-2]), int(shape[-1])
        scale = self.resize_size / min(height, width)
        return [max(self.resize_size, round(height * scale)), max(self.resize_size, round(width * scale))]

    def __call__(
        self,
        image: Tensor,
        resized: Sequence[int] | None = None,
        interpolation: InterpolationMode = InterpolationMode.BILINEAR,
    ) -> Tensor:
        """``image`` resized (bilinearly with antialiasing by default) and centre-cropped.

        Args:
            image: ``(..., H, W)``.
            resized: the shape to resize to; default ``resized_shape(image.shape)`` (pass the image's for
                its mask, so that both are cut alike).
            interpolation: e.g. ``NEAREST`` for a mask, which then stays binary.
        """
        resized = list(resized) if resized is not None else self.resized_shape(image.shape)
        image = TF.resize(image, resized, interpolation=interpolation, antialias=True)
        return TF.center_crop(image, [self.image_size] * 2)

    def read(self, path: Path) -> Tensor:
        """An RGB image file, resized and cropped: uint8 ``(3, image_size, image_size)``."""
        return self(read_image(path, ImageReadMode.RGB))


def load_in_threads(
    items: Sequence[T], load: Callable[[T], Sequence[Tensor]], into: Sequence[Tensor], threads: int
) -> None:
    """``load`` every item in ``threads`` threads, writing part k of item i's result to ``into[k][i]``.

    Results are written as they arrive, in order, so the decoded files are held once (in ``into``),
    not also in a list.

    Args:
        items: what ``load`` reads, e.g. paths.
        load: one item to its parts (an image, or an image and its mask), as many as ``into`` has.
        into: preallocated tensors of ``len(items)`` rows each.
        threads: decoding threads (JPEG decoding and resizing release the GIL).
    """
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for i, parts in enumerate(pool.map(load, items)):
            for target, part in zip(into, parts, strict=True):
                target[i] = part


class ImageNetFoldersDataModule(SelfLoopDataModule):
    """The settings every data set read from ``<imagenet_root>/<split>/<wnid>/`` shares, validated once.

    Subclasses keep these arguments in their own signature and docstring (the CLI's ``--help`` and
    ``--print_config`` are built from them, with each data set's defaults) and pass them here.

    Args:
        root: parent folder of the default ``imagenet_root`` (``<root>/imagenet``).
        imagenet_root: ImageNet folder holding ``train/<wnid>/`` and ``val/<wnid>/``.
        image_size: side of the centre crop.
        resize_size: side or shorter side before cropping (see ``ResizeCrop``).
        resize_mode: ``square`` or ``shorter_side``.
        train_limit: at most this many train images per class or subclass; ``None`` keeps all.
        val_fraction: fraction of the train images held out for early stopping.
        split_seed: seed of that hold-out.
        decode_threads: threads decoding and resizing JPEGs while loading.
        batch_size: images per batch.
        num_workers: DataLoader worker processes.

    Raises:
        ValueError: naming the flag with a value that cannot work.
    """

    channels = 3

    def __init__(
        self,
        root: str,
        imagenet_root: str | None,
        image_size: int,
        resize_size: int | None,
        resize_mode: ResizeMode,
        train_limit: int | None,
        val_fraction: float,
        split_seed: int,
        decode_threads: int,
        batch_size: int,
        num_workers: int,
    ) -> None:
        super().__init__(root=root, batch_size=batch_size, num_workers=num_workers)
        self.crop = ResizeCrop.from_flags(image_size, resize_size, resize_mode)
        check_holdout_args(val_fraction, train_limit)
        self.imagenet_root = Path(imagenet_root if imagenet_root is not None else Path(root) / "imagenet")
        self.image_size = image_size
        self.train_limit = train_limit
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.decode_threads = decode_threads

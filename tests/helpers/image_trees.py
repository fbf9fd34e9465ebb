"""Tiny ImageNet folder trees for the data tests of Breeds and Hard ImageNet (plain helpers).

``ImageNetFolders`` writes JPEG files under ImageNet's layout and names; ``tree_fixtures`` makes the two
fixtures each data set's tests use: a tree written once per module, and a smaller one per test to damage.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from torch import Tensor
from torchvision.io import write_jpeg


class ImageNetFolders:
    """Writes images into ``<root>/<split>/<wnid>/`` under ImageNet's file names.

    Train images are ``<wnid>_<first_train_index + k>.JPEG``; val images ``ILSVRC2012_val_<8 digits>.JPEG``,
    numbered across all classes in the order they are written, as ImageNet's val split is.

    Args:
        root: the ImageNet folder.
        first_train_index: the number in the name of each class's first train image.
    """

    def __init__(self, root: Path, first_train_index: int = 100) -> None:
        self.root = root
        self.first_train_index = first_train_index
        self._val_count = 0

    def write(self, split: str, wnid: str, image: Tensor, count: int) -> list[Path]:
        """Write ``count`` copies of the uint8 ``(3, H, W)`` ``image`` as JPEG; returns their paths."""
        folder = self.root / split / wnid
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for k in range(count):
            if split == "train":
                name = f"{wnid}_{self.first_train_index + k}.JPEG"
            else:
                self._val_count += 1
                name = f"ILSVRC2012_val_{self._val_count:08d}.JPEG"
            write_jpeg(image, str(folder / name), quality=95)
            paths.append(folder / name)
        return paths


def tree_fixtures(write: Callable[..., dict[str, Path]], **small: int) -> tuple[Callable, Callable]:
    """The fixtures ``tree`` (``write(folder)`` once per module: tests only read it) and ``own_tree``
    (``write(tmp_path / "data", **small)`` per test: a test may damage it).

    Assign both at a test module's top level: ``tree, own_tree = tree_fixtures(write_x, train_per_class=2)``.
    """

    @pytest.fixture(scope="module", name="tree")
    def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
        return write(tmp_path_factory.mktemp("tree"))

    @pytest.fixture(name="own_tree")
    def own(tmp_path: Path) -> dict[str, Path]:
        return write(tmp_path / "data", **small)

    return shared, own

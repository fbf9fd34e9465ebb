"""Tiny MNIST and CIFAR-100 copies written in the real on-disk formats (plain helpers, not fixtures).

The files are what torchvision's download leaves behind, so the data modules read them through the same
code path as the real data sets:

* MNIST: big-endian IDX files in ``<root>/MNIST/raw/``, each both gzipped (``*.gz``, as downloaded) and
  extracted (torchvision's ``MNIST`` reads only the extracted files).
* CIFAR-100: the python pickles ``<root>/cifar-100-python/{train,test,meta}``, protocol 2 with numpy's
  helpers named as in the official Python 2 files. Their md5 sums differ from the official ones, so
  ``CIFAR100DataModule`` needs ``check_integrity=False`` for them.

``MarkerPayload`` is a crafted pickle payload (it runs a shell command that creates a marker file).
"""

from __future__ import annotations

import gzip
import os
import pickle
import shlex
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MNIST_IMAGE_MAGIC = 0x0803  # unsigned byte, 3 dimensions
MNIST_LABEL_MAGIC = 0x0801  # unsigned byte, 1 dimension


@dataclass(frozen=True)
class MnistFixture:
    """What ``write_mnist`` wrote: images uint8 ``(N, 28, 28)`` and labels per official split."""

    raw_folder: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(
    root: Path, train_per_class: int = 12, test_per_class: int = 2, seed: int = 0, extracted: bool = True
) -> MnistFixture:
    """Write a 10-class MNIST in IDX format under ``root/MNIST/raw``.

    Every digit is a random blob on black (the content does not matter, the format does), classes come
    shuffled so that splitting must stratify.

    Args:
        root: the data root (``--data.root``).
        train_per_class: digits per class in the official training split.
        test_per_class: digits per class in the official test split.
        seed: numpy seed of the pixels and the order.
        extracted: also write the uncompressed files (as torchvision's download does); False leaves
            only the ``.gz`` files, as when a user copies the downloads by hand.
    """
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    splits = {}
    for prefix, per_class in (("train", train_per_class), ("t10k", test_per_class)):
        labels = rng.permutation(np.repeat(np.arange(10), per_class)).astype(np.uint8)
        images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
        images[:, 4:24, 6:22] = rng.integers(1, 256, size=(len(labels), 20, 16), dtype=np.uint8)
        for name, array, magic in (
            (f"{prefix}-images-idx3-ubyte", images, MNIST_IMAGE_MAGIC),
            (f"{prefix}-labels-idx1-ubyte", labels, MNIST_LABEL_MAGIC),
        ):
            data = _idx_bytes(array, magic)
            (raw / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
            if extracted:
                (raw / name).write_bytes(data)
        splits[prefix] = (images, labels.astype(np.int64))
    return MnistFixture(raw, *splits["train"], *splits["t10k"])


@dataclass(frozen=True)
class CifarFixture:
    """What ``write_cifar100`` wrote.

    ``fine_to_coarse[f]`` is fine class f's superclass; images are uint8 ``(N, 3, 32, 32)``.
    """

    folder: Path
    fine_to_coarse: np.ndarray
    fine_label_names: list[str]
    coarse_label_names: list[str]
    train_images: np.ndarray
    train_fine: np.ndarray
    test_images: np.ndarray
    test_fine: np.ndarray


def write_cifar100(
    root: Path, train_per_fine: int = 2, test_per_fine: int = 1, seed: int = 0
) -> CifarFixture:
    """Write a CIFAR-100 with 100 fine classes in 20 superclasses as the python pickles.

    The fine -> coarse mapping is a random one with 5 fine classes per superclass (like the real one it
    is not ``fine // 5``), so a loader that assumes contiguous blocks fails the tests.

    Args:
        root: the data root (``--data.root``).
        train_per_fine: images per fine class in ``train``.
        test_per_fine: images per fine class in ``test``.
        seed: numpy seed of the mapping, pixels and order.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    fine_to_coarse = rng.permutation(np.repeat(np.arange(20), 5))
    fine_names = [f"fine{f:02d}" for f in range(100)]
    coarse_names = [f"coarse{c:02d}" for c in range(20)]
    splits = {}
    for name, per_fine in (("train", train_per_fine), ("test", test_per_fine)):
        fine = rng.permutation(np.repeat(np.arange(100), per_fine))
        images = rng.integers(0, 256, size=(len(fine), 3, 32, 32), dtype=np.uint8)
        entry = {
            "filenames": [f"img_{i:05d}.png" for i in range(len(fine))],
            "batch_label": {"train": "training batch 1 of 1", "test": "testing batch 1 of 1"}[name],
            "fine_labels": fine.tolist(),
            "coarse_labels": fine_to_coarse[fine].tolist(),
            # The real files hold each image as 3072 bytes: the red plane, then green, then blue.
            "data": images.reshape(len(fine), 3 * 32 * 32),
        }
        (folder / name).write_bytes(_python2_style_pickle(entry))
        splits[name] = (images, fine)
    with open(folder / "meta", "wb") as handle:
        pickle.dump({"fine_label_names": fine_names, "coarse_label_names": coarse_names}, handle, protocol=2)
    return CifarFixture(folder, fine_to_coarse, fine_names, coarse_names, *splits["train"], *splits["test"])


def _python2_style_pickle(entry: dict) -> bytes:
    """Protocol 2 with numpy's array helpers under ``numpy.core``, as in the official (Python 2) files.

    numpy >= 2 writes ``numpy._core``; the released pickles name ``numpy.core.multiarray._reconstruct``.
    """
    data = pickle.dumps(entry, protocol=2)
    return data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


class MarkerPayload:
    """Pickles into a call of ``os.system`` that creates ``marker``: a stand-in for a crafted data file.

    Unpickling it with plain ``pickle.load`` runs the command; a safe loader must refuse it unrun.
    """

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def truncate(path: Path, keep: int | None = None) -> None:
    """Cut a file to its first ``keep`` bytes (default: half of it), as an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])

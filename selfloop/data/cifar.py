"""CIFAR-100 with its class hierarchy: CIFAR-20 (20 superclasses x 5 subgroups) and plain CIFAR-100.

Files (the python version, as torchvision downloads and extracts it)::

    <root>/cifar-100-python/train     pickle: data (50000 x 3072 uint8), fine_labels, coarse_labels, ...
    <root>/cifar-100-python/test      the same for the 10,000 test images
    <root>/cifar-100-python/meta      pickle: fine_label_names (100), coarse_label_names (20)

The pickles are read here: torchvision's ``CIFAR100`` keeps only the fine labels. torchvision is used
to download (``--data.download true``), which also verifies its md5 checksums of ``train`` and ``test``.

Integrity without download: ``check_integrity: true`` (default) compares ``train``, ``test`` and
``meta`` with torchvision's published md5 sums and refuses a mismatching file, so results labelled
CIFAR-100 come from the real CIFAR-100. Set it false for a deliberately custom copy (a subset, a
test fixture): the files are then only required to unpickle into the expected structure. Either way,
a file that does not unpickle, or whose arrays have the wrong shapes, raises
:class:`~selfloop.data.errors.CorruptDatasetError` naming it.

Trust: the three pickles are unpickled with :func:`~selfloop.data.safe_pickle.load_restricted`, which
admits only the globals of numpy arrays, so a crafted file cannot run code here (it raises
:class:`~selfloop.data.errors.UntrustedPickleError`). It can still hold wrong labels or pixels: only
``check_integrity: true`` (or the download's md5 check) vouches that ``train``, ``test`` and ``meta`` are
the official release; with ``check_integrity: false`` they must come from a source you trust.

Data sets:
    * :class:`CIFAR20DataModule`: classes are the 20 superclasses (``coarse_labels``); the hidden
      subgroup of an image is the position of its fine class within its superclass, 0-4, the fine
      classes of a superclass ordered by fine label id. ``fine_class_names`` names them.
    * :class:`CIFAR100DataModule`: the 100 fine classes; no hidden attribute is defined for them, so
      every image is in the one subgroup 0 (fairness metrics degenerate to ``md = 0``, ``meo = di = 1``
      and only accuracy is informative).

Splits (both): ``train``/``val`` from the official training split, ``val_fraction`` of every fine
class held out (seeded by ``split_seed``; stratifying by fine class also stratifies by superclass and
subgroup); ``test`` is the official test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision.datasets import CIFAR100
from torchvision.datasets.utils import check_integrity as md5_matches

from selfloop.data.base import RealSplits, SelfLoopDataModule
from selfloop.data.errors import CorruptDatasetError, DatasetNotFoundError, UntrustedPickleError
from selfloop.data.image_set import ImageSet
from selfloop.data.safe_pickle import NUMPY_GLOBALS, load_restricted
from selfloop.data.splits import check_holdout_args, stratified_limit, validation_holdout

__all__ = [
    "CIFAR100_FILES",
    "CIFAR100DataModule",
    "CIFAR20DataModule",
    "CIFAR100Files",
    "FINE_PER_COARSE",
    "read_cifar100",
]

NUM_FINE = 100
NUM_COARSE = 20
FINE_PER_COARSE = NUM_FINE // NUM_COARSE
IMAGE_SIZE = 32

# name -> md5, from torchvision's own lists so that they cannot drift apart.
CIFAR100_FILES: dict[str, str] = {
    **{name: md5 for name, md5 in CIFAR100.train_list + CIFAR100.test_list},
    CIFAR100.meta["filename"]: CIFAR100.meta["md5"],
}
"""The files of ``<root>/cifar-100-python/`` and torchvision's md5 sums of the official release."""

_GET_OFFICIAL = (
    "Delete it and pass --data.download true to fetch the official files (torchvision checks their md5)."
)


@dataclass(frozen=True)
class CIFAR100Split:
    """One official split: images uint8 ``(N, 3, 32, 32)``, fine and coarse labels int64 ``(N,)``."""

    images: Tensor
    fine: Tensor
    coarse: Tensor


@dataclass(frozen=True)
class CIFAR100Files:
    """Everything read from ``cifar-100-python/``.

    ``fine_in_coarse[c]`` lists superclass c's fine label ids in increasing order (subgroup order);
    ``subgroup_of_fine[f]`` is fine class f's position in that list.
    """

    train: CIFAR100Split
    test: CIFAR100Split
    fine_label_names: list[str]
    coarse_label_names: list[str]
    fine_in_coarse: list[list[int]]
    subgroup_of_fine: Tensor


def read_cifar100(root: str, download: bool = False, check_integrity: bool = True) -> CIFAR100Files:
    """Read CIFAR-100's python pickles under ``root`` (see the module docstring).

    Args:
        root: folder holding ``cifar-100-python/``.
        download: download and extract the archive with torchvision when the files are missing or
            fail its checksum (needs internet).
        check_integrity: without download, refuse files whose md5 differs from the official release.
            Without it the files must be trusted for their content (a crafted pickle still cannot run
            code: only numpy arrays and plain containers are unpickled).

    Raises:
        DatasetNotFoundError: files missing (naming ``root``, the files and ``--data.download true``),
            or the download failed.
        CorruptDatasetError: a file fails the checksum, does not unpickle, or has the wrong structure.
        UntrustedPickleError: a pickle references any callable but numpy's array reconstruction (it
            is refused before anything runs).
    """
    folder = Path(root) / CIFAR100.base_folder
    if download:
        _download(root, folder)
    else:
        missing = [name for name in CIFAR100_FILES if not (folder / name).is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"CIFAR-100 not found under --data.root {root}: missing {', '.join(missing)} in {folder}. "
                f"Expected {', '.join(f'{CIFAR100.base_folder}/{name}' for name in CIFAR100_FILES)} (the "
                f"python version, {CIFAR100.url}, extracted). Pass --data.download true once to download it "
                f"there (needs internet)."
            )
        if check_integrity:
            for name, md5 in CIFAR100_FILES.items():
                if not md5_matches(folder / name, md5):
                    raise CorruptDatasetError(
                        folder / name,
                        f"md5 differs from the official CIFAR-100 release ({md5}): the file is truncated, "
                        f"corrupt or not CIFAR-100's. Delete it and pass --data.download true to fetch it "
                        f"again; for a deliberately custom copy pass --data.check_integrity false.",
                    )
    meta = _unpickle(folder / CIFAR100.meta["filename"])
    fine_names = _names(meta, "fine_label_names", NUM_FINE, folder / CIFAR100.meta["filename"])
    coarse_names = _names(meta, "coarse_label_names", NUM_COARSE, folder / CIFAR100.meta["filename"])
    (train_name, _), (test_name, _) = CIFAR100.train_list[0], CIFAR100.test_list[0]
    train = _read_split(folder / train_name)
    test = _read_split(folder / test_name)
    fine_in_coarse, subgroup_of_fine = _hierarchy(train, test, folder)
    return CIFAR100Files(train, test, fine_names, coarse_names, fine_in_coarse, subgroup_of_fine)


def _download(root: str, folder: Path) -> None:
    try:
        # The test split is the smaller one to load; the constructor downloads, extracts and checks the
        # md5 of train and test (and meta) before it, and raises if any is still wrong.
        CIFAR100(root, train=False, download=True)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a failed checksum a RuntimeError
        missing = [name for name in CIFAR100_FILES if not (folder / name).is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"could not download CIFAR-100 ({CIFAR100.url}) into --data.root {root} "
                f"({type(err).__name__}: {err}). Without internet, extract {CIFAR100.filename} there by "
                f"hand so that {folder} holds {', '.join(CIFAR100_FILES)}."
            ) from err
        raise CorruptDatasetError(
            folder,
            f"torchvision's checksum check failed after downloading ({err}); delete the folder and retry",
        ) from err


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        # latin1: the official pickles were written by Python 2 (numpy arrays inside need it).
        entry = load_restricted(path, NUMPY_GLOBALS, "CIFAR-100", _GET_OFFICIAL, encoding="latin1")
    except UntrustedPickleError:
        raise
    except Exception as err:  # unpickling fails in many ways: UnpicklingError, EOFError, ValueError, ...
        raise CorruptDatasetError(
            path, f"does not unpickle ({type(err).__name__}: {err}); it is probably truncated or corrupt"
        ) from err
    if not isinstance(entry, dict):
        raise CorruptDatasetError(path, f"expected a pickled dict, got {type(entry).__name__}")
    return entry


def _names(meta: dict[str, Any], key: str, count: int, path: Path) -> list[str]:
    names = meta.get(key)
    if not isinstance(names, list) or len(names) != count:
        raise CorruptDatasetError(path, f"expected {count} names under {key!r}")
    return [str(name) for name in names]


def _read_split(path: Path) -> CIFAR100Split:
    entry = _unpickle(path)
    try:
        data = np.asarray(entry["data"])
        fine = torch.as_tensor(np.asarray(entry["fine_labels"], dtype=np.int64))
        coarse = torch.as_tensor(np.asarray(entry["coarse_labels"], dtype=np.int64))
    except (KeyError, TypeError, ValueError) as err:
        raise CorruptDatasetError(
            path, f"lacks data, fine_labels or coarse_labels ({type(err).__name__}: {err})"
        ) from err
    pixels = 3 * IMAGE_SIZE * IMAGE_SIZE
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels:
        raise CorruptDatasetError(path, f"data must be uint8 (N, {pixels}), got {data.dtype} {data.shape}")
    n = data.shape[0]
    if fine.shape != (n,) or coarse.shape != (n,):
        raise CorruptDatasetError(path, f"{n} images but {len(fine)} fine and {len(coarse)} coarse labels")
    for labels, upper, key in ((fine, NUM_FINE, "fine_labels"), (coarse, NUM_COARSE, "coarse_labels")):
        if n and (labels.min() < 0 or labels.max() >= upper):
            raise CorruptDatasetError(path, f"{key} must lie in [0, {upper})")
    # Each row is the red plane, then green, then blue: already channels-first.
    images = torch.from_numpy(data.reshape(n, 3, IMAGE_SIZE, IMAGE_SIZE).copy())
    return CIFAR100Split(images, fine, coarse)


def _hierarchy(train: CIFAR100Split, test: CIFAR100Split, folder: Path) -> tuple[list[list[int]], Tensor]:
    """Each superclass's fine classes, from the (fine, coarse) pairs of both splits."""
    fine = torch.cat([train.fine, test.fine])
    coarse = torch.cat([train.coarse, test.coarse])
    pairs = torch.unique(torch.stack([fine, coarse], 1), dim=0)
    fine_in_coarse = [pairs[pairs[:, 1] == c, 0].sort().values.tolist() for c in range(NUM_COARSE)]
    if len(pairs) != NUM_FINE or any(len(members) != FINE_PER_COARSE for members in fine_in_coarse):
        raise CorruptDatasetError(
            folder,
            f"expected CIFAR-100's hierarchy, each of the {NUM_FINE} fine classes in exactly one of "
            f"{NUM_COARSE} superclasses, {FINE_PER_COARSE} per superclass; the labels give "
            f"{len(pairs)} (fine, coarse) pairs and superclass sizes {[len(m) for m in fine_in_coarse]}",
        )
    subgroup_of_fine = torch.empty(NUM_FINE, dtype=torch.long)
    for members in fine_in_coarse:
        subgroup_of_fine[members] = torch.arange(FINE_PER_COARSE)
    return fine_in_coarse, subgroup_of_fine


class CIFAR100DataModule(SelfLoopDataModule):
    """CIFAR-100's 100 fine classes, with a single subgroup (see the module docstring).

    Args:
        root: folder holding ``cifar-100-python/``.
        download: fetch CIFAR-100 into ``root`` with torchvision when it is missing (needs internet;
            once the files are there and match torchvision's checksums nothing is downloaded again).
        check_integrity: compare the files with the official md5 sums (when not downloading); set
            false for custom copies (subsets, test fixtures), which then only need to unpickle into
            the expected structure.
        val_fraction: fraction of each fine class of the official training split held out for
            validation (early stopping).
        split_seed: seed of the validation hold-out and of ``train_limit``'s subsets; fixed per data
            set so that ``--loop.seed`` varies training, not the data.
        train_limit: for quick runs: keep about this many images of each official split (train before
            the validation hold-out, and test), a random subset stratified by fine class (rounded per
            class). ``None`` keeps all.
        batch_size: images per batch.
        num_workers: DataLoader worker processes.
    """

    num_classes = NUM_FINE
    num_subgroups = 1
    channels = 3
    image_size = IMAGE_SIZE

    def __init__(
        self,
        root: str = "data",
        download: bool = False,
        check_integrity: bool = True,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        train_limit: int | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__(root=root, batch_size=batch_size, num_workers=num_workers)
        check_holdout_args(val_fraction, train_limit)
        self.download = download
        self.check_integrity = check_integrity
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.train_limit = train_limit
        self._files: CIFAR100Files | None = None

    @property
    def files(self) -> CIFAR100Files:
        """The parsed files, read on first use (names and hierarchy need them too)."""
        if self._files is None:
            self._files = read_cifar100(self.root, self.download, self.check_integrity)
        return self._files

    @property
    def class_names(self) -> list[str]:
        return self.files.fine_label_names

    @property
    def subgroup_names(self) -> list[str]:
        return ["all"]

    def targets(self, split: CIFAR100Split) -> tuple[Tensor, Tensor]:
        """Class labels and subgroup ids of a split's images: fine classes, one subgroup."""
        return split.fine, torch.zeros_like(split.fine)

    def load_real(self) -> RealSplits:
        files = self.files
        generator = torch.Generator().manual_seed(self.split_seed)
        train = self._subset(files.train, stratified_limit(files.train.fine, self.train_limit, generator))
        test = self._subset(files.test, stratified_limit(files.test.fine, self.train_limit, generator))
        val_idx, train_idx = validation_holdout(train.fine, self.val_fraction, self.train_limit, generator)
        return RealSplits(
            train=self._image_set(self._subset(train, train_idx)),
            val=self._image_set(self._subset(train, val_idx)),
            test=self._image_set(test),
        )

    @staticmethod
    def _subset(split: CIFAR100Split, index: Tensor) -> CIFAR100Split:
        return CIFAR100Split(split.images[index], split.fine[index], split.coarse[index])

    def _image_set(self, split: CIFAR100Split) -> ImageSet:
        labels, subgroups = self.targets(split)
        return ImageSet(split.images, labels, subgroups)


class CIFAR20DataModule(CIFAR100DataModule):
    """CIFAR-20: CIFAR-100's 20 superclasses, each split into 5 hidden subgroups by fine class.

    An image's class is its superclass (``coarse_labels``); its subgroup is the position of its fine
    class among the superclass's 5 fine classes ordered by fine label id (e.g. superclass "aquatic
    mammals" = beaver 4, dolphin 30, otter 55, seal 72, whale 95 -> subgroups 0-4).
    ``fine_class_names[c][g]`` names subgroup g of class c.

    Its flags are those of :class:`CIFAR100DataModule`.
    """

    num_classes = NUM_COARSE
    num_subgroups = FINE_PER_COARSE

    @property
    def class_names(self) -> list[str]:
        return self.files.coarse_label_names

    @property
    def subgroup_names(self) -> list[str]:
        # The names differ per class (see ``fine_class_names``); across classes a subgroup is a position.
        return [f"sub{g}" for g in range(FINE_PER_COARSE)]

    @property
    def fine_class_names(self) -> list[list[str]]:
        """Per superclass, the names of its 5 fine classes in subgroup order."""
        names = self.files.fine_label_names
        return [[names[f] for f in members] for members in self.files.fine_in_coarse]

    def targets(self, split: CIFAR100Split) -> tuple[Tensor, Tensor]:
        """Class labels and subgroup ids: superclasses, and fine classes' positions within them."""
        return split.coarse, self.files.subgroup_of_fine[split.fine]

"""BREEDS (Santurkar, Tsipras & Madry, 2021): ImageNet superclasses whose subclasses are hidden subgroups.

BREEDS regroups ImageNet's 1000 classes along a modified WordNet hierarchy into superclasses of equally
many ImageNet classes (subclasses). The release (https://github.com/MadryLab/BREEDS-Benchmarks, folder
``imagenet_class_hierarchy/modified``) holds the hierarchy, not the images. Expected layout::

    <info_dir>/dataset_class_info.json    JSON list of [ImageNet index, wnid, "name, synonym, ..."]
    <info_dir>/class_hierarchy.txt        one edge "<parent wnid> <child wnid>" per line
    <info_dir>/node_names.txt             one "<wnid>\\t<name>" per line, for every node
    <imagenet_root>/train/<wnid>/*.JPEG   ImageNet (ILSVRC 2012) train images
    <imagenet_root>/val/<wnid>/*.JPEG     ImageNet val images, sorted into one folder per wnid

The four benchmarks are built exactly as ``robustness.tools.breeds_helpers`` builds them
(``make_living17`` etc. with ``split="rand"``): the hierarchy is pruned to the ancestors of the
ImageNet classes (``ClassHierarchy._make_parent_graph``), every node gets the length of its longest
path from the root ``n00001740`` (``_make_level_dict``), the superclasses are the nodes at the
benchmark's level below its ancestor with at least ``subclasses_per_class`` ImageNet descendants
(``get_superclasses``), and each superclass's subclasses are drawn with
``numpy.random.RandomState(2)`` and halved into a source and a target domain
(``split_superclass(split_type="rand")``). Reading the same release files therefore gives the same
superclasses and subclasses as the BREEDS benchmarks:

=============  =====  ===========================  ==============  ============
benchmark      level  ancestor                     superclasses    subclasses
=============  =====  ===========================  ==============  ============
living17       5      n00004258 (living thing)     17              4 (2 + 2)
entity13       3      (none)                       13              20 (10 + 10)
entity30       4      (none)                       30              8 (4 + 4)
nonliving26    5      n00021939 (non-living thing) 26              4 (2 + 2)
=============  =====  ===========================  ==============  ============

Subgroups. BREEDS trains on the source subclasses and tests on the unseen target subclasses (a
subpopulation shift). The self-consuming loop instead trains on the superclasses and measures how
its *hidden subgroups* fare, as CIFAR-20 does with its fine classes, so by default (``domain:
both``) every superclass keeps all its BREEDS subclasses (source and target: the paper's "four
subclasses each" for living17), and an image's subgroup is the position of its subclass in the
superclass: the source subclasses first, then the target ones, each in the order BREEDS draws them.
``domain: source`` or ``target`` keeps one half (half as many subgroups), e.g. to train on the
source domain as BREEDS does.

Classes are the superclasses in BREEDS's label order (sorted by wnid); class names are their
names in ``node_names.txt`` cut at the first comma ("snake, serpent, ophidian" becomes "snake"),
used in the generator's prompts. ``subclass_names[c][g]`` names subgroup ``g`` of class ``c`` (from
``dataset_class_info.json``, cut the same way).

Splits:
    * ``train`` and ``val`` (for early stopping): the ImageNet train images of the subclasses,
      ``val_fraction`` of every subclass held out (seeded by ``split_seed``).
    * ``test``: the ``test_split`` folder, by default ImageNet's val split (50 images per subclass).

Preprocessing: resize to ``resize_size`` (default ``image_size * 256 / 224``, i.e. 256 for 224)
and centre-crop ``image_size``, as the robustness library's ImageNet test transform
(``shorter_side``, keeping the aspect ratio; ``square`` resizes both sides). Images are resized
bilinearly with antialiasing and kept in memory as uint8.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from selfloop.data.base import RealSplits
from selfloop.data.errors import CorruptDatasetError, DatasetNotFoundError
from selfloop.data.image_files import (
    GET_IMAGENET,
    ImageNetFoldersDataModule,
    ResizeMode,
    check_limit,
    load_in_threads,
    shown_path,
)
from selfloop.data.image_set import ImageSet
from selfloop.data.splits import validation_holdout

__all__ = [
    "BREEDS_BENCHMARKS",
    "BREEDS_URL",
    "HIERARCHY_FILES",
    "BreedsDataModule",
    "BreedsHierarchy",
    "BreedsSpec",
    "BreedsSubclasses",
    "make_breeds",
]

BREEDS_URL = "https://github.com/MadryLab/BREEDS-Benchmarks/tree/master/imagenet_class_hierarchy/modified"
HIERARCHY_FILES = {
    "dataset_class_info.json": "the ImageNet classes, a JSON list of [index, wnid, name]",
    "class_hierarchy.txt": "the hierarchy's edges, one '<parent wnid> <child wnid>' per line",
    "node_names.txt": "the name of every hierarchy node, one '<wnid><TAB><name>' per line",
}
"""The files read from ``info_dir`` (as ``breeds_helpers.REQUIRED_FILES``), with what each holds."""
ROOT_WNID = "n00001740"  # "entity", the root of the hierarchy (breeds_helpers' default root_wnid)
SUBCLASS_SEED = 2  # the random_seed of every make_* function of breeds_helpers
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}

BreedsName = Literal["living17", "entity13", "entity30", "nonliving26"]


@dataclass(frozen=True)
class BreedsSpec:
    """How a BREEDS benchmark is cut from the hierarchy (the arguments of ``get_superclasses``)."""

    level: int
    ancestor: str | None
    subclasses_per_class: int


BREEDS_BENCHMARKS: dict[str, BreedsSpec] = {
    "living17": BreedsSpec(level=5, ancestor="n00004258", subclasses_per_class=4),
    "entity13": BreedsSpec(level=3, ancestor=None, subclasses_per_class=20),
    "entity30": BreedsSpec(level=4, ancestor=None, subclasses_per_class=8),
    "nonliving26": BreedsSpec(level=5, ancestor="n00021939", subclasses_per_class=4),
}

_GET_BREEDS = (
    f"Download dataset_class_info.json, class_hierarchy.txt and node_names.txt from {BREEDS_URL} "
    "(or run robustness.tools.breeds_helpers.setup_breeds) into one folder and pass it as "
    "--data.init_args.info_dir."
)


# The hierarchy ---------------------------------------------------------------------------------


class BreedsHierarchy:
    """The BREEDS class hierarchy read from the release's three files (``breeds_helpers.ClassHierarchy``).

    Args:
        info_dir: folder holding the files of :data:`HIERARCHY_FILES`.
        root: wnid of the hierarchy's root.

    Raises:
        DatasetNotFoundError: a file is missing (the message names it and what belongs in it).
        CorruptDatasetError: a file is not in the release's format, or the root is not in the hierarchy.
    """

    def __init__(self, info_dir: str | Path, root: str = ROOT_WNID) -> None:
        info_dir = Path(info_dir)
        self.info_dir = info_dir
        for name, what in HIERARCHY_FILES.items():
            path = info_dir / name
            if not path.is_file():
                raise DatasetNotFoundError(
                    f"BREEDS hierarchy file not found: {shown_path(path)} does not exist; it holds {what}. "
                    f"{_GET_BREEDS}"
                )
        classes = _read_class_info(info_dir / "dataset_class_info.json")
        edges = _read_columns(info_dir / "class_hierarchy.txt", None, "<parent wnid> <child wnid>")
        names = _read_columns(info_dir / "node_names.txt", "\t", "<wnid><TAB><name>")
        self.leaf_ids: list[str] = [wnid for _, wnid, _ in classes]
        self._leaf_set = set(self.leaf_ids)
        self.leaf_names: dict[str, str] = {wnid: name for _, wnid, name in classes}
        self.leaf_index: dict[str, int] = {wnid: index for index, wnid, _ in classes}
        self.node_names: dict[str, str] = {wnid: name for wnid, name in names}
        self.children = _parent_graph(self.leaf_ids, edges)
        if root not in self.children:
            raise CorruptDatasetError(
                info_dir / "class_hierarchy.txt",
                f"the root {root} is not an ancestor of any class of dataset_class_info.json. {_GET_BREEDS}",
            )
        self.levels = _levels(self.children, root, info_dir / "class_hierarchy.txt")

    def node_name(self, wnid: str) -> str:
        """A node's name from ``node_names.txt`` (the wnid itself where it has none)."""
        return self.node_names.get(wnid, wnid)

    def successors(self, wnid: str) -> list[str]:
        """A node's children in the pruned hierarchy (none for an ImageNet class)."""
        return list(self.children.get(wnid, ()))

    def leaves_reachable(self, wnid: str) -> set[str]:
        """The ImageNet classes below ``wnid`` (``ClassHierarchy.leaves_reachable``)."""
        leaf_ids = self._leaf_set
        leaves: set[str] = {wnid} if wnid in leaf_ids else set()
        todo = {wnid}
        while todo:
            nxt = set()
            for node in todo:
                for child in self.successors(node):
                    if child in leaf_ids:
                        leaves.add(child)
                    else:
                        nxt.add(child)
            todo = nxt
        return leaves

    def nodes_at_level(self, level: int, ancestor: str | None = None) -> set[str]:
        """Nodes at depth ``level``, restricted to ``ancestor``'s subtree (``get_nodes_at_level``)."""
        nodes = {n for n, d in self.levels.items() if d == level}
        if ancestor is None:
            return nodes
        if ancestor not in self.levels:
            raise ValueError(
                f"the BREEDS ancestor {ancestor} is not in the hierarchy of {self.info_dir}: are these the "
                f"release's files? {_GET_BREEDS}"
            )
        below, todo = {ancestor}, [ancestor]
        while todo:
            children = [c for n in todo for c in self.successors(n) if c not in below]
            below.update(children)
            todo = children
        return nodes & below


@dataclass(frozen=True)
class BreedsSubclasses:
    """A BREEDS benchmark: superclasses with their source and target subclasses (all wnids)."""

    superclasses: list[str]
    source: list[list[str]]
    target: list[list[str]]


def make_breeds(hierarchy: BreedsHierarchy, spec: BreedsSpec, seed: int = SUBCLASS_SEED) -> BreedsSubclasses:
    """The superclasses and their subclass split, as ``get_superclasses(split="rand", balanced=True)``.

    Raises:
        ValueError: no superclass has ``spec.subclasses_per_class`` subclasses, or one cannot be split.
    """
    if spec.subclasses_per_class < 2 or spec.subclasses_per_class % 2:
        raise ValueError(
            f"--data.init_args.subclasses_per_class must be even and >= 2 (half source, half target), "
            f"got {spec.subclasses_per_class}"
        )
    rng = np.random.RandomState(seed)
    nodes = sorted(hierarchy.nodes_at_level(spec.level, spec.ancestor))
    superclasses = [n for n in nodes if len(hierarchy.leaves_reachable(n)) >= spec.subclasses_per_class]
    if not superclasses:
        raise ValueError(
            f"no node at level {spec.level} of the BREEDS hierarchy in {hierarchy.info_dir}"
            + (f" below {spec.ancestor}" if spec.ancestor else "")
            + f" has --data.init_args.subclasses_per_class {spec.subclasses_per_class} ImageNet subclasses "
            f"({len(nodes)} node(s) at that level)"
        )
    half = spec.subclasses_per_class // 2
    source, target = [], []
    for superclass in superclasses:
        chosen = [
            str(w) for w in rng.choice(_split_candidates(hierarchy, superclass), 2 * half, replace=False)
        ]
        if len(set(chosen)) != len(chosen):
            raise ValueError(
                f"the BREEDS superclass {superclass} drew the subclass {chosen} twice: it is reachable along "
                f"two paths of {hierarchy.info_dir / 'class_hierarchy.txt'}"
            )
        source.append(chosen[:half])
        target.append(chosen[half:])
    return BreedsSubclasses(superclasses, source, target)


def _split_candidates(hierarchy: BreedsHierarchy, superclass: str) -> list[str]:
    """The sorted subclasses ``split_superclass`` draws from: the leaves below the first node that
    branches, listed per branch (a leaf reached by two branches is listed twice, as there)."""
    node, desc = superclass, sorted(hierarchy.successors(superclass))
    while len(desc) == 1:
        node = desc[0]
        desc = sorted(hierarchy.successors(node))
    candidates: list[str] = []
    for child in desc:
        candidates.extend(sorted(hierarchy.leaves_reachable(child)))
    return sorted(candidates)


def _parent_graph(leaf_ids: Sequence[str], edges: Sequence[Sequence[str]]) -> dict[str, list[str]]:
    """Children per node, keeping only the edges above ImageNet classes (``_make_parent_graph``)."""
    parents: dict[str, list[str]] = {}
    for parent, child in edges:
        parents.setdefault(child, [])
        if parent not in parents[child]:
            parents[child].append(parent)
    children: dict[str, list[str]] = {}
    todo = {leaf for leaf in leaf_ids if leaf in parents}
    seen: set[str] = set()
    while todo:
        nxt = set()
        for node in sorted(todo):
            seen.add(node)
            for parent in parents.get(node, ()):
                if node not in children.setdefault(parent, []):
                    children[parent].append(node)
                if parent not in seen:
                    nxt.add(parent)
        todo = nxt
    return children


def _levels(children: dict[str, list[str]], root: str, path: Path) -> dict[str, int]:
    """Each node's longest path from ``root`` (``_make_level_dict``, keeping the longest path)."""
    levels: dict[str, int] = {}
    frontier, depth = {root}, 0
    while frontier:
        if depth > len(children) + 1:
            raise CorruptDatasetError(path, f"the hierarchy has a cycle through {sorted(frontier)[0]}")
        for node in frontier:
            levels[node] = max(depth, levels.get(node, depth))
        frontier = {c for n in frontier for c in children.get(n, ())}
        depth += 1
    return levels


def _read_class_info(path: Path) -> list[tuple[int, str, str]]:
    try:
        entries = json.loads(path.read_text())
        classes = [(int(index), str(wnid), str(name)) for index, wnid, name in entries]
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as err:
        raise CorruptDatasetError(
            path, f"not a JSON list of [index, wnid, name] ({type(err).__name__}: {err}). {_GET_BREEDS}"
        ) from None
    if not classes:
        raise CorruptDatasetError(path, f"lists no classes. {_GET_BREEDS}")
    return classes


def _read_columns(path: Path, sep: str | None, expected: str) -> list[tuple[str, str]]:
    """Two columns per non-empty line: split at the first ``sep``, or at whitespace when ``None``."""
    rows = []
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as err:
        raise CorruptDatasetError(path, f"not a text file ({err}). {_GET_BREEDS}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.strip().split() if sep is None else line.strip().split(sep, 1)
        if len(parts) != 2 or not parts[1].strip():
            raise CorruptDatasetError(
                path, f"line {number} is {line.strip()!r}, expected {expected}. {_GET_BREEDS}"
            )
        rows.append((parts[0].strip(), parts[1].strip()))
    return rows


# The data module -------------------------------------------------------------------------------


class BreedsDataModule(ImageNetFoldersDataModule):
    """A BREEDS benchmark: ImageNet superclasses, their subclasses the hidden subgroups (see the module docstring).

    ``num_classes`` and ``num_subgroups`` come from the hierarchy files, read on first use (the
    constructor only validates its arguments); images are read on first use of ``real``.

    Args:
        root: parent folder of the default ``imagenet_root`` (``<root>/imagenet``) and ``info_dir``
            (``<root>/breeds``).
        benchmark: which BREEDS benchmark: ``living17`` (17 animal superclasses x 4 subclasses),
            ``entity13`` (13 x 20), ``entity30`` (30 x 8) or ``nonliving26`` (26 x 4).
        imagenet_root: ImageNet folder holding ``train/<wnid>/`` and ``<test_split>/<wnid>/``.
        info_dir: folder holding the BREEDS hierarchy files ``dataset_class_info.json``,
            ``class_hierarchy.txt`` and ``node_names.txt``.
        domain: which subclasses each superclass keeps: ``both`` (BREEDS's source and target, the
            default: all subclasses are subgroups), ``source`` or ``target`` (half of them).
        subclasses_per_class: subclasses per superclass, source and target together (even); ``None``
            keeps the benchmark's (4 for living17). Other values define a non-standard variant.
        test_split: the ImageNet folder of the test split (``val``: ImageNet's val images).
        image_size: side of the centre crop.
        resize_size: shorter side (``shorter_side``) or side (``square``) before cropping; default
            ``round(image_size * 256 / 224)``.
        resize_mode: ``shorter_side`` keeping the aspect ratio (the robustness library's ImageNet
            test transform) or ``square``.
        train_limit: keep at most this many train images per subclass (first by file name), before
            the validation hold-out; ``None`` keeps all (about 1300). For quick runs and memory: all
            of living17 at 224 px is about 13 GB.
        test_limit: keep at most this many test images per subclass; ``None`` keeps all (50 for val).
        val_fraction: fraction of each subclass's train images held out for early stopping.
        split_seed: seed of that hold-out, fixed so that ``--loop.seed`` varies training, not data.
        decode_threads: threads decoding and resizing JPEGs while loading.
        batch_size: images per batch.
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        root: str = "data",
        benchmark: BreedsName = "living17",
        imagenet_root: str | None = None,
        info_dir: str | None = None,
        domain: Literal["both", "source", "target"] = "both",
        subclasses_per_class: int | None = None,
        test_split: str = "val",
        image_size: int = 224,
        resize_size: int | None = None,
        resize_mode: ResizeMode = "shorter_side",
        train_limit: int | None = None,
        test_limit: int | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        decode_threads: int = 8,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            root=root, imagenet_root=imagenet_root, image_size=image_size, resize_size=resize_size,
            resize_mode=resize_mode, train_limit=train_limit, val_fraction=val_fraction, split_seed=split_seed,
            decode_threads=decode_threads, batch_size=batch_size, num_workers=num_workers,
        )  # fmt: skip
        if benchmark not in BREEDS_BENCHMARKS:
            raise ValueError(
                f"--data.init_args.benchmark must be one of {', '.join(BREEDS_BENCHMARKS)}, got {benchmark!r}"
            )
        if domain not in ("both", "source", "target"):
            raise ValueError(f"--data.init_args.domain must be both, source or target, got {domain!r}")
        spec = BREEDS_BENCHMARKS[benchmark]
        per_class = spec.subclasses_per_class if subclasses_per_class is None else subclasses_per_class
        if per_class < 2 or per_class % 2:
            raise ValueError(
                "--data.init_args.subclasses_per_class must be even and >= 2 (half source, half target), "
                f"got {per_class}"
            )
        check_limit("test_limit", test_limit)
        self.benchmark = benchmark
        self.spec = BreedsSpec(spec.level, spec.ancestor, per_class)
        self.info_dir = Path(info_dir if info_dir is not None else Path(root) / "breeds")
        self.domain = domain
        self.test_split = test_split
        self.test_limit = test_limit
        self._hierarchy: BreedsHierarchy | None = None
        self._subclasses: BreedsSubclasses | None = None

    # Metadata ------------------------------------------------------------------------------------

    @property
    def hierarchy(self) -> BreedsHierarchy:
        """The hierarchy read from ``info_dir`` on first use."""
        if self._hierarchy is None:
            self._hierarchy = BreedsHierarchy(self.info_dir)
        return self._hierarchy

    @property
    def breeds(self) -> BreedsSubclasses:
        """The benchmark's superclasses with their source and target subclasses."""
        if self._subclasses is None:
            self._subclasses = make_breeds(self.hierarchy, self.spec)
        return self._subclasses

    @property
    def num_classes(self) -> int:
        return len(self.breeds.superclasses)

    @property
    def num_subgroups(self) -> int:
        half = self.spec.subclasses_per_class // 2
        return 2 * half if self.domain == "both" else half

    @property
    def superclass_wnids(self) -> list[str]:
        """The superclasses' wnids, in label order."""
        return list(self.breeds.superclasses)

    @property
    def subclass_wnids(self) -> list[list[str]]:
        """Per class, the wnids of its subclasses in subgroup order."""
        breeds = self.breeds
        if self.domain == "source":
            return [list(s) for s in breeds.source]
        if self.domain == "target":
            return [list(t) for t in breeds.target]
        return [[*s, *t] for s, t in zip(breeds.source, breeds.target, strict=True)]

    @property
    def class_names(self) -> list[str]:
        return [_first_name(self.hierarchy.node_name(w)) for w in self.breeds.superclasses]

    @property
    def subclass_names(self) -> list[list[str]]:
        """Per class, the ImageNet names of its subclasses in subgroup order (``[c][g]``)."""
        names = self.hierarchy.leaf_names
        return [[_first_name(names[w]) for w in members] for members in self.subclass_wnids]

    @property
    def subgroup_names(self) -> list[str]:
        # The subclasses differ per class (``subclass_names``); across classes a subgroup is a position.
        half = self.spec.subclasses_per_class // 2
        domains = ("source", "target") if self.domain == "both" else (self.domain,)
        return [f"{d}{i}" for d in domains for i in range(half)]

    # Loading -------------------------------------------------------------------------------------

    def load_real(self) -> RealSplits:
        train = self._read_split("train", self.train_limit)
        test = self._read_split(self.test_split, self.test_limit)
        cells = train.labels * self.num_subgroups + train.subgroups
        generator = torch.Generator().manual_seed(self.split_seed)
        val_idx, train_idx = validation_holdout(cells, self.val_fraction, self.train_limit, generator)
        return RealSplits(train=train.subset(train_idx), val=train.subset(val_idx), test=test)

    def _read_split(self, split: str, limit: int | None) -> ImageSet:
        folder = self.imagenet_root / split
        if not folder.is_dir():
            raise DatasetNotFoundError(
                f"ImageNet {split} folder not found: {shown_path(folder)} does not exist; it holds one folder "
                f"of images per wnid ({split}/<wnid>/*.JPEG). {GET_IMAGENET}"
            )
        paths, labels, subgroups = [], [], []
        for label, members in enumerate(self.subclass_wnids):
            for subgroup, wnid in enumerate(members):
                images = self._images_of(folder, wnid, label)
                paths.extend(images[:limit])
                labels.extend([label] * len(images[:limit]))
                subgroups.extend([subgroup] * len(images[:limit]))
        return ImageSet(
            self._decode(paths),
            torch.as_tensor(labels, dtype=torch.long),
            torch.as_tensor(subgroups, dtype=torch.long),
        )

    def _images_of(self, folder: Path, wnid: str, label: int) -> list[Path]:
        sub = folder / wnid
        images = (
            sorted(p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if sub.is_dir()
            else []
        )
        if not images:
            name = _first_name(self.hierarchy.leaf_names.get(wnid, wnid))
            raise DatasetNotFoundError(
                f"no ImageNet {folder.name} images of the BREEDS subclass {wnid} ({name}, superclass "
                f"{self.class_names[label]}) in {shown_path(sub)}: expected {sub}/*.JPEG. {GET_IMAGENET}"
            )
        return images

    def _decode(self, paths: Sequence[Path]) -> Tensor:
        size = self.image_size
        images = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
        load_in_threads(paths, lambda path: (self.crop.read(path),), (images,), self.decode_threads)
        return images


def _first_name(name: str) -> str:
    """The first of a WordNet name's comma-separated synonyms."""
    return name.split(",")[0].strip()

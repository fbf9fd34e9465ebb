"""A tiny BREEDS tree written in the release's file formats, with tiny ImageNet JPEG folders (plain helpers).

The hierarchy is a subset of the release's ``imagenet_class_hierarchy/modified`` files, real wnids and
names included, so that the living17 rule (level 5 below ``n00004258``, living thing) finds two
superclasses of two subclasses each:

    entity n00001740
    ├── living thing n00004258
    │   └── animal n00015388
    │       ├── amphibian n01627424 ── dummy8 ── salamander n01629276 ── {common newt, eft}
    │       └── reptile n01661091
    │           ├── chelonian n01662622 ── turtle n01662784 ── {loggerhead, box turtle}
    │           └── saurian n01674216 ── lizard n01674464 ── {whiptail}     (one subclass: dropped)
    └── non-living thing n00021939 ── apparel n03051540 ── accessory n02671780 ── dummy52 ── bag n02773037
                                                                               └── {backpack}

At level 3 (entity13's rule) the superclasses are amphibian (2 subclasses) and reptile (3); the
non-living branch (1 subclass) is too small for two subclasses per superclass.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from helpers.image_trees import ImageNetFolders

# (ImageNet index, wnid, name) as in dataset_class_info.json.
LEAVES = [
    (26, "n01630670", "common newt, Triturus vulgaris"),
    (27, "n01631663", "eft"),
    (33, "n01664065", "loggerhead, loggerhead turtle, Caretta caretta"),
    (37, "n01669191", "box turtle, box tortoise"),
    (41, "n01685808", "whiptail, whiptail lizard"),
    (414, "n02769748", "backpack, back pack, knapsack, packsack, rucksack, haversack"),
]
EDGES = [
    ("n00001740", "n00021939"),
    ("n00021939", "n03051540"),
    ("n03051540", "n02671780"),
    ("n02671780", "dummy52"),
    ("dummy52", "n02773037"),
    ("n02773037", "n02769748"),
    ("n00001740", "n00004258"),
    ("n00004258", "n00015388"),
    ("n00015388", "n01627424"),
    ("n01627424", "dummy8"),
    ("dummy8", "n01629276"),
    ("n01629276", "n01630670"),
    ("n01629276", "n01631663"),
    ("n00015388", "n01661091"),
    ("n01661091", "n01662622"),
    ("n01662622", "n01662784"),
    ("n01662784", "n01664065"),
    ("n01662784", "n01669191"),
    ("n01661091", "n01674216"),
    ("n01674216", "n01674464"),
    ("n01674464", "n01685808"),
]
NODE_NAMES = {
    "n00001740": "entity",
    "n00021939": "non-living thing",
    "n03051540": "apparel, toiletries",
    "n02671780": "accessory, accoutrement, accouterment",
    "dummy52": "bag",
    "n02773037": "bag",
    "n00004258": "living thing, animate thing",
    "n00015388": "animal, animate being, beast, brute, creature, fauna",
    "n01627424": "amphibian",
    "dummy8": "dummy8",
    "n01629276": "salamander",
    "n01661091": "reptile, reptilian",
    "n01662622": "chelonian, chelonian reptile",
    "n01662784": "turtle",
    "n01674216": "saurian",
    "n01674464": "lizard",
    **{wnid: name for _, wnid, name in LEAVES},
}
HEIGHT, WIDTH = 20, 26  # not square: the resize keeps the aspect ratio


def colour_of(wnid: str) -> tuple[int, int, int]:
    """The colour of every image of an ImageNet class: which subclass an image came from."""
    k = [w for _, w, _ in LEAVES].index(wnid)
    return (40 * k, 250 - 40 * k, 60 + 30 * k)


def write_breeds_tree(root: Path, train_per_subclass: int = 6, val_per_subclass: int = 2) -> dict[str, Path]:
    """Write ``root/breeds`` (the three hierarchy files) and ``root/imagenet/{train,val}/<wnid>/*.JPEG``.

    The hierarchy files have the release's exact formats: ``dataset_class_info.json`` one JSON list on
    one line, ``class_hierarchy.txt`` "parent child" lines, ``node_names.txt`` "wnid<TAB>name" lines.
    Every image of class ``w`` has the colour ``colour_of(w)``; file names follow ImageNet's.
    """
    info, imagenet = root / "breeds", root / "imagenet"
    info.mkdir(parents=True)
    (info / "dataset_class_info.json").write_text(json.dumps([list(leaf) for leaf in LEAVES]))
    (info / "class_hierarchy.txt").write_text("".join(f"{p} {c}\n" for p, c in EDGES))
    (info / "node_names.txt").write_text("".join(f"{w}\t{n}\n" for w, n in NODE_NAMES.items()))
    folders = ImageNetFolders(imagenet)
    for _, wnid, _ in LEAVES:
        colour = torch.tensor(colour_of(wnid), dtype=torch.uint8)[:, None, None]
        image = colour.expand(3, HEIGHT, WIDTH).contiguous()
        for split, count in (("train", train_per_subclass), ("val", val_per_subclass)):
            folders.write(split, wnid, image, count)
    return {"root": root, "info": info, "imagenet": imagenet}

"""BreedsDataModule on a tiny tree in the BREEDS release's file formats (hierarchy files, ImageNet JPEG folders).

The expected superclasses and subclass draws below are what ``robustness.tools.breeds_helpers``
(``get_superclasses(split="rand")``, ``numpy.random.RandomState(2)``) returns on the fixture's files.
"""

from __future__ import annotations

import csv
import importlib
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from breeds_fixtures import colour_of, write_breeds_tree
from helpers.image_trees import tree_fixtures

from selfloop.cli.app import SelfLoopCLI, main
from selfloop.data.breeds import BREEDS_BENCHMARKS, BreedsDataModule, BreedsSpec
from selfloop.data.errors import CorruptDatasetError, DatasetNotFoundError

ROOT = Path(__file__).resolve().parents[2]
SALAMANDER, TURTLE = "n01629276", "n01662784"
NEWT, EFT, LOGGERHEAD, BOX_TURTLE, WHIPTAIL = "n01630670", "n01631663", "n01664065", "n01669191", "n01685808"


def make(tree: dict[str, Path], **kwargs) -> BreedsDataModule:
    # The fixture's superclasses are small: two subclasses each.
    small = {
        "subclasses_per_class": 2,
        "image_size": 16,
        "val_fraction": 1 / 3,
        "decode_threads": 2,
        "batch_size": 8,
    }
    return BreedsDataModule(
        imagenet_root=str(tree["imagenet"]), info_dir=str(tree["info"]), **{**small, **kwargs}
    )


tree, own_tree = tree_fixtures(write_breeds_tree, train_per_subclass=3, val_per_subclass=1)


def test_living17_rule_gives_superclasses_with_their_subclasses_as_subgroups(tree):
    dm = make(tree)
    assert (dm.num_classes, dm.num_subgroups, dm.channels, dm.image_size) == (2, 2, 3, 16)
    assert dm.superclass_wnids == [SALAMANDER, TURTLE]  # lizard has one subclass: dropped
    # Source subclass first, then target, in the order BREEDS draws them (not sorted).
    assert dm.subclass_wnids == [[EFT, NEWT], [LOGGERHEAD, BOX_TURTLE]]
    assert dm.class_names == ["salamander", "turtle"]
    assert dm.subclass_names == [["eft", "common newt"], ["loggerhead", "box turtle"]]
    assert dm.subgroup_names == ["source0", "target0"]


def test_images_carry_their_superclass_and_subclass(tree):
    dm = make(tree)
    real = dm.real
    # 6 train images per subclass, a third held out; 2 ImageNet val images per subclass for test.
    assert (len(real.train), len(real.val), len(real.test)) == (16, 8, 8)
    for split, per_cell in ((real.train, 4), (real.val, 2), (real.test, 2)):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (3, 16, 16)
        cells = split.labels * 2 + split.subgroups
        assert torch.bincount(cells, minlength=4).tolist() == [per_cell] * 4
        # Every image shows its subclass's colour, up to JPEG's rounding.
        expected = torch.tensor(
            [colour_of(dm.subclass_wnids[c][g]) for c, g in zip(split.labels, split.subgroups, strict=True)]
        )
        assert (split.images.float().mean((2, 3)) - expected).abs().max() < 4


def test_entity13_rule_cuts_the_tree_at_level_3_and_draws_two_of_three(tree):
    dm = make(tree, benchmark="entity13")
    assert dm.superclass_wnids == ["n01627424", "n01661091"]  # the non-living branch is too small
    assert dm.class_names == ["amphibian", "reptile"]
    assert dm.subclass_wnids == [[EFT, NEWT], [WHIPTAIL, LOGGERHEAD]]


@pytest.mark.parametrize(
    ("domain", "wnids", "names"),
    [("source", [[EFT], [LOGGERHEAD]], ["source0"]), ("target", [[NEWT], [BOX_TURTLE]], ["target0"])],
)
def test_one_domain_keeps_half_of_the_subclasses(tree, domain, wnids, names):
    dm = make(tree, domain=domain)
    assert dm.num_subgroups == 1 and dm.subclass_wnids == wnids and dm.subgroup_names == names
    test = dm.real.test
    assert len(test) == 4 and test.subgroups.eq(0).all()


def test_benchmarks_are_the_breeds_helpers_rules():
    # make_living17 / make_entity13 / make_entity30 / make_nonliving26 of robustness.tools.breeds_helpers.
    assert {
        "living17": BreedsSpec(5, "n00004258", 4),
        "entity13": BreedsSpec(3, None, 20),
        "entity30": BreedsSpec(4, None, 8),
        "nonliving26": BreedsSpec(5, "n00021939", 4),
    } == BREEDS_BENCHMARKS
    assert BreedsDataModule(benchmark="entity30").num_subgroups == 8
    assert BreedsDataModule(benchmark="entity13", domain="source").num_subgroups == 10


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"subclasses_per_class": None},
            "no node at level 5 .* below n00004258 has .*subclasses_per_class 4",
        ),
        ({"benchmark": "nonliving26"}, "below n00021939 has .*subclasses_per_class 2"),
    ],
)
def test_a_tree_too_small_for_the_benchmark_names_the_flag(tree, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _ = make(tree, **kwargs).num_classes


def test_limits_per_subclass(tree):
    real = make(tree, train_limit=3, test_limit=1).real
    assert (len(real.train), len(real.val), len(real.test)) == (8, 4, 4)


def test_hierarchy_is_read_lazily(tmp_path):
    dm = BreedsDataModule(root=str(tmp_path))  # nothing on disk: the constructor reads nothing
    with pytest.raises(DatasetNotFoundError, match="dataset_class_info.json"):
        _ = dm.num_classes


@pytest.mark.parametrize(
    ("remove", "hint"),
    [
        ("breeds/dataset_class_info.json", "JSON list of \\[index, wnid, name\\]"),
        ("breeds/class_hierarchy.txt", "one '<parent wnid> <child wnid>' per line"),
        ("breeds/node_names.txt", "one '<wnid><TAB><name>' per line"),
        ("breeds", "BREEDS-Benchmarks"),
        ("imagenet/train", "one folder of images per wnid"),
        ("imagenet/val", "sorted into one folder per wnid"),
        (f"imagenet/train/{LOGGERHEAD}", "subclass n01664065 \\(loggerhead, superclass turtle\\)"),
        (f"imagenet/val/{EFT}", "subclass n01631663 \\(eft, superclass salamander\\)"),
    ],
)
def test_missing_pieces_raise_one_line_naming_the_path(own_tree, remove, hint):
    path = own_tree["root"] / remove
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(DatasetNotFoundError, match=hint) as err:
        _ = make(own_tree).real
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, FileNotFoundError)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("breeds/dataset_class_info.json", "{not json", "JSON list of \\[index, wnid, name\\]"),
        ("breeds/node_names.txt", "n00001740 entity\n", "line 1 is 'n00001740 entity', expected <wnid><TAB>"),
        ("breeds/class_hierarchy.txt", "n00001740\n", "line 1 is 'n00001740', expected <parent wnid>"),
        (f"imagenet/val/{BOX_TURTLE}/ILSVRC2012_val_00000004.JPEG", None, "cannot decode"),
    ],
)
def test_damaged_files_name_the_file(own_tree, name, content, match):
    path = own_tree["root"] / name
    if content is None:  # a JPEG cut short, as by an interrupted copy
        path.write_bytes(path.read_bytes()[:40])
    else:
        path.write_text(content)
    with pytest.raises(CorruptDatasetError, match=match) as err:
        _ = make(own_tree).real
    assert str(path) in str(err.value)


def test_bad_arguments_name_the_flag():
    with pytest.raises(ValueError, match="subclasses_per_class must be even"):
        BreedsDataModule(subclasses_per_class=3)
    with pytest.raises(ValueError, match="resize_size"):
        BreedsDataModule(image_size=64, resize_size=32)
    with pytest.raises(ValueError, match="val_fraction"):
        BreedsDataModule(val_fraction=1.0)
    with pytest.raises(ValueError, match="test_limit"):
        BreedsDataModule(test_limit=0)
    with pytest.raises(ValueError, match="benchmark"):
        BreedsDataModule(benchmark="living18")  # type: ignore[arg-type]


def test_shipped_config_has_the_paper_settings(capsys):
    with pytest.raises(SystemExit) as info:
        SelfLoopCLI(args=["fit", "--config", str(ROOT / "configs/breeds_living17.yaml"), "--print_config"])
    assert info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["loop"]["archs"] == ["alexnet", "mobilenet_v3", "vgg19", "resnet50", "deit_s"]
    assert config["model"]["pretrained"] is True and config["model"]["arch"] in config["loop"]["archs"]
    assert config["generator"]["class_path"] == "selfloop.generators.stable_diffusion.StableDiffusionLoRA"
    assert config["filter"]["drop_fraction"] == 0.6
    module, _, name = config["data"]["class_path"].rpartition(".")
    dm = getattr(importlib.import_module(module), name)(**config["data"]["init_args"])
    assert isinstance(dm, BreedsDataModule)
    assert dm.spec == BREEDS_BENCHMARKS["living17"] and dm.domain == "both" and dm.num_subgroups == 4


@pytest.mark.slow
def test_two_generations_of_the_cli_on_the_tiny_tree(tmp_path, monkeypatch):
    from conftest import TINY_RUN

    monkeypatch.chdir(ROOT)
    tree = write_breeds_tree(tmp_path / "data", train_per_subclass=6, val_per_subclass=2)
    config = tmp_path / "breeds_tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "trainer": {"accelerator": "cpu", "devices": 1},
                "model": {"arch": "lenet", "lr": 0.001},
                "data": {
                    "class_path": "selfloop.data.breeds.BreedsDataModule",
                    "init_args": {
                        "root": str(tree["root"]),
                        "subclasses_per_class": 2,
                        "val_fraction": 0.25,
                        "batch_size": 16,
                        "decode_threads": 2,
                    },
                },
                "generator": {
                    "class_path": "selfloop.generators.dcgan.ConditionalDCGAN",
                    "init_args": {"latent_dim": 16, "width": 8},
                },
                "loop": {"name": "breeds_tiny", "queue_capacity": 2, "early_stopping_patience": 1},
            }
        )
    )
    run = tmp_path / "run"
    SelfLoopCLI(
        args=["fit", "--config", str(config), *TINY_RUN, "--loop.samples_per_generation", "16",
              "--loop.generations", "2", "--loop.run_dir", str(run)]
    )  # fmt: skip
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    lenet = {(int(r["generation"]), r["metric"]): float(r["value"]) for r in rows if r["arch"] == "lenet"}
    for n in range(3):
        for metric in ("acc", "worst_group_acc", "subgroup_acc_0", "subgroup_acc_1", "ranked_subgroup_acc_1"):
            assert (n, metric) in lenet
        assert 0 <= lenet[(n, "acc")] <= 1
    generator = {(int(r["generation"]), r["metric"]) for r in rows if r["arch"] == "generator"}
    # No exact oracle reads subclasses: u_t comes from the (class, subclass) classifier of generation 0.
    assert {(1, "u_t"), (2, "u_t")} <= generator and {n for n, _ in generator} == {1, 2}
    assert any(r["arch"] == "subgroup_oracle" and r["metric"] == "subgroup_acc" for r in rows)


def test_shipped_config_reports_a_missing_hierarchy_file_in_one_line(own_tree, capsys):
    (own_tree["info"] / "class_hierarchy.txt").unlink()
    data = own_tree["root"]
    with pytest.raises(SystemExit) as info:
        main(
            ["fit", "--config", str(ROOT / "configs/breeds_living17.yaml"), "--data.init_args.info_dir",
             str(data / "breeds"), "--data.init_args.imagenet_root", str(data / "imagenet"),
             "--loop.run_dir", str(data / "run")]
        )  # fmt: skip
    assert info.value.code == 2
    message = capsys.readouterr().err.splitlines()[0]
    assert message.startswith("selfloop: error: BREEDS hierarchy file not found: ")
    assert str(data / "breeds" / "class_hierarchy.txt") in message and "BREEDS-Benchmarks" in message
    assert not (data / "run").exists()

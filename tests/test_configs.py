"""Every shipped config parses with the real CLI parser; the paper configs carry the paper's settings."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from selfloop.cli.app import SelfLoopCLI
from selfloop.data.cifar import CIFAR20DataModule
from selfloop.data.mnist import ColoredMNISTDataModule
from selfloop.run.compat import flatten

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PAPER_PANEL = ["lenet", "alexnet", "vgg19", "resnet50", "mobilenet_v3"]


def _parsed(name: str, capsys, *extra: str) -> dict:
    """The full config as the CLI parses it (``--print_config`` exits 0 before instantiating anything)."""
    with pytest.raises(SystemExit) as info:
        SelfLoopCLI(args=["fit", "--config", str(CONFIGS / name), *extra, "--print_config"])
    assert info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


def _build_data(config: dict):
    """Instantiate the data module exactly as configured (constructors validate; nothing is read)."""
    module, _, name = config["data"]["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**config["data"]["init_args"])


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_config_parses_and_keeps_every_value_it_sets(capsys, path):
    # configs/known_answers/ included: the known-answer scenarios (the collapse ones run only in the README).
    config = _parsed(str(path.relative_to(CONFIGS)), capsys)
    written = flatten(yaml.safe_load(path.read_text()))
    parsed = flatten(config)
    # Every setting the file writes reaches the run unchanged (a misspelt or dropped key fails here).
    assert {k: parsed.get(k, "<missing>") for k in written} == written
    assert config["data"]["class_path"].startswith("selfloop.data.")
    assert config["generator"]["class_path"].startswith("selfloop.generators.")


@pytest.mark.parametrize(
    ("name", "data_class", "drop", "panel", "pretrained"),
    [
        ("colored_mnist_unbiased.yaml", ColoredMNISTDataModule, 0.1, PAPER_PANEL, False),
        ("colored_mnist_biased.yaml", ColoredMNISTDataModule, 0.1, PAPER_PANEL, False),
        ("cifar20.yaml", CIFAR20DataModule, 0.3, PAPER_PANEL, False),
        # lenet has no ImageNet weights, so the pretrained panel leaves it out.
        ("cifar20_pretrained.yaml", CIFAR20DataModule, 0.3, PAPER_PANEL[1:], True),
    ],
)
def test_config_has_the_paper_settings(capsys, name, data_class, drop, panel, pretrained):
    config = _parsed(name, capsys)
    assert config["loop"]["archs"] == panel
    assert config["model"]["pretrained"] is pretrained and config["model"]["arch"] in panel
    assert config["filter"]["drop_fraction"] == drop
    assert (config["loop"]["generations"], config["loop"]["queue_capacity"]) == (10, 3)
    assert config["model"]["lr"] == 0.001 and config["trainer"]["max_epochs"] == 50
    assert config["generator"]["class_path"] == "selfloop.generators.dcgan.ConditionalDCGAN"
    assert config["data"]["init_args"]["root"] == "data" and config["data"]["init_args"]["download"] is False
    assert isinstance(_build_data(config), data_class)


def test_biased_config_uses_an_80_percent_majority_colour(capsys):
    dm = _build_data(_parsed("colored_mnist_biased.yaml", capsys))
    assert dm.bias == "biased"
    assert dm.color_probs[0].tolist() == pytest.approx([0.8, 0.1, 0.1])
    assert dm.color_probs[4].tolist() == pytest.approx([0.1, 0.8, 0.1])


def test_seed_and_download_are_selectable_on_the_command_line(capsys):
    config = _parsed("cifar20.yaml", capsys, "--loop.seed", "2", "--data.download", "true")
    assert config["loop"]["seed"] == 2 and config["data"]["init_args"]["download"] is True

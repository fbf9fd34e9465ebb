"""Shared fixtures: tiny, fast CPU settings for end-to-end runs."""

from __future__ import annotations

import pytest
import torch

# Two cores here and in CI: more threads only contend.
torch.set_num_threads(2)

TINY_RUN = [
    "--data.init_args.image_size", "16",
    "--trainer.max_epochs", "1",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.logger", "false",
    "--loop.generator_epochs", "1",
    "--loop.samples_per_generation", "40",
    "--loop.archs", "[lenet]",
    "--filter.drop_fraction", "0.2",
]  # fmt: skip


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
        run_dir = run_dir or tmp_path / "run"
        return ["fit", "--config", "configs/digits.yaml", *TINY_RUN, "--loop.run_dir", str(run_dir), *extra]

    return make

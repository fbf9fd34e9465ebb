"""Kill real runs (SIGKILL, SIGTERM) at several points; the rerun must end with identical metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.cli_run import run_cli

from selfloop.cli.app import SelfLoopCLI

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
PANEL = ("--loop.generations", "1", "--loop.archs", "[lenet, alexnet]", "--loop.generator_epochs", "2")


def _killed(args: list[str], kill_at: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """The run of ``args`` in a process of its own, SIGKILLed at ``kill_at`` (tests/helpers/faults.py)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(ROOT / "tests" / "helpers" / "faults.py"), "--kill-at", kill_at, *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> str:
    """metrics.csv of an uninterrupted run."""
    run = tmp_path_factory.mktemp("reference") / "run"
    from conftest import TINY_RUN

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        SelfLoopCLI(
            args=["fit", "--config", "configs/digits.yaml", *TINY_RUN, *PANEL, "--loop.run_dir", str(run)]
        )
    finally:
        os.chdir(cwd)
    return (run / "metrics.csv").read_text()


# Two real kills, each inside a fit. The points between phases are guarded in process, in seconds:
# between sampling and filtering by tests/callbacks/test_generation_controller.py::
# test_a_stop_between_sampling_and_filtering_leaves_a_resumable_step and tests/test_loop.py::
# test_resume_after_a_generator_fit_samples_from_its_saved_weights; between two archs by tests/test_loop.py::
# test_resume_runs_only_the_unfinished_phases_and_ends_with_the_same_metrics (and by the real kill after
# g1/classifier/lenet in tests/test_panel_workers.py).
@pytest.mark.parametrize(
    "kill_at", ["generator-epoch", "evaluation"], ids=["during-generator-fit", "during-evaluation"]
)
def test_sigkill_then_rerun_gives_identical_metrics(tiny_run_args, tmp_path, reference, kill_at):
    args = tiny_run_args(tmp_path / "run", *PANEL)
    killed = _killed(args, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "g1/classifier/alexnet" not in manifest["completed"]

    resumed = run_cli(args)  # the kill needs a process of its own; the resume runs here
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr + resumed.stdout
    assert (tmp_path / "run" / "metrics.csv").read_text() == reference


def test_sigterm_stops_resumably(tiny_run_args, tmp_path, reference):
    args = tiny_run_args(tmp_path / "run", *PANEL)
    manifest = tmp_path / "run" / "manifest.json"
    proc = subprocess.Popen(
        [sys.executable, "main.py", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline:
        if manifest.is_file() and "g0/classifier/lenet" in manifest.read_text():
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 143, stderr[-2000:]
    assert "Rerun the same command" in stderr
    resumed = run_cli(args)  # the kill needs a process of its own; the resume runs here
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.csv").read_text() == reference


# The data axis of the model-collapse literature: which generated samples and how much real data every
# training set holds. Each run is killed right after generation 2's generator is saved, so its sampling
# and filtering run on resume outside any fit.
POLICIES = {
    "accumulate-half-real": (("--loop.data_policy", "accumulate", "--loop.real_fraction", "0.5"), [1, 2]),
    "replace-no-real": (("--loop.data_policy", "replace", "--loop.real_fraction", "0"), [2]),
}


@pytest.mark.parametrize("policy", list(POLICIES))
def test_every_data_policy_resumes_exactly(tiny_run_args, tmp_path, policy, monkeypatch):
    flags, queued = POLICIES[policy]
    extra = ("--loop.generations", "2", *flags)
    sizes = _record_train_set_sizes(monkeypatch)
    monkeypatch.chdir(ROOT)
    SelfLoopCLI(args=tiny_run_args(tmp_path / "reference", *extra))
    reference = (tmp_path / "reference" / "metrics.csv").read_text()
    reference_sizes = list(sizes)  # the resume below runs in this process too, and records its own

    args = tiny_run_args(tmp_path / "run", *extra)
    killed = _killed(args, "after:g2/generator")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "g2/filter" not in json.loads((tmp_path / "run" / "manifest.json").read_text())["completed"]
    resumed = run_cli(args)  # the kill needs a process of its own; the resume runs here
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.csv").read_text() == reference
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert [s["generation"] for s in manifest["queue"]] == queued
    assert sorted(p.name for p in (tmp_path / "run" / "queue").glob("*.pt")) == [
        f"gen_{g:03d}.pt" for g in queued
    ]

    # Train set sizes, phase after phase: (real share + queue), 40 kept samples per generation.
    from selfloop.data.digits import ColoredDigitsDataModule

    real_labels = ColoredDigitsDataModule(image_size=16).real.train.labels
    half = sum(round(int((real_labels == c).sum()) * 0.5) for c in real_labels.unique())
    full = len(real_labels)
    expected = {
        # g0 classifier, the judge, g1 generator, g1 classifier, g2 generator, g2 classifier
        "accumulate-half-real": [full, full, full, half + 40, half + 40, half + 80],
        "replace-no-real": [full, full, full, 40, 40, 40],
    }[policy]
    assert reference_sizes == expected


def _record_train_set_sizes(monkeypatch) -> list[int]:
    from selfloop.data.base import SelfLoopDataModule

    sizes: list[int] = []
    setup = SelfLoopDataModule.setup

    def setup_and_record(self, stage):
        setup(self, stage)
        if stage == "fit":
            sizes.append(len(self.train_set))

    monkeypatch.setattr(SelfLoopDataModule, "setup", setup_and_record)
    return sizes

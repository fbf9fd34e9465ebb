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

from selfloop.cli import SelfLoopCLI

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
PANEL = ("--loop.generations", "1", "--loop.archs", "[lenet, alexnet]", "--loop.generator_epochs", "2")


def _run(args: list[str], kill_at: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "main.py", *args]
    if kill_at:
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


@pytest.mark.parametrize(
    "kill_at",
    ["generator-epoch", "after-sampling", "after:g0/classifier/lenet", "evaluation"],
    ids=["during-generator-fit", "between-sampling-and-filtering", "between-two-archs", "during-evaluation"],
)
def test_sigkill_then_rerun_gives_identical_metrics(tiny_run_args, tmp_path, reference, kill_at):
    args = tiny_run_args(tmp_path / "run", *PANEL)
    killed = _run(args, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "g1/classifier/alexnet" not in manifest["completed"]

    resumed = _run(args)
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
    resumed = _run(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.csv").read_text() == reference

"""``--loop.panel_workers``: a generation's classifier fits in worker processes, with a serial run's results.

The serial and the concurrent run come from ``scripts/bench_panel.py`` (kept with ``--keep``), so the
benchmark is tested for running and its two runs are the ones compared.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_RUN
from helpers.cli_run import run_cli
from helpers.rounding import agrees_within_rounding
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_benchmarks_run import number, values

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
PANEL = ("--loop.generations", "1", "--loop.archs", "[lenet, alexnet]", "--loop.generator_epochs", "2")
CLASSIFIERS = ("gen_000/lenet", "gen_000/alexnet", "gen_001/lenet", "gen_001/alexnet")


def _classifier_hashes(run: Path) -> dict[str, str]:
    files = json.loads((run / "manifest.json").read_text())["files"]
    return {name: files[f"classifiers/{name}.pt"] for name in CLASSIFIERS}


def _val_losses(folder: Path) -> list[float]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return [scalar.value for scalar in events.Scalars("val_loss")]


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[dict[str, str], Path]:
    """The benchmark's output and the folder holding its serial and 2-worker runs."""
    kept = tmp_path_factory.mktemp("bench") / "runs"
    result = subprocess.run(
        [sys.executable, "scripts/bench_panel.py", "--workers", "2", "--keep", str(kept), "--", *TINY_RUN, *PANEL],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return values(result.stdout), kept


def test_the_panel_benchmark_prints_both_wall_times_their_ratio_and_identical_metrics(bench):
    found, _ = bench
    serial, concurrent = number(found["serial_s"]), number(found["concurrent_s"])
    assert serial > 0 and concurrent > 0
    # Printed with 2 and 3 decimals: the ratio is their quotient up to that rounding.
    assert agrees_within_rounding(
        found["ratio"], lambda s, c: s / c, found["serial_s"], found["concurrent_s"]
    )
    assert found["identical"] == "true" and found["workers"] == "2"


def test_two_workers_give_the_serial_runs_metrics_and_weights(bench):
    _, kept = bench
    serial, run = kept / "serial", kept / "concurrent"
    assert (run / "metrics.csv").read_text() == (serial / "metrics.csv").read_text()
    assert _classifier_hashes(run) == _classifier_hashes(serial)  # the same bytes, not only close values
    # Each worker's fit wrote its own TensorBoard curves, the serial fit's values.
    for name in CLASSIFIERS:
        assert _val_losses(run / "phases" / name) == _val_losses(serial / "phases" / name), name


def test_a_killed_concurrent_run_resumes_to_the_serial_runs_metrics(tiny_run_args, tmp_path, bench):
    _, kept = bench
    args = tiny_run_args(tmp_path / "run", *PANEL, "--loop.panel_workers", "2")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    faults = [sys.executable, str(ROOT / "tests" / "helpers" / "faults.py")]
    killed = subprocess.run(
        [*faults, "--kill-at", "after:g1/classifier/lenet", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    completed = json.loads((tmp_path / "run" / "manifest.json").read_text())["completed"]
    assert "g1/classifier/lenet" in completed and "g1/classifier/alexnet" not in completed

    resumed = run_cli(args)  # the kill needs a process of its own; the resume runs here
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.csv").read_text() == (kept / "serial" / "metrics.csv").read_text()


def test_panel_workers_with_a_multi_process_trainer_is_refused_before_any_work(tiny_run_args, tmp_path):
    run = tmp_path / "run"
    args = tiny_run_args(run, *PANEL, "--loop.panel_workers", "2")
    args += ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    result = run_cli(args)
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1, result.stderr[-2000:]
    assert "--loop.panel_workers 2" in error_lines[0] and "2 processes per fit (DDP)" in error_lines[0]
    assert not run.exists()

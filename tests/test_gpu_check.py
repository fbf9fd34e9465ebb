"""scripts/gpu_check.sh --dry runs every step of the GPU check on the CPU and prints the full table."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"
STEPS = ["cuda_tests", "overhead", "classifiers", "device_batches", "generation", "sd"]
UNITS = {"cuda_tests": {"passed"}, "overhead": {"x", "ms"}, "classifiers": {"img/s"},
         "device_batches": {"x", "ms"}, "generation": {"s", "MiB"}, "sd": {"img/s", "MiB"}}  # fmt: skip


def _table(output: str) -> list[list[str]]:
    """The rows of the markdown table ``| step | setting | value | unit |`` (header and rule left out)."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    assert lines[:2] == ["| step | setting | value | unit |", "|---|---|---|---|"], output[-3000:]
    rows = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]
    assert all(len(row) == 4 for row in rows), rows
    return rows


@pytest.mark.slow
def test_dry_run_prints_a_number_for_every_step(gpu_dry_run):
    out, logs = gpu_dry_run
    assert out.startswith("GPU check, DRY RUN: every step on the CPU at tiny sizes")
    for word in ("FAILED", "TIMEOUT", "SKIPPED"):
        assert word not in out
    rows = _table(out)
    # The steps in their order, each with at least one row.
    assert list(dict.fromkeys(row[0] for row in rows)) == STEPS
    for step, setting, value, unit in rows:
        assert setting, step
        assert math.isfinite(float(value)) and float(value) >= 0, (step, setting, value)
        assert unit.split()[0] in UNITS[step], (step, unit)
    by_step = {s: [r for r in rows if r[0] == s] for s in STEPS}
    # No GPU here: the CUDA tests are collected and skipped, not failed.
    assert by_step["cuda_tests"][0][3].startswith("passed (") and "skipped" in by_step["cuda_tests"][0][3]
    # Eager and compiled rows of the classifier panel; both settings (from scratch, ImageNet shapes).
    settings = [r[1] for r in by_step["classifiers"]]
    assert any("eager" in s for s in settings) and any("compiled" in s for s in settings)
    assert any("(scratch)" in s for s in settings) and any("(imagenet)" in s for s in settings)
    assert any("compiled" in r[1] for r in by_step["device_batches"])
    # Generations 0, 1 and 2 of the Colored MNIST run, on synthetic digits (no MNIST in a dry run).
    generations = [r for r in by_step["generation"] if r[3] == "s"]
    assert len(generations) == 3 and all("synthetic" in r[1] for r in generations)
    assert {"LoRA training", "sampling"} <= {
        w for r in by_step["sd"] for w in ("LoRA training", "sampling") if w in r[1]
    }
    # Where the time went, per step, and every step's log kept.
    assert "step seconds: cuda_tests " in out
    assert all((logs / f"{s}.log").is_file() for s in STEPS)


def test_bad_arguments_exit_2_before_doing_anything(tmp_path):
    bogus = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=60)
    assert bogus.returncode == 2 and "unknown argument --bogus" in bogus.stderr
    env = {**os.environ, "DRY": "2", "GPU_CHECK_DIR": str(tmp_path / "logs")}
    wrong = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "DRY must be 0 or 1" in wrong.stderr
    assert not (tmp_path / "logs").exists()

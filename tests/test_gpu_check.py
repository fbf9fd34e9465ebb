"""scripts/gpu_check.sh --dry runs every step of the GPU check on the CPU and prints the full table."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pytest
from helpers.rounding import agrees_within_rounding
from test_bench_device_batches import PATHS, check_pair
from test_benchmarks_run import check_generations, check_overhead, number, values

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
    # Generations 0 to 3 of the Colored MNIST run, on synthetic digits (no MNIST in a dry run).
    generations = [r for r in by_step["generation"] if r[3] == "s"]
    assert len(generations) == 4 and all("synthetic" in r[1] for r in generations)
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


# The benchmarks' figures, read from the dry run's step logs rather than by running each script again (the
# dry run is a session fixture; this file runs on one pytest-xdist worker, --dist loadfile).
def test_bench_overhead_prints_the_ratio_and_the_goal(gpu_dry_run):
    # The GPU check's dry run ran it: bench_overhead.py --device cpu --steps 10 --repeats 1 --warmup-steps 2.
    _, logs = gpu_dry_run
    found = values((logs / "overhead.log").read_text())
    check_overhead(found, steps=10, repeats=1)
    assert found["arch"].startswith("lenet  data: digits ") and found["arch"].endswith("batch_size: 64")


def test_bench_device_batches_prints_both_paths_and_their_ratio(gpu_dry_run):
    # The GPU check's dry run ran it: --device cpu --steps 10 --repeats 1 --warmup-steps 1 --image-size 16
    # --compile --compile-backend eager.
    _, logs = gpu_dry_run
    found = values((logs / "device_batches.log").read_text())
    assert found["device"] == "cpu (cpu)"
    assert found["setup"].startswith("arch lenet  data digits 1259x3x16x16 uint8  batch_size 64")
    assert found["steps"] == "10  skip: 1  repeats: 1"
    loader = {p: found[f"loader_{p}_us_per_batch"] for p in PATHS}
    assert all(number(v) > 0 for v in loader.values())
    assert agrees_within_rounding(
        found["loader_ratio"], lambda a, b: a / b, loader["dataloader"], loader["device_batches"]
    )
    check_pair(found, "", steps=10, skip=1, repeats=1)
    assert found["compile_backend"] == "eager"
    check_pair(found, "compiled_", steps=10, skip=1, repeats=1)
    assert agrees_within_rounding(
        found["compile_speedup"],
        lambda a, b: a / b,
        found["device_batches_steady_ms_per_step"],
        found["compiled_device_batches_steady_ms_per_step"],
    )


def test_bench_generations_prints_a_row_per_generation(gpu_dry_run):
    # The GPU check's dry run ran it: -n 3 -k 1 --epochs 1 --generator-epochs 1 --image-size 32, run in
    # <logs>/generation_run.
    _, logs = gpu_dry_run
    log = (logs / "generation.log").read_text()
    check_generations(log, generations=3, capacity=1, run_dir=logs / "generation_run")

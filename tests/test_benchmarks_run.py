"""scripts/bench_overhead.py and scripts/bench_generations.py run end to end at tiny sizes.

The benchmarks' timings are never asserted (tests do not time things): only that each script exits
0 and prints its figures in the documented form.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str, cwd: Path) -> str:
    """Run ``scripts/<name>`` with ``args`` from ``cwd``; return its stdout after checking exit 0."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def values(output: str) -> dict[str, str]:
    """The ``key: value`` lines of a benchmark's output."""
    return dict(re.findall(r"^(\w+): (.*)$", output, flags=re.MULTILINE))


def test_bench_overhead_prints_the_ratio_and_the_goal(tmp_path):
    out = run_script(
        "bench_overhead.py", "--steps", "20", "--repeats", "1", "--warmup-steps", "2", "--threads", "1",
        cwd=tmp_path,
    )  # fmt: skip
    found = values(out)
    assert found["steps"] == "20"
    assert float(found["ratio"]) > 0 and float(found["steady_ratio"]) > 0
    assert float(found["lightning_ms_per_step"]) > 0 and float(found["plain_ms_per_step"]) > 0
    assert found["goal_met"] in ("yes", "no")
    # Same model, seed, batches and dropout masks on both sides: the same weights after training.
    assert float(found["max_param_diff"]) < 1e-4


def test_bench_overhead_synthetic_data_in_full_batches(tmp_path):
    # 64 images in batches of 16: every epoch ends on a full batch, where Lightning leaves the
    # sampler unexhausted; the plain side must replay that order over 3 epochs.
    out = run_script(
        "bench_overhead.py", "--data", "synthetic", "--num-images", "64", "--image-size", "16",
        "--batch-size", "16", "--steps", "10", "--repeats", "2", "--warmup-steps", "1", "--threads", "1",
        cwd=tmp_path,
    )  # fmt: skip
    found = values(out)
    assert "synthetic 64x3x16x16" in found["arch"]
    assert len(found["lightning_runs_s"].split()) == 2 and len(found["plain_runs_s"].split()) == 2
    assert float(found["ratio"]) > 0
    assert float(found["max_param_diff"]) < 1e-4


def test_bench_generations_prints_a_row_per_generation(tmp_path):
    generations, capacity = 3, 1
    out = run_script(
        "bench_generations.py", "--generations", str(generations), "--queue-capacity", str(capacity),
        "--epochs", "1", "--generator-epochs", "1", "--image-size", "16", "--run-dir", str(tmp_path / "run"),
        cwd=tmp_path,
    )  # fmt: skip
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["generation", "wall_s"])
    names = lines[header].split()
    rows = []
    for line in lines[header + 1 :]:
        if not line.strip():
            break
        rows.append(dict(zip(names, line.split(), strict=True)))
    assert [int(r["generation"]) for r in rows] == list(range(generations + 1))
    # The queue fills at generation K and stays full: FIFO eviction keeps it at K generations.
    assert [int(r["queue_gens"]) for r in rows] == [min(n, capacity) for n in range(generations + 1)]
    assert all(float(r["wall_s"]) > 0 and float(r["peak_rss_mib"]) > 0 for r in rows)
    found = values(out)
    for key in ("time_check", "time_check_full_queue", "memory_check"):
        assert found[key].endswith((": yes", ": no")), found[key]
    assert (tmp_path / "run" / "manifest.json").is_file()


def test_bench_generations_needs_capacity_below_generations(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_generations.py"), "-n", "2", "-k", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--queue-capacity" in result.stderr

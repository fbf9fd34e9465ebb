"""scripts/bench_device_batches.py runs end to end at tiny sizes and its figures agree with each other.

As for the other benchmarks (tests/test_benchmarks_run.py), timings are never compared with a
threshold: the test checks that every documented figure is printed and finite, that each ratio is
the quotient of the figures it is made of, and that both data paths trained to the same weights.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.rounding import agrees_within_rounding
from test_benchmarks_run import number, values

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
PATHS = ("dataloader", "device_batches")


def _run(*args: str, cwd: Path) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_device_batches.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return values(result.stdout)


def check_pair(found: dict[str, str], prefix: str, steps: int, skip: int, repeats: int) -> None:
    # Every figure is recomputed from the printed ones it derives from, within what their printing rounded.
    runs = {path: found[f"{prefix}{path}_runs_s"].split() for path in PATHS}
    steady = {path: found[f"{prefix}{path}_steady_ms_per_step"] for path in PATHS}
    for path in PATHS:
        assert len(runs[path]) == repeats and all(number(t) > 0 for t in runs[path])
        assert agrees_within_rounding(
            found[f"{prefix}{path}_ms_per_step"], lambda r: 1e3 * statistics.median(r) / steps, runs[path]
        )
        assert number(steady[path]) > 0
    assert agrees_within_rounding(
        found[f"{prefix}ratio"],
        lambda a, b: statistics.median(a) / statistics.median(b),
        runs["dataloader"],
        runs["device_batches"],
    )
    assert agrees_within_rounding(
        found[f"{prefix}steady_ratio"], lambda a, b: a / b, steady["dataloader"], steady["device_batches"]
    )
    # Same batches, seed and dropout masks: the two paths train to the same weights, bit for bit.
    assert number(found[f"{prefix}max_param_diff"]) == 0


def test_bench_device_batches_on_synthetic_data_in_full_batches(tmp_path):
    # 64 images in batches of 16 over 3 epochs: every epoch ends on a full batch, where the two paths
    # must still draw the next epoch's order identically (the weights would differ otherwise).
    found = _run(
        "--data", "synthetic", "--num-images", "64", "--image-size", "16", "--batch-size", "16",
        "--steps", "10", "--repeats", "2", "--warmup-steps", "1", "--threads", "1",
        cwd=tmp_path,
    )  # fmt: skip
    assert "synthetic 64x3x16x16" in found["setup"]
    check_pair(found, "", steps=10, skip=1, repeats=2)
    assert "compiled_ratio" not in found

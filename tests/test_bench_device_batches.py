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


def _check_pair(found: dict[str, str], prefix: str, steps: int, skip: int, repeats: int) -> None:
    ms, steady = {}, {}
    for path in PATHS:
        runs = [number(t) for t in found[f"{prefix}{path}_runs_s"].split()]
        assert len(runs) == repeats and all(t > 0 for t in runs)
        ms[path] = number(found[f"{prefix}{path}_ms_per_step"])
        steady[path] = number(found[f"{prefix}{path}_steady_ms_per_step"])
        # runs are printed to 4 decimals of a second: their rounding alone moves the quotient by up to ~0.2%
        assert ms[path] == pytest.approx(1e3 * statistics.median(runs) / steps, rel=5e-3, abs=1e-3)
        assert steady[path] > 0
    assert number(found[f"{prefix}ratio"]) == pytest.approx(ms["dataloader"] / ms["device_batches"], rel=2e-3)
    assert number(found[f"{prefix}steady_ratio"]) == pytest.approx(
        steady["dataloader"] / steady["device_batches"], rel=2e-3
    )
    # Same batches, seed and dropout masks: the two paths train to the same weights, bit for bit.
    assert number(found[f"{prefix}max_param_diff"]) == 0


def test_bench_device_batches_prints_both_paths_and_their_ratio(tmp_path):
    found = _run(
        "--steps", "12", "--repeats", "1", "--warmup-steps", "2", "--image-size", "16", "--threads", "1",
        "--compile", "--compile-backend", "aot_eager",
        cwd=tmp_path,
    )  # fmt: skip
    assert found["device"] == "cpu (cpu)"
    assert found["setup"].startswith("arch lenet  data digits 1259x3x16x16 uint8  batch_size 64")
    assert found["steps"] == "12  skip: 1  repeats: 1"
    loader = {p: number(found[f"loader_{p}_us_per_batch"]) for p in PATHS}
    assert all(v > 0 for v in loader.values())
    assert number(found["loader_ratio"]) == pytest.approx(
        loader["dataloader"] / loader["device_batches"], rel=2e-3
    )
    _check_pair(found, "", steps=12, skip=1, repeats=1)
    assert found["compile_backend"] == "aot_eager"
    _check_pair(found, "compiled_", steps=12, skip=1, repeats=1)
    speedup = number(found["compile_speedup"])
    assert speedup == pytest.approx(
        number(found["device_batches_steady_ms_per_step"])
        / number(found["compiled_device_batches_steady_ms_per_step"]),
        rel=2e-3,
    )


def test_bench_device_batches_on_synthetic_data_in_full_batches(tmp_path):
    # 64 images in batches of 16 over 3 epochs: every epoch ends on a full batch, where the two paths
    # must still draw the next epoch's order identically (the weights would differ otherwise).
    found = _run(
        "--data", "synthetic", "--num-images", "64", "--image-size", "16", "--batch-size", "16",
        "--steps", "10", "--repeats", "2", "--warmup-steps", "1", "--threads", "1",
        cwd=tmp_path,
    )  # fmt: skip
    assert "synthetic 64x3x16x16" in found["setup"]
    _check_pair(found, "", steps=10, skip=1, repeats=2)
    assert "compiled_ratio" not in found

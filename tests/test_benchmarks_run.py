"""scripts/bench_overhead.py, bench_generations.py, bench_sd.py, bench_dcgan.py and bench_jobs.py at tiny sizes.

The benchmarks' timings are never compared with a threshold (tests do not time things): the tests
check that each script exits 0 and prints every documented figure, that the figures are finite and
plausible (positive times, memory at least the model's size), and that they agree with each other
(a ratio is the quotient of the medians it reports, a generation's wall time is the sum of its parts).
"""

from __future__ import annotations

import argparse
import ast
import csv
import importlib.util
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.rounding import agrees_within_rounding

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str, cwd: Path, timeout: float = 120, returncode: int = 0) -> str:
    """Run ``scripts/<name>`` with ``args`` from ``cwd``; check its exit status (``returncode``) and
    return its stdout (its stderr when it is expected to fail)."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == returncode, (
        f"{name} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout if returncode == 0 else result.stderr


def values(output: str) -> dict[str, str]:
    """The ``key: value`` lines of a benchmark's output."""
    return dict(re.findall(r"^(\w+): (.*)$", output, flags=re.MULTILINE))


def number(text: str) -> float:
    """A printed figure, which must be a finite number."""
    value = float(text)
    assert math.isfinite(value), text
    return value


def table(output: str, first_columns: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    """The columns and rows of the whitespace-separated table whose header starts with ``first_columns``."""
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[: len(first_columns)] == first_columns)
    names = lines[header].split()
    rows = []
    for line in lines[header + 1 :]:
        if not line.strip():
            break
        rows.append(dict(zip(names, line.split(), strict=True)))
    return names, rows


def check_overhead(found: dict[str, str], steps: int, repeats: int) -> dict[str, float]:
    """The figures of bench_overhead.py: present, finite, plausible and consistent with each other."""
    assert found["device"] == "cpu"
    assert found["steps"] == str(steps) and found["repeats"] == str(repeats)
    # Every figure is recomputed from the printed ones it derives from, within what their printing rounded.
    runs = {side: found[f"{side}_runs_s"].split() for side in ("lightning", "plain")}
    steady = {side: found[f"{side}_steady_ms_per_step"] for side in ("lightning", "plain")}
    median = {side: statistics.median(number(t) for t in times) for side, times in runs.items()}
    for side, times in runs.items():
        assert len(times) == repeats and all(number(t) > 0 for t in times)
        # ms per step is the median run over the steps.
        assert agrees_within_rounding(
            found[f"{side}_ms_per_step"], lambda r: 1e3 * statistics.median(r) / steps, times
        )
        assert number(steady[side]) > 0
    ratio = number(found["ratio"])
    assert agrees_within_rounding(
        found["ratio"],
        lambda a, b: statistics.median(a) / statistics.median(b),
        runs["lightning"],
        runs["plain"],
    )
    steady_ratio = number(found["steady_ratio"])
    assert agrees_within_rounding(
        found["steady_ratio"], lambda a, b: a / b, steady["lightning"], steady["plain"]
    )
    # Same work on both sides: neither side can be orders of magnitude off the other.
    assert 0.01 < ratio < 100 and 0.01 < steady_ratio < 100
    # The fixed cost is what the whole run costs beyond its steps at the steady rate.
    fixed = number(found["lightning_fixed_cost_s"])
    assert agrees_within_rounding(
        found["lightning_fixed_cost_s"],
        lambda r, s: statistics.median(r) - s * steps / 1e3,
        runs["lightning"],
        steady["lightning"],
    )
    assert fixed <= median["lightning"]
    assert found["goal"] == "ratio <= 1.05"
    if abs(ratio - 1.05) > 1e-3:  # the verdict follows the printed ratio
        assert found["goal_met"] == ("yes" if ratio <= 1.05 else "no")
    # Same model, seed, batches and dropout masks on both sides: the same weights after training.
    assert number(found["max_param_diff"]) < 1e-4
    return {"ratio": ratio, "steady_ratio": steady_ratio}


def test_bench_overhead_synthetic_data_in_full_batches(tmp_path):
    # 64 images in batches of 16: every epoch ends on a full batch, where Lightning leaves the
    # sampler unexhausted; the plain side must replay that order over 3 epochs.
    out = run_script(
        "bench_overhead.py", "--data", "synthetic", "--num-images", "64", "--image-size", "16",
        "--batch-size", "16", "--steps", "10", "--repeats", "2", "--warmup-steps", "1", "--threads", "1",
        cwd=tmp_path,
    )  # fmt: skip
    found = values(out)
    assert "synthetic 64x3x16x16" in found["arch"] and found["arch"].endswith("batch_size: 16")
    check_overhead(found, steps=10, repeats=2)


GENERATION_COLUMNS = [
    "generation",
    "wall_s",
    "generator_s",
    "generator_gflop",
    "generator_gflops",
    "classifiers_s",
    "other_s",
    "after_fit_s",
    "peak_rss_mib",
    "end_rss_mib",
    "queue_gens",
    "train_images",
]


def check_generations(out: str, generations: int, capacity: int, run_dir: Path) -> None:
    """The figures of bench_generations.py: a row per generation, each consistent with the others, and the run."""
    names, rows = table(out, ["generation", "wall_s"])
    assert names == GENERATION_COLUMNS
    assert [int(r["generation"]) for r in rows] == list(range(generations + 1))
    # The queue fills at generation K and stays full: FIFO eviction keeps it at K generations.
    assert [int(r["queue_gens"]) for r in rows] == [min(n, capacity) for n in range(generations + 1)]
    for r in rows:
        seconds = {
            k: number(r[k]) for k in ("wall_s", "generator_s", "classifiers_s", "other_s", "after_fit_s")
        }
        assert seconds["wall_s"] > 0 and seconds["classifiers_s"] > 0
        assert all(v >= 0 for k, v in seconds.items() if k != "other_s")
        # A generation's window is its fits plus the work between them (each printed to 10 ms).
        parts = seconds["generator_s"] + seconds["classifiers_s"] + seconds["other_s"]
        assert parts == pytest.approx(seconds["wall_s"], abs=0.02)
        assert seconds["after_fit_s"] <= seconds["generator_s"] + seconds["classifiers_s"] + 0.01
        peak, end = number(r["peak_rss_mib"]), number(r["end_rss_mib"])
        assert 50 < end <= peak < 64 * 1024  # a Python process with torch, far below the machine
    # Generation 0 trains no generator; every later one does, on real data plus the queue, and its work
    # and rate are counted (the same architecture and batch size every generation: the same work per batch).
    assert number(rows[0]["generator_s"]) == 0 and all(number(r["generator_s"]) > 0 for r in rows[1:])
    assert rows[0]["generator_gflop"] == rows[0]["generator_gflops"] == "-"
    assert all(number(r["generator_gflop"]) > 0 and number(r["generator_gflops"]) > 0 for r in rows[1:])
    # Generation n trains on the real set plus the queue: with capacity 1, generation n's kept samples alone.
    real = int(rows[0]["train_images"])
    kept = {
        int(r["generation"]): int(float(r["value"]))
        for r in csv.DictReader((run_dir / "metrics.csv").open())
        if r["arch"] == "generator" and r["metric"] == "num_kept"
    }
    assert real > 0 and [int(r["train_images"]) for r in rows[1:]] == [
        real + kept[n] for n in range(1, generations + 1)
    ]
    found = values(out)
    assert agrees_within_rounding(
        found["generations_s"], lambda *walls: sum(walls), *(r["wall_s"] for r in rows)
    )
    assert number(found["total_s"]) >= number(found["generations_s"]) and number(found["startup_s"]) > 0
    assert number(found["max_rss_mib"]) == max(number(r["peak_rss_mib"]) for r in rows)
    assert found["time_check"].startswith(
        f"generations {capacity + 1}..{generations} vs generation {capacity} "
    )
    for key in ("time_check", "time_check_full_queue", "memory_check"):
        assert found[key].endswith((": yes", ": no")), found[key]
    assert (run_dir / "manifest.json").is_file()


def documented_columns(script: str) -> list[str]:
    """The table header a benchmark's docstring documents: its last line."""
    doc = ast.get_docstring(ast.parse((REPO / "scripts" / script).read_text()))
    return doc.strip().splitlines()[-1].split()


def test_bench_sd_on_cpu_at_reduced_resolution(tmp_path):
    # SD 1.5's shapes with random weights at 64 px: about a minute on two free cores; the timeout
    # leaves room for a busy machine.
    out = run_script("bench_sd.py", "--device", "cpu", "--threads", "2", cwd=tmp_path, timeout=900)
    found = values(out)
    assert found["device"] == "cpu (cpu)"
    assert found["weights"].startswith("random-sd15-shapes") and "NOT pretrained" in found["weights"]
    assert found["pretrained"] == "no"
    assert found["parameters"] == "unet 859.5M  vae 83.7M  text_encoder 123.1M  lora 0.797M"
    assert found["resolution"] == "64 px (reduced; the paper's is 512 px)"
    assert found["precision"] == "32-true"
    assert found["scheduler"] == "dpm  sample_steps: 2  guidance_scale: 7.5"
    assert found["peak_mem"].startswith("peak process RSS")
    assert number(found["build_s"]) > 0 and number(found["total_s"]) > number(found["build_s"])

    names, rows = table(out, ["phase", "batch_size"])
    assert names == documented_columns("bench_sd.py") and "peak_mem_mib" in names
    assert [(r["phase"], r["batch_size"]) for r in rows] == [("train", "1"), ("sample", "1")]
    # The model alone holds (859.5 + 83.7 + 123.1)M fp32 weights = 4,068 MiB; RSS includes them.
    weights_mib = (859.5 + 83.7 + 123.1) * 1e6 * 4 / 2**20
    for r in rows:
        assert r["resolution"] == "64" and int(r["batches"]) >= 1
        assert r["denoise_steps"] == ("-" if r["phase"] == "train" else "2")
        per_batch, rate = number(r["s_per_batch"]), number(r["images_per_s"])
        assert per_batch > 0 and rate == pytest.approx(int(r["batch_size"]) / per_batch, rel=1e-2)
        assert weights_mib < number(r["peak_mem_mib"]) < 64 * 1024


def _refused(name: str, capsys, monkeypatch, *args: str) -> str:
    """What ``scripts/<name>``'s ``main(args)`` prints to stderr as it exits 2 on a bad argument (in process:
    the argument checks run before anything the fresh interpreters of the tests above are for)."""
    spec = importlib.util.spec_from_file_location(f"script_{Path(name).stem}", REPO / "scripts" / name)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as info:
        module.main(list(args))
    assert info.value.code == 2
    return capsys.readouterr().err


def test_bench_sd_rejects_a_resolution_the_vae_cannot_take(capsys, monkeypatch):
    err = _refused("bench_sd.py", capsys, monkeypatch, "--device", "cpu", "--resolution", "60")
    assert "--resolution must be a multiple of 8" in err


def test_bench_generations_needs_capacity_below_generations(capsys, monkeypatch):
    assert "--queue-capacity" in _refused("bench_generations.py", capsys, monkeypatch, "-n", "2", "-k", "2")


def test_bench_dcgan_times_each_candidate_against_the_earlier_quick_start(tmp_path):
    out = run_script(
        "bench_dcgan.py", "--candidates", "half_schedule", "kept", "--batches", "2", "--warmup", "1",
        "--reps", "1", "--threads", "1", cwd=tmp_path,
    )  # fmt: skip
    assert values(out)["train_images"] == "3500"  # the quick start's training digits
    names, rows = table(out, ["candidate", "batches_per_fit"])
    assert names == documented_columns("bench_dcgan.py")
    by_name = {row["candidate"]: row for row in rows}
    assert list(by_name) == ["baseline", "half_schedule", "kept"]
    base = by_name["baseline"]
    for row in rows:
        per_batch, fit = number(row["ms_per_batch"]), number(row["fit_s"])
        assert per_batch > 0 and fit == pytest.approx(
            per_batch * int(row["batches_per_fit"]) / 1000, rel=0.01
        )
        assert number(row["speedup"]) == pytest.approx(number(base["fit_s"]) / fit, rel=0.02)
        assert number(row["gflops"]) == pytest.approx(
            number(row["gflop_per_batch"]) / per_batch * 1000, rel=0.02
        )
    # Half the batches, same network: the work per batch is the baseline's.
    assert (by_name["half_schedule"]["batches_per_fit"], base["batches_per_fit"]) == ("1100", "2200")
    assert by_name["half_schedule"]["gflop_per_batch"] == base["gflop_per_batch"]
    # bench_jobs.py reads the kept generator's ms per batch from this output.
    assert _bench_jobs().generator_ms(out) == float(by_name["kept"]["ms_per_batch"])


def _bench_jobs():
    spec = importlib.util.spec_from_file_location("bench_jobs", REPO / "scripts" / "bench_jobs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_jobs_reads_mobilenets_ms_per_step_from_bench_classifiers(tmp_path):
    bench_jobs = _bench_jobs()
    arguments = bench_jobs.classifier_command(1, argparse.Namespace(steps=1))
    arguments[arguments.index("--scratch-batch") + 1] = "4"  # tiny; the rest as bench_jobs.py runs it
    out = run_script(Path(arguments[1]).name, *arguments[2:], cwd=tmp_path)
    _, rows = table(out, ["setting", "arch"])
    (row,) = [r for r in rows if r["arch"] == "mobilenet_v3"]
    assert (row["size"], row["precision"], row["compile"]) == ("32", "fp32", "no")
    assert bench_jobs.classifier_ms(out) == number(row["ms_per_step"]) > 0


def test_bench_jobs_runs_the_copies_at_cores_over_jobs_threads_and_divides_the_throughputs(
    monkeypatch, capsys
):
    """The orchestration and the arithmetic, on a workload that reports its thread count as its time."""
    bench_jobs = _bench_jobs()
    tell_threads = [sys.executable, "-c", "import sys; print('kept 0', sys.argv[1])"]
    workload = (lambda threads, options: [*tell_threads, str(threads)], bench_jobs.generator_ms)
    monkeypatch.setattr(bench_jobs, "WORKLOADS", {"threads": workload})
    monkeypatch.setattr(bench_jobs.os, "cpu_count", lambda: 4)
    assert bench_jobs.main(["--jobs", "2", "--rounds", "1"]) == 0
    _, rows = table(capsys.readouterr().out, ["workload", "round"])
    # Alone: 4 threads ("4 ms"); 2 copies at 2 threads each ("2 ms"): 2 x 4 / 2 = 4 times the work per second.
    assert rows == [
        {
            "workload": "threads",
            "round": "0",
            "alone_ms": "4.00",
            "concurrent_ms": "2.00",
            "throughput_ratio": "4.000",
        }
    ]

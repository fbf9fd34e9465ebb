"""Runs side by side against one at a time: the throughput of the study's work with ``--jobs``.

    python scripts/bench_jobs.py [--jobs 2] [--rounds 2] [--batches 60] [--steps 20]

``scripts/study_mnist.py --jobs N`` runs N runs at once with ``cores // N`` threads each. This measures
whether that gets more done than one run with every core's threads, on the study's two costliest
workloads: the generator's fit (``bench_dcgan.py``, candidate ``kept``: the study's generator) and
MobileNet-V3's training step at the study's size (``bench_classifiers.py``: 32 px, batch 64, float32,
channels-last). Per round and workload it runs the workload's benchmark once alone (all cores' threads),
then ``--jobs`` copies at once (``cores // jobs`` threads each), in one invocation so the machine's drift
hits both alike, and prints::

    workload round alone_ms concurrent_ms throughput_ratio

``alone_ms`` is the lone process's time per batch (per step), ``concurrent_ms`` the mean of the concurrent
copies', and ``throughput_ratio`` = jobs x alone_ms / concurrent_ms: the work done per second side by side
over the work done alone (above 1: ``--jobs`` pays).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent


def generator_command(threads: int, options: argparse.Namespace) -> list[str]:
    return [
        sys.executable, str(SCRIPTS / "bench_dcgan.py"), "--candidates", "kept", "--reps", "1", "--warmup", "3",
        "--batches", str(options.batches), "--threads", str(threads),
    ]  # fmt: skip


def classifier_command(threads: int, options: argparse.Namespace) -> list[str]:
    return [
        sys.executable, str(SCRIPTS / "bench_classifiers.py"), "--device", "cpu", "--scratch-archs", "mobilenet_v3", "--imagenet-archs",
        "--scratch-batch", "64", "--precision", "fp32", "--compile", "no", "--warmup-steps", "3",
        "--steps", str(options.steps), "--threads", str(threads),
    ]  # fmt: skip


def generator_ms(output: str) -> float:
    """ms per batch from ``bench_dcgan.py``'s row ``kept batches_per_fit ms_per_batch ...``."""
    (row,) = [line.split() for line in output.splitlines() if line.startswith("kept ")]
    return float(row[2])


def classifier_ms(output: str) -> float:
    """ms per step from ``bench_classifiers.py``'s table (header ``setting arch ... ms_per_step ...``)."""
    rows = [line.split() for line in output.splitlines() if line.split()]
    header = next(row for row in rows if row[:2] == ["setting", "arch"])
    (row,) = [row for row in rows if len(row) == len(header) and row[1] == "mobilenet_v3"]
    return float(row[header.index("ms_per_step")])


WORKLOADS: dict[str, tuple[Callable[[int, argparse.Namespace], list[str]], Callable[[str], float]]] = {
    "generator": (generator_command, generator_ms),
    "mobilenet_v3": (classifier_command, classifier_ms),
}


def _start(command: Sequence[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _outputs(processes: Sequence[subprocess.Popen]) -> list[str]:
    outputs = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(
                f"{' '.join(map(str, process.args))} exited {process.returncode}:\n{err[-2000:]}"
            )
        outputs.append(out)
    return outputs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2, help="copies run at once")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of alone-then-concurrent per workload")
    parser.add_argument("--batches", type=int, default=60, help="timed generator batches per process")
    parser.add_argument("--steps", type=int, default=20, help="timed MobileNet-V3 steps per process")
    options = parser.parse_args(argv)
    for name in ("jobs", "rounds", "batches", "steps"):
        if getattr(options, name) < 1:
            parser.error(f"--{name} {getattr(options, name)}: give 1 or more")
    cores = os.cpu_count() or 1
    threads = max(1, cores // options.jobs)
    print(f"cores: {cores}")
    print(f"jobs: {options.jobs}")
    print(f"threads_alone: {cores}")
    print(f"threads_concurrent: {threads}")
    print("workload round alone_ms concurrent_ms throughput_ratio")
    for name, (command, parse) in WORKLOADS.items():
        for round_ in range(options.rounds):
            (alone,) = map(parse, _outputs([_start(command(cores, options))]))
            concurrent = statistics.mean(
                map(parse, _outputs([_start(command(threads, options)) for _ in range(options.jobs)]))
            )
            ratio = options.jobs * alone / concurrent
            print(f"{name} {round_} {alone:.2f} {concurrent:.2f} {ratio:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

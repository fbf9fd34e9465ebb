"""Per-generation wall time and peak memory of the real loop, run in-process through the CLI.

    python scripts/bench_generations.py [--generations 6] [--queue-capacity 2] [--epochs 3]
        [--generator-epochs 3] [--image-size 32] [--threads 1] [--run-dir DIR] [-- extra CLI args]

Runs ``SelfLoopCLI(args=["fit", "--config", "configs/digits.yaml", "--loop.generations", N,
"--loop.queue_capacity", K, ...])`` on the embedded digits with K < N, so the stacking queue fills at
generation K and then evicts one generation per generation. Every phase's Trainer gets this script's
``GenerationTimer`` callback (``--trainer.callbacks+=<module>.GenerationTimer``); it records when
each fit starts (``setup``) and ends (``teardown``, after the evaluation or sampling and filtering
that run in ``on_fit_end``), the generation (from the phase logger's name ``gen_<n>``), the phase
(the logger's version: ``generator`` or the arch) and the queue's size (from ``manifest.json``). A
background thread samples the process's RSS (psutil) every ``--sample-ms`` milliseconds.

A generation's window runs from the end of the previous generation's last fit to the end of its own
last fit (generation 0: from the start of its first fit), so the work the loop does between fits
(queue loading, classifier loading, weights and manifest writes) is counted in it. Per generation the
table shows its wall time, the time of its generator fit and classifier fits (``setup`` to
``teardown``), the generator fit's work (``generator_gflop``: the first batch's floating-point operations,
forward and backward, counted by torch's ``FlopCounterMode``, times its batches) and the rate it achieved
over its training (``generator_gflops``: that work over ``setup`` to ``on_train_end``, GFLOP/s; compare it
with the machine's peak to see how far a fit is from its limit), the rest (``other_s``: work between
fits), the part of the fits spent after training (``after_fit_s``: sampling, filtering, FID,
evaluation), peak and end RSS, the queue's size and the classifier's training set size. ``--census`` adds, after each fit and a ``gc.collect()``, the bytes of
live CPU tensors and the count of live objects (a leak shows there, free of allocator noise).

Goal checks (printed, never enforced):

* time: once the queue is full (generation >= K), every generation's wall time is within
  ``--time-tolerance`` of generation K's. Generation K's generator still trains on K-1 queued
  generations (its own samples enter the queue after its fit), so generation K+1 is the first whose
  phases all see a full queue; that comparison is printed too.
* memory: the peak RSS of generations > K minus that of generation K, in MiB and %, against
  ``--memory-tolerance``. RSS also drifts up while the fits' reference cycles (Trainer, callbacks,
  module) wait for Python's cyclic garbage collector; ``--census`` collects after every fit and shows
  whether anything stays alive.

Lines are ``key: value`` and a whitespace-separated table, easy to parse. Timings on a shared CPU
vary by several percent from run to run.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import re
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing the package

import lightning as L  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

MIB = 2**20


@dataclass
class PhaseEvent:
    """One training phase of the loop, as the callback saw it.

    Attributes:
        generation: generation index (from the logger name ``gen_<n>``).
        phase: ``generator`` or the classifier's arch (the logger's version).
        start: ``time.perf_counter()`` at the fit's ``setup``.
        end: ``time.perf_counter()`` at the fit's ``teardown`` (NaN until then).
        train_end: ``time.perf_counter()`` at ``on_train_end``: what follows is the ``on_fit_end``
            work (sampling, filtering and FID of a generator; evaluation of a classifier).
        queue_generations: generations in the stacking queue when the fit started.
        train_images: images in the phase's training set (real + queue).
        end_rss: the process's RSS in bytes at ``teardown``.
        cuda_peak: peak CUDA memory allocated during the fit, in bytes (0 without a GPU).
        live_tensor_bytes: with ``--census``, bytes of the distinct CPU tensor storages alive at
            ``teardown`` after a garbage collection (-1 without it).
        live_objects: with ``--census``, objects tracked by the garbage collector then (-1 without).
        census_s: seconds the census took (taken out of the generation's wall time).
        train_batches: training batches the fit ran.
        flops_per_batch: floating-point operations of the fit's first training batch, forward and backward
            (torch's ``FlopCounterMode``; counted for generator fits only, 0 otherwise).
    """

    generation: int
    phase: str
    start: float
    end: float = float("nan")
    train_end: float = float("nan")
    queue_generations: int = 0
    train_images: int = 0
    end_rss: int = 0
    cuda_peak: int = 0
    live_tensor_bytes: int = -1
    live_objects: int = -1
    census_s: float = 0.0
    train_batches: int = 0
    flops_per_batch: float = 0.0

    @property
    def open(self) -> bool:
        """The fit has started and not ended yet."""
        return math.isnan(self.end)


class GenerationTimer(Callback):
    """Records every fit of the loop in ``GenerationTimer.events``.

    The loop deep-copies user callbacks for every phase, so the record is a class attribute (shared
    by all copies), never instance state; so is the ``census`` switch (``--census``).
    """

    events: ClassVar[list[PhaseEvent]] = []
    census: ClassVar[bool] = False
    # Counting the running generator fit's first batch; per copy, as the fit runs on one copy.
    _flop_counter: FlopCounterMode | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = trainer.logger
        match = re.fullmatch(r"gen_(\d+)", str(getattr(logger, "name", "")))
        if match is None:
            return  # not a phase of the loop (e.g. a helper Trainer without the phase logger)
        datamodule = trainer.datamodule
        train_set = getattr(datamodule, "train_set", None)
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()
        self.events.append(
            PhaseEvent(
                generation=int(match.group(1)),
                phase=str(logger.version),
                start=time.perf_counter(),
                queue_generations=_queue_size(Path(trainer.default_root_dir)),
                train_images=len(train_set) if train_set is not None else 0,
            )
        )

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        event = self.events[-1] if self.events and self.events[-1].open else None
        if event is not None and event.phase == "generator" and event.train_batches == 0:
            # The first batch's work, forward and backward, counted op by op (FlopCounterMode): every batch
            # of a fit does the same work, so the fit's work is this times its batches.
            self._flop_counter = FlopCounterMode(display=False)
            self._flop_counter.__enter__()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if not self.events or not self.events[-1].open:
            return
        event = self.events[-1]
        if self._flop_counter is not None:
            self._flop_counter.__exit__(None, None, None)
            event.flops_per_batch = float(self._flop_counter.get_total_flops())
            self._flop_counter = None
        event.train_batches += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.events and self.events[-1].open:
            self.events[-1].train_end = time.perf_counter()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self.events or not self.events[-1].open:
            return
        event = self.events[-1]
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
            event.cuda_peak = torch.cuda.max_memory_allocated()
        event.end = time.perf_counter()
        event.end_rss = psutil.Process().memory_info().rss
        if self.census:
            event.live_objects, event.live_tensor_bytes = live_census()
            event.census_s = time.perf_counter() - event.end


def live_census() -> tuple[int, int]:
    """(objects tracked by the garbage collector, bytes of distinct live CPU tensor storages)."""
    gc.collect()
    objects = gc.get_objects()
    storages: dict[int, int] = {}
    for obj in objects:
        if isinstance(obj, torch.Tensor) and obj.device.type == "cpu" and not obj.is_meta:
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return len(objects), sum(storages.values())


def _queue_size(run_dir: Path) -> int:
    """Generations in the stacking queue according to the run's manifest (0 when it has none yet)."""
    try:
        return len(json.loads((run_dir / "manifest.json").read_text()).get("queue", []))
    except (OSError, ValueError):
        return 0


class RssSampler:
    """Samples the process's resident set size in a background thread.

    Args:
        interval_s: seconds between samples.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._process = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self._process.memory_info().rss))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float, end: float, exclude: Sequence[tuple[float, float]] = ()) -> int:
        """Largest RSS sampled in ``[start, end]`` outside the ``exclude`` intervals (0 if none)."""
        return max(
            (
                rss
                for t, rss in self.samples
                if start <= t <= end and not any(a <= t <= b for a, b in exclude)
            ),
            default=0,
        )


@dataclass
class GenerationRow:
    """One line of the table (times in seconds, memory in bytes; -1: not measured)."""

    generation: int
    wall_s: float
    generator_s: float
    generator_train_s: float
    generator_flops: float
    classifiers_s: float
    after_fit_s: float
    peak_rss: int
    end_rss: int
    queue_generations: int
    train_images: int
    cuda_peak: int
    live_tensor_bytes: int
    live_objects: int

    @property
    def other_s(self) -> float:
        """Time of the generation outside its fits (queue loading, weights and manifest writes)."""
        return self.wall_s - self.generator_s - self.classifiers_s


def generation_rows(events: list[PhaseEvent], sampler: RssSampler) -> list[GenerationRow]:
    """Group the phases by generation; the time between two fits counts in the later one's generation.

    Args:
        events: the finished phases, in the order they ran.
        sampler: the RSS samples of the run.
    """
    by_generation: dict[int, list[PhaseEvent]] = {}
    for event in events:
        by_generation.setdefault(event.generation, []).append(event)
    censuses = [(e.end, e.end + e.census_s) for e in events if e.census_s > 0]
    rows = []
    previous_end: float | None = None
    for generation in sorted(by_generation):
        phases = by_generation[generation]
        start = previous_end if previous_end is not None else min(p.start for p in phases)
        end = max(p.end for p in phases)
        census_s = sum(b - a for a, b in censuses if start <= a < end)
        classifiers = [p for p in phases if p.phase != "generator"]
        generators = [p for p in phases if p.phase == "generator"]
        last = max(phases, key=lambda p: p.end)
        rows.append(
            GenerationRow(
                generation=generation,
                wall_s=end - start - census_s,
                generator_s=sum(p.end - p.start for p in generators),
                generator_train_s=sum(p.train_end - p.start for p in generators),
                generator_flops=sum(p.flops_per_batch * p.train_batches for p in generators),
                classifiers_s=sum(p.end - p.start for p in classifiers),
                after_fit_s=sum(p.end - p.train_end for p in phases if not math.isnan(p.train_end)),
                peak_rss=max(sampler.peak(start, end, censuses), *(p.end_rss for p in phases)),
                end_rss=last.end_rss,
                queue_generations=last.queue_generations,
                train_images=last.train_images,
                cuda_peak=max(p.cuda_peak for p in phases),
                live_tensor_bytes=last.live_tensor_bytes,
                live_objects=last.live_objects,
            )
        )
        previous_end = end
    return rows


def cli_args(args: argparse.Namespace, run_dir: Path) -> list[str]:
    """The CLI call of the benchmarked run."""
    callback = f"{GenerationTimer.__module__}.{GenerationTimer.__qualname__}"
    return [
        "fit",
        "--config", str(REPO / "configs" / "digits.yaml"),
        "--loop.generations", str(args.generations),
        "--loop.queue_capacity", str(args.queue_capacity),
        "--loop.generator_epochs", str(args.generator_epochs),
        "--loop.early_stopping_patience", str(args.epochs),  # fixed work: early stopping never fires
        "--loop.run_dir", str(run_dir),
        "--trainer.max_epochs", str(args.epochs),
        "--trainer.enable_progress_bar", "false",
        "--data.init_args.image_size", str(args.image_size),
        f"--trainer.callbacks+={callback}",
        *args.extra,
    ]  # fmt: skip


def _check(values: dict[int, float], reference: int, tolerance: float) -> tuple[float, bool] | None:
    """Largest relative deviation from ``values[reference]`` of the later generations."""
    later = [v for n, v in values.items() if n > reference]
    if reference not in values or not later:
        return None
    worst = max(later, key=lambda v: abs(v - values[reference]))
    deviation = (worst - values[reference]) / values[reference]
    return deviation, abs(deviation) <= tolerance


def report(args: argparse.Namespace, rows: list[GenerationRow], startup_s: float, total_s: float) -> None:
    """Print the table and the goal checks."""
    k = args.queue_capacity
    columns: list[tuple[str, Callable[[GenerationRow], str]]] = [
        ("generation", lambda r: f"{r.generation}"),
        ("wall_s", lambda r: f"{r.wall_s:.2f}"),
        ("generator_s", lambda r: f"{r.generator_s:.2f}"),
        ("generator_gflop", lambda r: f"{r.generator_flops / 1e9:.1f}" if r.generator_flops else "-"),
        (
            "generator_gflops",
            lambda r: f"{r.generator_flops / 1e9 / r.generator_train_s:.1f}" if r.generator_flops else "-",
        ),
        ("classifiers_s", lambda r: f"{r.classifiers_s:.2f}"),
        ("other_s", lambda r: f"{r.other_s:.2f}"),
        ("after_fit_s", lambda r: f"{r.after_fit_s:.2f}"),
        ("peak_rss_mib", lambda r: f"{r.peak_rss / MIB:.1f}"),
        ("end_rss_mib", lambda r: f"{r.end_rss / MIB:.1f}"),
        ("queue_gens", lambda r: f"{r.queue_generations}"),
        ("train_images", lambda r: f"{r.train_images}"),
    ]
    if any(r.cuda_peak for r in rows):
        columns.append(("cuda_peak_mib", lambda r: f"{r.cuda_peak / MIB:.1f}"))
    if any(r.live_objects >= 0 for r in rows):
        columns.append(("live_tensor_mib", lambda r: f"{r.live_tensor_bytes / MIB:.1f}"))
        columns.append(("live_objects", lambda r: f"{r.live_objects}"))
    print(" ".join(f"{name:>15}" for name, _ in columns))
    for r in rows:
        print(" ".join(f"{cell(r):>15}" for _, cell in columns))
    print()
    last_end = sum(r.wall_s for r in rows)
    print(f"startup_s: {startup_s:.2f}")
    print(f"generations_s: {last_end:.2f}")
    print(f"total_s: {total_s:.2f}")
    print(f"max_rss_mib: {max(r.peak_rss for r in rows) / MIB:.1f}")

    wall = {r.generation: r.wall_s for r in rows}
    for name, reference in (("time_check", k), ("time_check_full_queue", k + 1)):
        result = _check(wall, reference, args.time_tolerance)
        if result is None:
            print(f"{name}: n/a (needs generations > {reference})")
            continue
        deviation, ok = result
        later = [wall[n] for n in wall if n > reference]
        print(
            f"{name}: generations {reference + 1}..{max(wall)} vs generation {reference} "
            f"({wall[reference]:.2f} s): worst {100 * deviation:+.1f}% (median "
            f"{100 * (statistics.median(later) / wall[reference] - 1):+.1f}%), "
            f"limit ±{100 * args.time_tolerance:.0f}%: {'yes' if ok else 'no'}"
        )
    peak = {r.generation: float(r.peak_rss) for r in rows}
    if k in peak and any(n > k for n in peak):
        later_max = max(v for n, v in peak.items() if n > k)
        growth = later_max - peak[k]
        pct = growth / peak[k]
        ok = pct <= args.memory_tolerance
        print(
            f"memory_check: peak RSS at generation {k} {peak[k] / MIB:.1f} MiB, max over generations "
            f"{k + 1}..{max(peak)} {later_max / MIB:.1f} MiB: growth {growth / MIB:+.1f} MiB ({100 * pct:+.1f}%), "
            f"limit +{100 * args.memory_tolerance:.0f}%: {'yes' if ok else 'no'}"
        )
    else:
        print(f"memory_check: n/a (needs generations > {k})")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--generations", "-n", type=int, default=6, help="N, generations after generation 0")
    parser.add_argument("--queue-capacity", "-k", type=int, default=2, help="K, queue capacity (K < N)")
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs of every classifier fit (no early stop)"
    )
    parser.add_argument("--generator-epochs", type=int, default=3, help="epochs of every generator fit")
    parser.add_argument("--image-size", type=int, default=32, help="side of the digits images")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch intra-op threads (0: torch's default; 1 keeps timings stable on a shared CPU)",
    )  # fmt: skip
    parser.add_argument("--sample-ms", type=float, default=50.0, help="RSS sampling interval in ms")
    parser.add_argument("--time-tolerance", type=float, default=0.10, help="allowed relative time deviation")
    parser.add_argument(
        "--memory-tolerance", type=float, default=0.05, help="allowed relative peak RSS growth"
    )
    parser.add_argument(
        "--census",
        action="store_true",
        help="after every fit, count live objects and CPU tensor bytes (gc; its time is not counted)",
    )
    parser.add_argument("--verbose", action="store_true", help="show Lightning's and the loop's log lines")
    parser.add_argument("--run-dir", default=None, help="keep the run here (default: a temporary folder)")
    parser.add_argument("extra", nargs="*", help="extra CLI arguments, after '--' (e.g. -- --loop.seed 1)")
    args = parser.parse_args(argv)
    if not 1 <= args.queue_capacity < args.generations:
        parser.error("need 1 <= --queue-capacity < --generations")
    if min(args.epochs, args.generator_epochs, args.image_size) < 1:
        parser.error("--epochs, --generator-epochs and --image-size must be >= 1")
    if args.run_dir and Path(args.run_dir).exists() and any(Path(args.run_dir).iterdir()):
        parser.error(f"--run-dir {args.run_dir} is not empty (the CLI would resume that run instead)")
    return args


def run(args: argparse.Namespace, run_dir: Path) -> list[GenerationRow]:
    """Run the loop through the CLI in this process and print its per-generation figures."""
    from selfloop.cli.app import SelfLoopCLI

    GenerationTimer.events.clear()
    GenerationTimer.census = args.census
    argv = cli_args(args, run_dir)
    print("cli_args: " + " ".join(argv), flush=True)
    with RssSampler(args.sample_ms / 1000) as sampler:
        start = time.perf_counter()
        SelfLoopCLI(args=argv)
        total_s = time.perf_counter() - start
    events = [e for e in GenerationTimer.events if not e.open]
    if not events:
        raise RuntimeError("the GenerationTimer callback saw no phase: was it passed to the Trainers?")
    rows = generation_rows(events, sampler)
    report(args, rows, startup_s=min(e.start for e in events) - start, total_s=total_s)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the benchmark and print its figures; returns 0."""
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if not args.verbose:
        warnings.filterwarnings("ignore")
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    print(f"torch: {torch.__version__}  lightning: {L.__version__}  threads: {torch.get_num_threads()}")
    print(
        f"generations: {args.generations}  queue_capacity: {args.queue_capacity}  epochs: {args.epochs}  "
        f"generator_epochs: {args.generator_epochs}  image_size: {args.image_size}"
    )
    if args.run_dir:
        run(args, Path(args.run_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="bench_generations_") as tmp:
            run(args, Path(tmp) / "run")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a run prints: Lightning's per-phase banners silenced, a line per phase, a summary at the end.

A run builds a fresh ``Trainer`` for every phase, and each one repeats Lightning's banners (device
availability, a logging-service advertisement, a validation-loop notice that does not apply to generator
fits). ``quiet_lightning`` silences exactly those messages, by their text, on the loggers and in the
``warnings`` module where they arise; every other log record and warning still reaches the console.
``PhaseProgress`` prints one line when a phase starts and one when it ends, with the run's ETA;
``print_summary`` prints the per-generation table and the commands to look at the run.
"""

from __future__ import annotations

import logging
import math
import re
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from lightning.pytorch.utilities import rank_zero_only

from selfloop.catalogue import GENERATOR_ARCH, console_metrics

if TYPE_CHECKING:
    from selfloop.run.phases import Phase, PhaseRunner

PREFIX = "[selfloop]"

# Info records Lightning logs for every Trainer (``rank_zero_info`` and the CUDA accelerator's logger).
# Matched at the start of the message, so a selfloop line that quotes one is never hidden.
LIGHTNING_BANNERS: tuple[str, ...] = (
    r"(GPU|TPU|HPU|IPU) available: ",
    r"LOCAL_RANK: \d+ - CUDA_VISIBLE_DEVICES: ",
    r"💡 Tip: For seamless cloud (logging|uploads)",
    # The loop prints its own end-of-phase line; "stopped: No training batches." stays visible.
    r"`Trainer\.fit` stopped: `max_(epochs|steps)=",
)
# The loggers those records are created on. ``rank_zero_info`` logs through whichever of the two
# ``rank_zero`` loggers was imported last, so both are filtered.
LIGHTNING_LOGGERS: tuple[str, ...] = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
)
# Warnings that do not apply to a run of the loop: a generator's datamodule offers a validation split
# for the classifiers; the pytree deprecation is Lightning's own use of a torch API.
LIGHTNING_WARNINGS: tuple[str, ...] = (
    r"You passed in a `val_dataloader` but have no `validation_step`",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)

# The summary table: classifier metrics per (generation, arch), then the generator's of that generation.
CLASSIFIER_COLUMNS: tuple[str, ...] = console_metrics("classifier")
GENERATOR_COLUMNS: tuple[str, ...] = console_metrics("generator")
MISSING = "-"


class _BannerFilter(logging.Filter):
    """Drops the log records whose message starts with one of ``patterns``."""

    def __init__(self, patterns: Iterable[str]) -> None:
        super().__init__()
        self._pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return self._pattern.match(record.getMessage()) is None


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-phase banners and the warnings that do not apply, for the ``with`` block.

    Only the messages listed in ``LIGHTNING_BANNERS`` (on the loggers of ``LIGHTNING_LOGGERS``) and
    ``LIGHTNING_WARNINGS`` are dropped; everything else Lightning or anyone else logs or warns is shown
    as before. Leaving the block removes the filters again. Nested blocks are fine.

    Example::

        with quiet_lightning():
            trainer = L.Trainer(max_epochs=1)  # no "GPU available: ..." lines
            trainer.fit(model, datamodule)
    """
    log_filter = _BannerFilter(LIGHTNING_BANNERS)
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    for logger in loggers:
        logger.addFilter(log_filter)
    try:
        with warnings.catch_warnings():
            for message in LIGHTNING_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(log_filter)


def format_duration(seconds: float) -> str:
    """``12.3 s``, ``1 min 40 s``, ``2 h 05 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


class PhaseProgress:
    """Prints a line when a phase starts and when it ends, with the run's estimated time left.

    Lines look like ``[selfloop] g2/3 classifier lenet · done in 12.3 s · run ETA 1 min 40 s``. Training
    phases (generator, classifier, subgroup oracle) print a start line; every step prints an end line
    (the generator's sample, review and filter steps too, timed from the step before them).

    The ETA counts the run's units that are not done yet, a generator unit (generator fit, sampling,
    review, filter) per generation n >= 1 and a classifier unit per generation and arch, and multiplies
    each by the mean wall time of the units of its kind (generator, or classifier of that arch) finished
    so far in this process. A unit's wall time runs from the end of the unit before it, so the setup
    between phases counts; the once-per-run judge and subgroup oracle fits do not.

    During a fit, ``fit_progress`` is told the share of the fit's steps done (``FitProgress``: Lightning's
    ``global_step`` of ``max_steps``, or the batches of ``max_epochs``) and prints, at most every
    ``interval`` seconds, a line such as ``[selfloop] g1/3 generator · 25% of its steps · run ETA 9 min 10 s``:
    the running unit's wall time so far, divided by that share, stands for its whole time and for the
    other units of its kind not timed yet (for a generator unit it leaves out the sampling and filtering
    after the fit). While a kind still left has no estimate at all, the line says ``run ETA unknown``,
    never a lower bound that a long fit in progress would make meaningless.

    Args:
        generations: N, the last generation of the run.
        archs: the classifier panel.
        stream: where lines go (default: ``sys.stdout`` at the time of writing).
        clock: seconds of a monotonic clock.
        interval: the least seconds between two lines of one fit's progress.
    """

    def __init__(
        self,
        generations: int,
        archs: Sequence[str],
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 30.0,
    ) -> None:
        self.generations = generations
        self.archs = tuple(archs)
        self.stream = stream
        self.clock = clock
        self.interval = interval
        self._step_mark: float | None = None
        self._unit_mark: float | None = None
        self._durations: dict[str, list[float]] = {}

    def phase_started(self, phase: Phase) -> None:
        """Called when ``phase`` begins (``PhaseRunner.begin``)."""
        now = self._now()
        self._step_mark = now
        self._write(f"{self._label(phase)} · start")

    def phase_completed(self, phase: Phase, completed: Collection[str]) -> None:
        """Called when ``phase`` is recorded as done; ``completed``: every phase key done in the run."""
        now = self._now()
        elapsed = now - (self._step_mark if self._step_mark is not None else now)
        self._step_mark = now
        kind = self._unit_kind(phase)
        if kind is not None:
            self._durations.setdefault(kind, []).append(now - self._unit_mark)
            self._unit_mark = now
        elif phase.step in ("subgroup_oracle", "judge"):
            self._unit_mark = now
        self._write(f"{self._label(phase)} · done in {format_duration(elapsed)} · {self._eta(completed)}")

    def fit_progress(self, phase: Phase, fraction: float, completed: Collection[str]) -> None:
        """Called during ``phase``'s fit with the share of its steps done, in (0, 1]; ``completed``: every
        phase key done in the run. Prints a line when ``interval`` seconds have passed since the phase
        started or since its last such line."""
        now = self._now()
        if fraction <= 0 or self._step_mark is None or now - self._step_mark < self.interval:
            return
        self._step_mark = now
        running = None
        unit = self._unit_of(phase)
        if unit is not None:
            projected = (now - self._unit_mark) / min(fraction, 1.0)
            running = _RunningUnit(*unit, projected, min(fraction, 1.0))
        self._write(f"{self._label(phase)} · {fraction:.0%} of its steps · {self._eta(completed, running)}")

    def _now(self) -> float:
        now = self.clock()
        if self._unit_mark is None:
            self._unit_mark = now
        return now

    @staticmethod
    def _unit_kind(phase: Phase) -> str | None:
        """The kind of unit that ``phase`` ends, or ``None`` when it ends none."""
        if phase.step == "filter":
            return GENERATOR_ARCH
        if phase.step == "classifier":
            return f"classifier {phase.arch}"
        return None

    @staticmethod
    def _unit_of(phase: Phase) -> tuple[str, str] | None:
        """The unit (kind, the phase key that ends it) that ``phase`` is part of; ``None`` for none."""
        if phase.step in ("generator", "sample", "review_exported", "filter"):
            return GENERATOR_ARCH, f"g{phase.generation}/filter"
        if phase.step == "classifier":
            return f"classifier {phase.arch}", phase.key
        return None

    def _units(self) -> list[tuple[str, str]]:
        """Every unit of the run as (kind, the phase key that ends it), in run order."""
        units = []
        for n in range(self.generations + 1):
            if n >= 1:
                units.append((GENERATOR_ARCH, f"g{n}/filter"))
            units += [(f"classifier {arch}", f"g{n}/classifier/{arch}") for arch in self.archs]
        return units

    def _eta(self, completed: Collection[str], running: _RunningUnit | None = None) -> str:
        seconds = 0.0
        for kind, key in self._units():
            if key in completed:
                continue
            durations = self._durations.get(kind)
            if running is not None and key == running.key:
                seconds += running.projected * (1 - running.fraction)
            elif durations:
                seconds += sum(durations) / len(durations)
            elif running is not None and kind == running.kind:
                seconds += running.projected
            else:
                return "run ETA unknown"
        return f"run ETA {format_duration(seconds)}"

    def _label(self, phase: Phase) -> str:
        parts = [f"g{phase.generation}/{self.generations}", phase.step, phase.arch]
        return " ".join([PREFIX, *(p for p in parts if p)])

    def _write(self, line: str) -> None:
        print(line, file=self.stream or sys.stdout, flush=True)


@dataclass(frozen=True)
class _RunningUnit:
    """The unit whose fit is in progress: its kind and key, its projected wall time, the share done."""

    kind: str
    key: str
    projected: float
    fraction: float


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return math.nan


def summary_rows(rows: Iterable[Mapping[str, str]]) -> list[dict[str, object]]:
    """Per generation and classifier arch: the columns of the summary table (``None`` where not logged).

    Args:
        rows: ``metrics.csv`` rows (``MetricsLog.rows``): generation, arch, metric, value.
    """
    by_key: dict[tuple[int, str], dict[str, float]] = {}
    archs: list[str] = []
    for row in rows:
        key = (int(row["generation"]), row["arch"])
        by_key.setdefault(key, {})[row["metric"]] = _number(row["value"])
        if row["arch"] != GENERATOR_ARCH and row["arch"] not in archs:
            archs.append(row["arch"])
    table = []
    for generation in sorted({n for n, _ in by_key}):
        generator = by_key.get((generation, GENERATOR_ARCH), {})
        for arch in archs:
            metrics = by_key.get((generation, arch), {})
            # An arch row needs a classifier metric: the subgroup oracle logs only its own accuracy.
            if not any(c in metrics for c in CLASSIFIER_COLUMNS):
                continue
            entry: dict[str, object] = {"generation": generation, "arch": arch}
            entry.update({c: metrics.get(c) for c in CLASSIFIER_COLUMNS})
            entry.update({c: generator.get(c) for c in GENERATOR_COLUMNS})
            table.append(entry)
    return table


def _cell(column: str, value: object) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.2f}" if column.startswith("fid") else f"{value:.4f}"
    return str(value)


def summary_table(rows: Iterable[Mapping[str, str]]) -> str:
    """The summary as aligned text columns: generation, arch, acc, md, worst_group_acc, gen_label_acc,
    fid_raw (accuracies to 4 decimals, FID to 2; ``-`` where not logged, e.g. the generator columns
    of generation 0)."""
    columns = ("generation", "arch", *CLASSIFIER_COLUMNS, *GENERATOR_COLUMNS)
    cells = [list(columns)] + [[_cell(c, entry[c]) for c in columns] for entry in summary_rows(rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    text = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    ]
    return "\n".join(line.rstrip() for line in text)


def next_commands(run_dir: str | Path, runs_root: str | Path) -> list[str]:
    """The commands that look at a finished run: its TensorBoard summary and the report of its runs."""
    summary = Path(run_dir) / "summary"
    return [
        f"tensorboard --logdir {shlex.quote(str(summary))}",
        f"selfloop report {shlex.quote(str(runs_root))} --out report/",
    ]


@rank_zero_only
def print_summary(
    runner: PhaseRunner, runs_root: str | Path | None = None, stream: TextIO | None = None
) -> None:
    """Print the run's summary table (from its metrics rows) and the next commands (rank 0 only).

    Args:
        runner: the run's phases; the table reads ``runner.metrics``.
        runs_root: the folder ``selfloop report`` is pointed at (default: the run directory's parent,
            which holds every version of the run's config name).
        stream: where the text goes (default: ``sys.stdout``).
    """
    run_dir = runner.run.path
    root = run_dir.parent if runs_root is None else runs_root
    lines = [
        f"{PREFIX} summary of {run_dir}",
        summary_table(runner.metrics.rows),
        "",
        "next:",
        *(f"  {command}" for command in next_commands(run_dir, root)),
    ]
    print("\n".join(lines), file=stream or sys.stdout, flush=True)

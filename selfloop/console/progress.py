"""A line when a phase starts and one when it ends, with the run's estimated time left."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from selfloop.core.catalogue import GENERATOR_ARCH

if TYPE_CHECKING:
    from selfloop.run.phases import Phase

PREFIX = "[selfloop]"


def format_duration(seconds: float) -> str:
    """``12.3 s``, ``1 min 40 s``, ``2 h 05 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def parse_duration(text: str) -> float:
    """Seconds of a :func:`format_duration` text (``12.3 s``, ``1 min 40 s``, ``2 h 05 min``)."""
    words = text.split()
    units = {"h": 3600.0, "min": 60.0, "s": 1.0}
    if len(words) % 2 or any(unit not in units for unit in words[1::2]):
        raise ValueError(f"not a duration of the console: {text!r}")
    return sum(float(number) * units[unit] for number, unit in zip(words[::2], words[1::2], strict=True))


class PhaseProgress:
    """Prints a line when a phase starts and when it ends, with the run's estimated time left.

    Lines look like ``[selfloop] g2/3 classifier lenet · done in 12.3 s · run ETA 1 min 40 s``. Training
    phases (generator, classifier, subgroup oracle) print a start line; every step prints an end line
    (the generator's sample, review and filter steps too, timed from the step before them).

    The ETA counts the run's units that are not done yet, a generator unit (generator fit, sampling,
    review, filter) per generation n >= 1 and a classifier unit per generation and arch, and multiplies
    each by the mean wall time of the units of its kind (generator, or classifier of that arch) finished
    so far: in this process, and, for a resumed run, in the processes before it (``recorded``: the
    manifest's ``unit_seconds``, which ``phase_completed``'s return values fill). A unit's wall time runs
    from the end of the unit before it, so the setup between phases counts; the once-per-run judge and
    subgroup oracle fits do not.

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
        recorded: the wall seconds of units finished before this process, by the phase key that ends them.
    """

    def __init__(
        self,
        generations: int,
        archs: Sequence[str],
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 30.0,
        recorded: Mapping[str, float] | None = None,
    ) -> None:
        self.generations = generations
        self.archs = tuple(archs)
        self.stream = stream
        self.clock = clock
        self.interval = interval
        self._step_mark: float | None = (
            None  # when the step now running began: its "done in" counts from here
        )
        self._line_mark: float | None = None  # when the running fit's last line was printed
        self._unit_mark: float | None = None
        self._durations: dict[str, list[float]] = {}
        for kind, key in self._units():
            if recorded and key in recorded:
                self._durations.setdefault(kind, []).append(recorded[key])

    def phase_started(self, phase: Phase) -> None:
        """Called when ``phase`` begins (``PhaseRunner.begin``)."""
        now = self._now()
        self._step_mark = self._line_mark = now
        self._write(f"{self._label(phase)} · start")

    def phase_completed(self, phase: Phase, completed: Collection[str]) -> float | None:
        """Called when ``phase`` is recorded as done; ``completed``: every phase key done in the run. Returns
        the wall seconds of the unit that ``phase`` ends, or ``None`` when it ends none."""
        now = self._now()
        elapsed = now - (self._step_mark if self._step_mark is not None else now)
        self._step_mark = self._line_mark = now
        kind = self._unit_kind(phase)
        unit_seconds = None
        if kind is not None:
            unit_seconds = now - self._unit_mark
            self._durations.setdefault(kind, []).append(unit_seconds)
            self._unit_mark = now
        elif phase.step in ("subgroup_oracle", "judge"):
            self._unit_mark = now
        self._write(f"{self._label(phase)} · done in {format_duration(elapsed)} · {self._eta(completed)}")
        return unit_seconds

    def fit_progress(self, phase: Phase, fraction: float, completed: Collection[str]) -> None:
        """Called during ``phase``'s fit with the share of its steps done, in (0, 1]; ``completed``: every
        phase key done in the run. Prints a line when ``interval`` seconds have passed since the phase
        started or since its last such line."""
        now = self._now()
        if fraction <= 0 or self._line_mark is None or now - self._line_mark < self.interval:
            return
        self._line_mark = now
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

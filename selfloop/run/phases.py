"""The phase: the unit of a run that is skipped when done, seeded, and recorded with its outputs' hashes.

Every phase key of a run is spelled here once (``Phase.key``); the loop, the callbacks and the analysis
name phases through the constructors below, never through strings of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import lightning as L
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from selfloop.run.atomic import atomic_torch_save, sha256_file
from selfloop.run.layout import RunDirectory
from selfloop.run.manifest import Manifest
from selfloop.run.metrics_log import MetricsFileError, MetricsLog
from selfloop.run.queue import StackingQueue
from selfloop.run.seeding import phase_seed


@dataclass(frozen=True)
class Phase:
    """One step of one generation: ``g<n>/<step>`` or, per classifier arch, ``g<n>/<step>/<arch>``.

    Args:
        generation: n (0 = the real-data generation).
        step: ``generator``, ``sample``, ``review_exported``, ``filter``, ``classifier`` or
            ``subgroup_oracle``.
        arch: the classifier arch of per-arch steps.
    """

    generation: int
    step: str
    arch: str = ""

    @classmethod
    def generator(cls, n: int) -> Phase:
        return cls(n, "generator")

    @classmethod
    def sample(cls, n: int) -> Phase:
        return cls(n, "sample")

    @classmethod
    def review_exported(cls, n: int) -> Phase:
        return cls(n, "review_exported")

    @classmethod
    def filter(cls, n: int) -> Phase:
        return cls(n, "filter")

    @classmethod
    def classifier(cls, n: int, arch: str) -> Phase:
        return cls(n, "classifier", arch)

    @classmethod
    def subgroup_oracle(cls) -> Phase:
        return cls(0, "subgroup_oracle")

    @classmethod
    def judge(cls) -> Phase:
        return cls(0, "judge")

    @property
    def key(self) -> str:
        return "/".join(part for part in (f"g{self.generation}", self.step, self.arch) if part)

    def seed(self, base_seed: int, purpose: str = "") -> int:
        """The phase's seed (``purpose``: a stream of its own inside the phase, e.g. ``loader``)."""
        step = f"{self.step}/{purpose}" if purpose else self.step
        return phase_seed(base_seed, self.generation, step, self.arch)

    def outputs(self, run: RunDirectory) -> tuple[Path, ...]:
        """The files this phase writes that later phases read (the queue checks its own shards)."""
        if self.step == "generator":
            return (run.generator_weights(self.generation),)
        if self.step == "sample":
            return (run.candidates_file(self.generation),)
        if self.step == "classifier":
            return (run.classifier_weights(self.generation, self.arch),)
        if self.step == "subgroup_oracle":
            return (run.subgroup_oracle_weights,)
        if self.step == "judge":
            return (run.judge_weights,)
        return ()


class PhaseListener(Protocol):
    """Told when a phase begins and when it completes (``selfloop.console.progress.PhaseProgress`` prints both)."""

    def phase_started(self, phase: Phase) -> None: ...

    def phase_completed(self, phase: Phase, completed: Collection[str]) -> float | None:
        """``completed``: the key of every phase done in the run so far, ``phase`` included. Returns the wall
        seconds of the unit of work that ``phase`` ends (recorded in the manifest), or ``None``."""


class PhaseRunner:
    """Everything a run keeps on disk between phases, and the rules for phases.

    A phase is *done* when the manifest lists it and each of its outputs matches the hash recorded when
    it was written; ``begin`` seeds it; ``complete`` records it (with its seed and the queue's state)
    durably. Files are written by rank 0 atomically (``save``), then every rank passes a barrier.

    Args:
        run: the run directory.
        manifest: the manifest.
        queue: the stacking queue whose state ``complete`` writes into the manifest.
        metrics: the metrics log.
        progress: told of every ``begin`` and ``complete`` on rank 0 (e.g. a
            ``selfloop.console.progress.PhaseProgress``); ``None`` prints nothing.
        guard: called before every manifest save; raises to stop the run (``RunLock.check``: the lock
            file was deleted under the run).
    """

    def __init__(
        self,
        run: RunDirectory,
        manifest: Manifest,
        queue: StackingQueue,
        metrics: MetricsLog,
        progress: PhaseListener | None = None,
        guard: Callable[[], None] | None = None,
    ) -> None:
        self.run = run
        self.manifest = manifest
        self.queue = queue
        self.metrics = metrics
        self.progress = progress
        self.guard = guard

    @property
    def base_seed(self) -> int:
        return self.manifest.seed

    def done(self, phase: Phase) -> bool:
        """Whether ``phase`` finished and its outputs are intact."""
        return self.manifest.is_done(phase.key) and all(self.intact(p) for p in phase.outputs(self.run))

    def begin(self, phase: Phase) -> int:
        """Seed every global RNG (python, numpy, torch) for ``phase`` and return the seed."""
        seed = phase.seed(self.base_seed)
        L.seed_everything(seed, workers=True, verbose=False)
        self._report_started(phase)
        return seed

    def complete(self, phase: Phase) -> None:
        """Mark ``phase`` finished (with its unit's wall seconds, when the progress listener times one) and make
        the manifest (with the queue's state) durable."""
        self.manifest.mark_done(phase.key)
        self.manifest.seeds[phase.key] = phase.seed(self.base_seed)
        self._report_completed(phase)
        self.save_manifest()

    @rank_zero_only
    def _report_started(self, phase: Phase) -> None:
        if self.progress is not None:
            self.progress.phase_started(phase)

    @rank_zero_only
    def _report_completed(self, phase: Phase) -> None:
        if self.progress is None:
            return
        seconds = self.progress.phase_completed(phase, self.manifest.completed)
        if seconds is not None:
            self.manifest.unit_seconds[phase.key] = seconds

    @rank_zero_only
    def save_manifest(self) -> None:
        if self.guard is not None:
            self.guard()
        self.manifest.queue = self.queue.state()
        if self.manifest.metrics is not None:
            self.manifest.metrics = self.metrics.rows
        self.manifest.save(self.run.manifest_file)

    @rank_zero_only
    def restore_metrics(self) -> None:
        """Make ``metrics.csv`` hold exactly the rows of the finished phases, as the manifest recorded them.

        Rows after the recorded ones belong to a phase that was cut short (it is redone) and are dropped
        silently; a missing file, or recorded rows that were changed, are rebuilt with a warning.
        """
        recorded = self.manifest.metrics
        if recorded is None:
            return
        try:
            current = self.metrics.read()
        except MetricsFileError:
            current = None
        if current == recorded:
            return
        if current is None or current[: len(recorded)] != recorded:
            rank_zero_warn(
                f"{self.metrics.csv_path} is missing or differs from the rows {self.run.manifest_file} recorded "
                "(edited or damaged); rebuilt it from the manifest"
            )
        self.metrics.write(recorded)

    def save(self, path: Path, obj: Any, strategy: Strategy) -> None:
        """Rank 0 ``torch.save``-s atomically; after a barrier every rank records the file's hash.

        The hash becomes durable with the next ``complete``.
        """
        if strategy.is_global_zero:
            atomic_torch_save(path, obj)
        strategy.barrier()
        self.record(path)

    def record(self, path: Path) -> None:
        """Record the hash of ``path`` as written (durable with the next manifest save)."""
        self.manifest.files[self._relative(path)] = sha256_file(path)

    def recorded(self, path: Path) -> bool:
        """Whether the manifest holds a hash of ``path``."""
        return self._relative(path) in self.manifest.files

    def intact(self, path: Path) -> bool:
        """Whether ``path`` exists and matches the hash recorded when it was written."""
        recorded = self.manifest.files.get(self._relative(path))
        return path.is_file() and recorded is not None and sha256_file(path) == recorded

    def _relative(self, path: Path) -> str:
        return str(Path(path).relative_to(self.run.path))

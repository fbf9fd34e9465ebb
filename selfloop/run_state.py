"""Everything a run keeps on disk between phases, held together for the loop and its callbacks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.strategies import Strategy
from lightning.pytorch.utilities import rank_zero_only

from selfloop.data.queue import StackingQueue
from selfloop.io import atomic_torch_save, sha256_file
from selfloop.manifest import Manifest
from selfloop.metrics_log import MetricsLog
from selfloop.run_dir import RunDirectory


@dataclass
class RunState:
    """The run directory, its manifest, the stacking queue and the metrics log.

    Args:
        run: the run directory.
        manifest: the manifest (saved by ``complete``).
        queue: the stacking queue whose state ``complete`` writes into the manifest.
        metrics: the metrics log.
    """

    run: RunDirectory
    manifest: Manifest
    queue: StackingQueue
    metrics: MetricsLog

    def complete(self, key: str, seed: int | None = None) -> None:
        """Mark a phase finished and make the manifest (with the queue's state) durable."""
        self.manifest.mark_done(key)
        if seed is not None:
            self.manifest.seeds[key] = seed
        self.save_manifest()

    @rank_zero_only
    def save_manifest(self) -> None:
        self.manifest.queue = self.queue.state()
        self.manifest.save(self.run.manifest_file)

    def save_file(self, path: Path, obj: Any, strategy: Strategy) -> None:
        """Rank 0 ``torch.save``-s atomically; after a barrier every rank records the file's hash.

        The hash becomes durable with the next ``complete``.
        """
        if strategy.is_global_zero:
            atomic_torch_save(path, obj)
        strategy.barrier()
        self.manifest.files[self._relative(path)] = sha256_file(path)

    def intact(self, path: Path) -> bool:
        """Whether ``path`` exists and matches the hash recorded when it was written."""
        recorded = self.manifest.files.get(self._relative(path))
        return path.is_file() and recorded is not None and sha256_file(path) == recorded

    def _relative(self, path: Path) -> str:
        return str(Path(path).relative_to(self.run.path))

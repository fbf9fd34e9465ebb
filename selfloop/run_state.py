"""Everything a run keeps on disk between phases, held together for the loop and its callbacks."""

from __future__ import annotations

from dataclasses import dataclass

from lightning.pytorch.utilities import rank_zero_only

from selfloop.data.queue import StackingQueue
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

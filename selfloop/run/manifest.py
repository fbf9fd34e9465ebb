"""The run manifest: what has been done, what the queue holds, and which seeds were used."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from selfloop.run.atomic import atomic_write_json

FORMAT = 1


class ManifestError(RuntimeError):
    """The manifest cannot be read."""


@dataclass
class Manifest:
    """State of a run, saved atomically after every change.

    Args:
        seed: the run's base seed.
        completed: keys of finished phases, e.g. ``g1/generator``, ``g1/filter``, ``g2/classifier/lenet``.
        queue: the stacking queue's shards, oldest first (see ``StackingQueue.state``).
        seeds: the seed each phase ran with, by phase key.
        files: SHA-256 of every file a later phase reads, by path relative to the run directory.
        config: the result-shaping config the run started with (see ``selfloop.run.compat``).
        metrics: the rows of ``metrics.csv`` as of the last finished phase, from which a missing or
            edited ``metrics.csv`` is rebuilt (``None`` in manifests written before it was recorded).
    """

    seed: int
    completed: list[str] = field(default_factory=list)
    queue: list[dict] = field(default_factory=list)
    seeds: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    metrics: list[dict] | None = None
    format: int = FORMAT

    def is_done(self, key: str) -> bool:
        return key in self.completed

    def mark_done(self, key: str) -> None:
        if key not in self.completed:
            self.completed.append(key)

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Read a manifest.

        Raises:
            ManifestError: naming the file when it is not a manifest this version wrote.
        """
        try:
            raw = json.loads(Path(path).read_text())
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT}")
            manifest = cls(**raw)
            if not all(isinstance(k, str) for k in manifest.completed):
                raise ValueError("'completed' must list phase keys")
            return manifest
        except (OSError, ValueError, TypeError, AttributeError) as err:
            raise ManifestError(
                f"cannot read the run manifest {path} ({err}); it was edited or damaged. "
                "Restore it, or start a new run in another --loop.run_dir"
            ) from None

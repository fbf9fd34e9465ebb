"""The run manifest: what has been done, what the queue holds, and which seeds were used."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from selfloop.core.errors import SelfLoopError
from selfloop.run.atomic import atomic_write_json

FORMAT = 1


class ManifestError(SelfLoopError, RuntimeError):
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
        unit_seconds: the wall seconds of each finished unit of the console's run ETA (a generator unit, keyed
            ``g<n>/filter``; a classifier fit, keyed by its phase), as the process that finished it measured
            them; a resumed run estimates its time left from them.
    """

    seed: int
    completed: list[str] = field(default_factory=list)
    queue: list[dict] = field(default_factory=list)
    seeds: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    metrics: list[dict] | None = None
    unit_seconds: dict[str, float] = field(default_factory=dict)
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
        """Read a manifest, checking the type of every field.

        Raises:
            ManifestError: naming the file when it is not a manifest this version wrote (not JSON, another
                format, or a field of the wrong shape).
        """
        try:
            raw = json.loads(Path(path).read_text())
            if not isinstance(raw, dict):
                raise ValueError(f"a JSON {type(raw).__name__}, expected an object")
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT}")
            problem = _shape_problem(raw)
            if problem:
                raise ValueError(problem)
            return cls(**raw)
        except (OSError, ValueError, TypeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            raise ManifestError(
                f"cannot read the run manifest {path} ({reason}); it was edited or damaged. "
                "Restore it, or start a new run in another --loop.run_dir"
            ) from None


def _is_map(value: object, values: type | tuple[type, ...]) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, values) and not isinstance(v, bool) for k, v in value.items()
    )


_SHARD_FIELDS = {"generation": int, "file": str, "sha256": str, "count": int}


def _shape_problem(raw: dict) -> str | None:
    """What is wrong with the shape of a manifest's fields (``None`` if nothing is)."""
    unknown = sorted(set(raw) - {f.name for f in fields(Manifest)})
    if unknown:
        return f"unknown field(s) {unknown}"
    if not isinstance(raw.get("seed"), int) or isinstance(raw.get("seed"), bool):
        return "'seed' must be an integer"
    if not isinstance(raw.get("completed", []), list) or not all(
        isinstance(k, str) for k in raw.get("completed", [])
    ):
        return "'completed' must list phase keys"
    queue = raw.get("queue", [])
    if not isinstance(queue, list) or not all(
        isinstance(row, dict)
        and set(row) == set(_SHARD_FIELDS)
        and all(isinstance(row[k], t) and not isinstance(row[k], bool) for k, t in _SHARD_FIELDS.items())
        for row in queue
    ):
        return "'queue' must list shards (generation, file, sha256, count)"
    if not _is_map(raw.get("seeds", {}), int):
        return "'seeds' must map phase keys to integers"
    if not _is_map(raw.get("files", {}), str):
        return "'files' must map paths to SHA-256 hashes"
    if not isinstance(raw.get("config", {}), dict):
        return "'config' must be an object"
    if not _is_map(raw.get("unit_seconds", {}), (int, float)):
        return "'unit_seconds' must map phase keys to seconds"
    metrics = raw.get("metrics")
    if metrics is not None and not (isinstance(metrics, list) and all(_is_map(row, str) for row in metrics)):
        return "'metrics' must list rows of text values"
    return None

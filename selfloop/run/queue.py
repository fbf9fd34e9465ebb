"""Data stacking: a bounded FIFO queue of per-generation shards of generated images."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from selfloop.core.errors import SelfLoopError
from selfloop.data.image_set import ImageSet
from selfloop.run.atomic import atomic_torch_save, sha256_file


class ShardError(SelfLoopError, RuntimeError):
    """A queue shard is missing or does not match the hash the manifest recorded."""


@dataclass(frozen=True)
class Shard:
    """Provenance of one generation's kept samples."""

    generation: int
    file: str
    sha256: str
    count: int


class StackingQueue:
    """FIFO of per-generation shards on disk, holding at most ``capacity`` generations (``None``: all).

    Each shard is a ``torch.save`` file with uint8 ``images (N, C, H, W)``, int64 ``labels`` (the
    intended classes), float32 ``scores`` (the filter's scores of the kept samples) and the
    ``generation`` id. The queue's state (which shards, their hashes) lives in the run manifest:
    ``state()`` / ``from_state`` move it there and back.

    Durability: ``push`` writes the new shard atomically and returns the evicted shards without
    deleting them; the caller makes the manifest durable first and then calls ``discard``, so a crash
    never leaves a manifest that names a deleted shard.

    Args:
        folder: where shard files live.
        capacity: the most generations kept (the paper's D/S; 3 in its experiments; 1 replaces each
            generation's samples with the next one's; ``None`` accumulates every generation's).
        shards: shards already in the queue, oldest first.
    """

    def __init__(self, folder: str | Path, capacity: int | None, shards: list[Shard] | None = None) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"--loop.queue_capacity must be >= 1, got {capacity}")
        self.folder = Path(folder)
        self.capacity = capacity
        self.shards: list[Shard] = list(shards or [])

    def __len__(self) -> int:
        return len(self.shards)

    @property
    def generations(self) -> list[int]:
        """Generation ids in the queue, oldest first."""
        return [s.generation for s in self.shards]

    def shard_path(self, generation: int) -> Path:
        return self.folder / f"gen_{generation:03d}.pt"

    def push(self, generation: int, images: Tensor, labels: Tensor, scores: Tensor) -> list[Shard]:
        """Write a generation's shard and enqueue it; return the shards evicted to respect capacity."""
        if images.dtype != torch.uint8:
            raise ValueError(f"shard images must be uint8, got {images.dtype}")
        if generation in self.generations:
            raise ValueError(f"generation {generation} is already in the queue")
        path = self.shard_path(generation)
        atomic_torch_save(path, self._payload(generation, images, labels, scores))
        self.shards.append(Shard(generation, path.name, sha256_file(path), len(images)))
        overflow = 0 if self.capacity is None else len(self.shards) - self.capacity
        evicted = self.shards[: max(0, overflow)]
        self.shards = self.shards[len(evicted) :]
        return evicted

    def rewrite(self, generation: int, images: Tensor, labels: Tensor, scores: Tensor) -> bool:
        """Rewrite a queued generation's shard file; return whether it matches the recorded hash.

        When it does not, the queue records the new hash, so the manifest stays truthful.
        """
        index = self.generations.index(generation)
        path = self.shard_path(generation)
        atomic_torch_save(path, self._payload(generation, images, labels, scores))
        digest = sha256_file(path)
        matches = digest == self.shards[index].sha256
        self.shards[index] = Shard(generation, path.name, digest, len(images))
        return matches

    def verify(self, shard: Shard) -> bool:
        """Whether a shard's file exists and matches its recorded hash."""
        path = self.folder / shard.file
        return path.is_file() and sha256_file(path) == shard.sha256

    def discard(self, evicted: list[Shard]) -> None:
        """Delete evicted shard files (call after the manifest no longer names them)."""
        for shard in evicted:
            (self.folder / shard.file).unlink(missing_ok=True)

    def load_shard(self, shard: Shard) -> dict:
        """Read a shard after checking its hash against the manifest."""
        path = self.folder / shard.file
        if not path.is_file():
            raise ShardError(
                f"queue shard {path} is missing; the manifest lists it for generation {shard.generation}"
            )
        if not self.verify(shard):
            raise ShardError(
                f"queue shard {path} does not match the hash in the manifest (truncated or edited); "
                "delete it and rerun the same command to regenerate that generation"
            )
        return torch.load(path, map_location="cpu", weights_only=True)

    def load(self, generations: list[int] | None = None) -> ImageSet | None:
        """The generated images of ``generations`` (default: the whole queue) as one image set, or
        ``None`` when there are none.

        Raises:
            ShardError: when one of ``generations`` is no longer in the queue, or its shard is damaged.
        """
        wanted = self.generations if generations is None else generations
        missing = sorted(set(wanted) - set(self.generations))
        if missing:
            raise ShardError(
                f"the samples of generation(s) {missing} have left the queue (now {self.generations})"
            )
        if not wanted:
            return None
        parts = [self.load_shard(s) for s in self.shards if s.generation in wanted]
        return ImageSet.generated(
            torch.cat([p["images"] for p in parts]), torch.cat([p["labels"] for p in parts])
        )

    @staticmethod
    def _payload(generation: int, images: Tensor, labels: Tensor, scores: Tensor) -> dict:
        return {
            "images": images.contiguous().cpu(),
            "labels": labels.long().cpu(),
            "scores": scores.float().cpu(),
            "generation": generation,
        }

    def state(self) -> list[dict]:
        """The queue as JSON-serialisable rows, oldest first."""
        return [asdict(s) for s in self.shards]

    @classmethod
    def from_state(cls, folder: str | Path, capacity: int | None, state: list[dict]) -> StackingQueue:
        """Rebuild the queue from ``state()`` rows."""
        return cls(folder, capacity, [Shard(**row) for row in state])

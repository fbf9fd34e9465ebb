"""Errors a user can act on, shared by several modules."""

from __future__ import annotations

from pathlib import Path


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the run stops and keeps everything produced so far."""


class RunInterrupted(RuntimeError):
    """The run was asked to stop (SIGTERM, SLURM's pre-emption signal); rerunning it resumes."""


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights are not in the cache and cannot be downloaded.

    Args:
        message: Human-readable explanation (names the expected path, the URL and how to fetch it).
        path: Where the weights file is expected.
        url: Where the weights file can be downloaded from.
    """

    def __init__(self, message: str, path: Path | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.url = url

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type, tuple[str, Path | None, str | None]]:
        return type(self), (self.message, self.path, self.url)

"""Errors of the data sets.

All are ``SelfLoopError``s (one line from the command line) and keep the built-in base
(``FileNotFoundError``, ``ValueError``) that callers catch.
"""

from __future__ import annotations

from pathlib import Path

from selfloop.core.errors import SelfLoopError


class DatasetNotFoundError(SelfLoopError, FileNotFoundError):
    """A data set's files are missing; the message names the path and how to obtain them."""


class CorruptDatasetError(SelfLoopError, ValueError):
    """A data set file exists but cannot be read (truncated, corrupt, or not the expected format).

    Args:
        path: the offending file.
        reason: what is wrong with it (and, ideally, how to get a good copy).
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[Path, str]]:
        # Keeps the error picklable (DataLoader workers, multiprocessing) despite the custom __init__.
        return type(self), (self.path, self.reason)


class UntrustedPickleError(CorruptDatasetError):
    """A data set pickle references a callable its official release never does; it was refused unrun.

    See :func:`selfloop.data.safe_pickle.load_restricted`.
    """

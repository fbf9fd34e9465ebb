"""Durable file writes: every file a later phase reads is written atomically.

A reader never sees a half-written file: the bytes go to a temporary file in the same folder, are
fsync-ed, and the temporary file is renamed over the target with ``os.replace`` (atomic on POSIX and
Windows when both paths are on one file system, which the shared folder guarantees).

A write that fails for a reason of the operating system (disk full, no permission, I/O error) raises
``RunWriteError``: one line naming the file and the free space, since the target is left as it was.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import torch

from selfloop.core.errors import SelfLoopError

# What torch.save raises when the file object under its zip writer fails (the OSError is only in
# the exception's context, if at all).
_TORCH_WRITE_FAILURES = ("inline_container.cc", "unexpected pos", "file write failed")
# ``atomic_write``'s temporary files: ``.<target name>.<mkstemp's random part>.tmp``.
_TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")
_SPACE = {errno.ENOSPC, errno.EDQUOT}
_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}


class RunWriteError(SelfLoopError, OSError):
    """A run's file could not be written (disk full, permissions, I/O error).

    The file being written is left as it was (the bytes went to a temporary file, now removed), so
    every finished phase is intact and rerunning the same command resumes.

    Args:
        message: one line naming the path, the reason, the free space and what to do.
        path: the file that was being written.
    """

    def __init__(self, message: str, path: str | Path | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else Path(path)
        self.errno = code

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type, tuple[str, Path | None, int | None]]:
        return type(self), (self.message, self.path, self.errno)


@contextmanager
def write_errors_named(path: str | Path) -> Iterator[None]:
    """Turn an operating-system failure while writing ``path`` into a ``RunWriteError``.

    Raises:
        RunWriteError: for an ``OSError``, or the ``RuntimeError`` torch.save raises when its file
            object fails, naming ``path``, the reason and the free space on its file system.
    """
    try:
        yield
    except RunWriteError:
        raise
    except (OSError, RuntimeError) as err:
        os_error = _os_error_in(err)
        if os_error is None and not (
            isinstance(err, RuntimeError) and any(s in str(err) for s in _TORCH_WRITE_FAILURES)
        ):
            raise
        code = os_error.errno if os_error is not None else None
        reason = (os_error.strerror or str(os_error)) if os_error is not None else f"write failed ({err})"
        raise RunWriteError(_message(Path(path), reason, code), path, code) from err


def named_write_error(err: BaseException, fallback: str | Path) -> RunWriteError | None:
    """A failure of the file system anywhere in a run (inside a fit: TensorBoard event files, checkpoints) as
    the one-line ``RunWriteError`` of ``atomic_write``; ``None`` when ``err`` is not the file system's.

    Args:
        err: the exception (its causes and contexts are searched for an ``OSError`` with an errno).
        fallback: the path named when the ``OSError`` names none (the run directory).
    """
    if isinstance(err, RunWriteError):
        return err
    os_error = _os_error_in(err)
    if os_error is None or os_error.errno not in _SPACE | _PERMISSION | {errno.EIO}:
        return None
    path = Path(os.fsdecode(os_error.filename)) if os_error.filename is not None else Path(fallback)
    reason = os_error.strerror or str(os_error)
    return RunWriteError(_message(path, reason, os_error.errno), path, os_error.errno)


def _os_error_in(err: BaseException) -> OSError | None:
    """The first ``OSError`` with an errno in ``err`` or its causes and contexts."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        current = current.__cause__ or current.__context__
    return None


def _message(path: Path, reason: str, code: int | None) -> str:
    if code in _SPACE:
        action = "free some space"
    elif code in _PERMISSION:
        action = "make it writable"
    else:
        action = "check the disk"
    return (
        f"cannot write {path}: {reason} ({_free_space(path)} free on that file system). "
        f"The phases already finished are kept: {action} and rerun the same command to resume"
    )


def _free_space(path: Path) -> str:
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return format_bytes(shutil.disk_usage(folder).free)
    except OSError:
        return "unknown space"


def format_bytes(n: float) -> str:
    """``n`` bytes for a message: ``512 B``, ``2.9 MiB``, ``1.7 TiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file atomically.

    Args:
        path: the final file.
        write: called with a binary file object open on a temporary file in the same folder.

    Raises:
        RunWriteError: naming ``path`` when the operating system refuses the write (disk full,
            permissions, I/O error); ``path`` is left as it was.
    """
    path = Path(path)
    with write_errors_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TEMP_SUFFIX, dir=path.parent)
        try:
            # mkstemp creates 0600 files; give the result the permissions a plain open() would.
            os.fchmod(fd, 0o666 & ~_umask())
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    _fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # The rename itself is only durable once the directory entry is flushed.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    """``torch.save`` to ``path`` atomically."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temporary files ``atomic_write`` leaves when its process is killed before the rename.

    Call only while no process writes ``folder`` (its run lock held). Returns the files removed.
    """
    stale = [
        p for p in Path(folder).rglob(f"*{_TEMP_SUFFIX}") if _TEMP_NAME.fullmatch(p.name) and p.is_file()
    ]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

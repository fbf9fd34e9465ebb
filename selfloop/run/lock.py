"""One writer per run directory: an exclusive ``flock`` on ``<run_dir>/.lock``.

The lock belongs to an open file description, so the operating system drops it when the holder
exits in any way (normal exit, exception, SIGKILL, out-of-memory kill): a crashed run never leaves a
stale lock behind, and nothing has to be cleaned up by hand. The file itself stays; it only records
who holds the lock (``pid`` and ``host``, written after the lock is taken) for the refusal message.

The lock is on the file's inode: a user who deletes ``.lock`` mid-run would let a second process lock a
new file of that name. ``check`` finds that out (the holder calls it before every manifest save) and
stops the run in one line.

Advisory ``flock`` locks work between processes on one machine and, on Linux, on NFS (emulated with
byte-range locks since kernel 2.6.12); a file system without lock support fails loudly at ``acquire``.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from types import TracebackType

from selfloop.core.errors import SelfLoopError

LOCK_FILE = ".lock"


class RunLockedError(SelfLoopError, RuntimeError):
    """Another process is writing this run directory.

    Args:
        run_dir: the locked run directory.
        holder: what the holder recorded in the lock file (``pid``, ``host``); empty when unreadable.
    """

    def __init__(self, run_dir: str | Path, holder: dict | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.holder = dict(holder or {})
        pid, host = self.holder.get("pid", "unknown"), self.holder.get("host", "unknown host")
        super().__init__(
            f"run directory {self.run_dir} is in use by another selfloop process (PID {pid} on {host}); "
            "wait for it to finish or pass another --loop.run_dir"
        )

    def __reduce__(self) -> tuple[type, tuple[Path, dict]]:
        return type(self), (self.run_dir, self.holder)


class LockLostError(SelfLoopError, RuntimeError):
    """The lock file of a running run was deleted or replaced: one writer is no longer guaranteed."""


class RunLock:
    """An exclusive lock on a run directory, held until ``release`` or the end of the process.

    Args:
        run_dir: an existing run directory.

    Raises:
        RunLockedError: from ``acquire``, when another open lock file holds it (another process, or
            another ``RunLock`` of this process).

    Example::

        with RunLock(run.path):
            ...  # the only writer of run.path
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock without waiting, and record this process as its holder."""
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(self.run_dir, holder) from None
        except BaseException:
            os.close(fd)
            raise
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        self._fd = fd
        return self

    def check(self) -> None:
        """Raise ``LockLostError`` when the held lock file was deleted or replaced since ``acquire``."""
        if self._fd is None:
            return
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            on_disk = None
        held = os.fstat(self._fd)
        if on_disk is None or (on_disk.st_dev, on_disk.st_ino) != (held.st_dev, held.st_ino):
            raise LockLostError(
                f"the lock file {self.path} was deleted or replaced while this run held it, so another "
                f"selfloop process may be writing {self.run_dir}; stop every selfloop process on it (never "
                "delete .lock by hand) and rerun the same command to resume"
            )

    def release(self) -> None:
        """Give the lock up (closing the file releases it; the file stays for the next holder)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _read_holder(fd: int) -> dict:
    # The holder writes its record right after locking: a reader in that instant sees an empty file.
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}

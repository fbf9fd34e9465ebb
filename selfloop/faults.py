"""Named crash points: a real SIGKILL at a chosen place, so tests can prove that resume is exact."""

from __future__ import annotations

import os
import signal

CRASH_ENV = "SELFLOOP_CRASH_AT"


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL here when ``$SELFLOOP_CRASH_AT`` equals ``name``.

    SIGKILL cannot be caught: nothing is flushed or cleaned up, exactly like a pre-empted node or an
    out-of-memory kill. Unset (always, outside tests) this is a dictionary lookup.
    """
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)

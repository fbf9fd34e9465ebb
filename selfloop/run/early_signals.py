"""Stop signals that arrive while ``selfloop fit`` is still importing the training stack (seconds to tens of
seconds on a loaded machine), before the loop's ``GracefulStop`` exists.

Without a handler, SIGUSR1 (SLURM's pre-emption warning) and SIGTERM kill the process at once: no message,
no requeue. ``install`` is called first thing by ``selfloop fit`` and imports nothing heavy; it records the
signal (and requeues a SLURM job on SIGUSR1 right away), and ``GracefulStop`` takes the recorded signal over,
so the run stops at its first safe point with the usual message and exit status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_received: list[int] = []


def install() -> None:
    """Record the stop signals from now on (``GracefulStop`` replaces these handlers when the loop starts)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _record)


def pending() -> int | None:
    """The first stop signal recorded before the loop's handler took over, if any."""
    return _received[0] if _received else None


def _record(signum: int, frame: FrameType | None) -> None:
    if not _received:
        _received.append(signum)
        print(f"[selfloop] received {signal.Signals(signum).name} while starting: stopping", file=sys.stderr)
    if signum == signal.SIGUSR1:
        requeue_if_slurm()


def requeue_if_slurm() -> None:
    """``scontrol requeue`` this SLURM job (once per step: only from task 0); nothing outside SLURM."""
    if "SLURM_JOB_ID" not in os.environ or os.environ.get("SLURM_PROCID", "0") != "0":
        return
    job_id = os.environ["SLURM_JOB_ID"]
    try:
        subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=60)
        print(f"[selfloop] requeued SLURM job {job_id}", file=sys.stderr)
    except (OSError, subprocess.SubprocessError) as err:
        print(f"[selfloop] could not requeue SLURM job {job_id}: {err}", file=sys.stderr)

"""Graceful stop on SIGTERM and SLURM's pre-emption signal: finish the file, then exit resumable."""

from __future__ import annotations

import os
import signal
from types import FrameType

from lightning.pytorch.utilities import rank_zero_info

from selfloop.core.errors import RunInterrupted
from selfloop.run import early_signals
from selfloop.run.early_signals import STOP_SIGNALS


class GracefulStop:
    """Turns SIGTERM / SIGUSR1 into a request that the loop honours at the next safe point.

    A signal only sets a flag: a file being written is finished (writes are atomic anyway), the
    running phase stays unfinished in the manifest, and ``check`` raises ``RunInterrupted`` between
    phases. Inside a Trainer fit, Lightning's own SIGTERM handling (which calls this handler too)
    stops the fit at the next batch. SIGUSR1 (SLURM: ``#SBATCH --signal=USR1@120``) requeues the job
    with ``scontrol requeue`` when running under SLURM and then takes the SIGTERM path, so the
    requeued job resumes from the run directory.

    Use as a context manager around the loop; previous handlers are restored on exit. A signal recorded
    while the command was starting (``selfloop.run.early_signals``) counts as received on entry.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        # The early handler has requeued a SLURM job on SIGUSR1 already: what is left is to stop.
        self.received = early_signals.pending()
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        rank_zero_info(f"[selfloop] received {signal.Signals(signum).name}: stopping after the current step")
        if signum == signal.SIGUSR1:
            # Every task of the step gets the signal; one requeue is enough (task 0's).
            early_signals.requeue_if_slurm()
            # Take the SIGTERM path, so a running Trainer fit stops at its next batch as well.
            os.kill(os.getpid(), signal.SIGTERM)

    def check(self) -> None:
        """Raise ``RunInterrupted`` if a stop signal arrived."""
        if self.received is not None:
            raise RunInterrupted(
                f"stopped by {signal.Signals(self.received).name}; finished phases are saved. "
                "Rerun the same command (same --loop.run_dir) to resume"
            )

"""GracefulStop turns a real SIGTERM / SIGUSR1 into a request honoured at the next check."""

from __future__ import annotations

import os
import signal

import pytest

from selfloop.errors import RunInterrupted
from selfloop.run.preemption import GracefulStop


def test_sigterm_is_honoured_at_the_next_check_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with GracefulStop() as stop:
        stop.check()  # nothing received: no-op
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.received == signal.SIGTERM
        with pytest.raises(RunInterrupted, match="SIGTERM.*Rerun the same command"):
            stop.check()
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigusr1_outside_slurm_takes_the_sigterm_path(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGUSR1)
        # The handler re-sends SIGTERM to itself, so a running Trainer fit stops as well.
        assert stop.received == signal.SIGTERM
        with pytest.raises(RunInterrupted):
            stop.check()

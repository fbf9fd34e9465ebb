"""GracefulStop turns a real SIGTERM / SIGUSR1 into a request honoured at the next check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfloop.core.errors import RunInterrupted
from selfloop.run.preemption import GracefulStop

ROOT = Path(__file__).resolve().parents[2]


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


def _catches(pid: int, sig: signal.Signals) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (sig - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the signal mask from /proc")
def test_sigusr1_while_the_command_imports_requeues_and_stops_with_a_message(tiny_run_args, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol_calls"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "42", "SLURM_PROCID": "0"}
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "main.py", *tiny_run_args(run)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        while not _catches(proc.pid, signal.SIGUSR1):  # the early handler is in; the heavy imports are not
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.01)
        proc.send_signal(signal.SIGUSR1)
        _, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-3000:]
    assert calls.read_text() == "requeue 42\n"
    assert "Traceback" not in err
    assert "selfloop: stopped by SIGUSR1; finished phases are saved. Rerun the same command" in err

"""One writer per run directory: a second process is refused in one line; a killed holder leaves no lock."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lightning.pytorch.utilities import rank_zero_only

from selfloop.cli import SelfLoopCLI
from selfloop.run.layout import RunDirectory
from selfloop.run.lock import LOCK_FILE, RunLock, RunLockedError

ROOT = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys, time\n"
    "from selfloop.run.lock import RunLock\n"
    "lock = RunLock(sys.argv[1]).acquire()\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of ``tmp_path / 'run'``."""
    run = tmp_path / "run"
    run.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    yield run, proc
    proc.kill()
    proc.wait(timeout=30)


def test_a_second_lock_on_one_directory_is_refused_naming_the_holder(tmp_path):
    first = RunLock(tmp_path).acquire()
    with pytest.raises(RunLockedError) as refused:
        RunLock(tmp_path).acquire()
    message = str(refused.value)
    assert message == (
        f"run directory {tmp_path} is in use by another selfloop process (PID {os.getpid()} on "
        f"{socket.gethostname()}); wait for it to finish or pass another --loop.run_dir"
    )
    assert isinstance(refused.value, RuntimeError) and "\n" not in message
    # The holder's record is what the refusal quotes.
    assert json.loads((tmp_path / LOCK_FILE).read_text()) == {
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    first.release()
    with RunLock(tmp_path) as second:
        assert second.held
    assert not second.held


def test_a_lock_held_by_another_process_names_its_pid(holder):
    run, proc = holder
    with pytest.raises(RunLockedError) as refused:
        RunLock(run).acquire()
    assert f"PID {proc.pid} on {socket.gethostname()}" in str(refused.value)
    assert refused.value.holder == {"pid": proc.pid, "host": socket.gethostname()}


def test_a_sigkilled_holder_leaves_no_lock_behind(holder):
    run, proc = holder
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    # The file stays (it still names the dead holder), the lock went with the process.
    assert (run / LOCK_FILE).is_file()
    lock = RunLock(run).acquire()
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()


def test_ddp_ranks_above_zero_share_rank_zeros_lock(tmp_path, monkeypatch):
    run = RunDirectory(tmp_path)
    held = RunLock(tmp_path).acquire()  # rank 0's
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    with SelfLoopCLI._writer_lock(run):  # a rank-1 process of the same run is not refused
        pass
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    with pytest.raises(RunLockedError):
        SelfLoopCLI._writer_lock(run).__enter__()
    held.release()


def _tree(run: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_two_runs_on_one_directory_one_runs_the_other_is_refused(tiny_run_args, tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "main.py", *tiny_run_args(run, "--loop.generations", "1")]
    first = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and first.poll() is None:
            if (run / "manifest.json").is_file():
                break
            time.sleep(0.1)
        assert first.poll() is None, first.communicate()[1][-3000:]
        # Frozen while the second one tries: nothing the first writes can blur the comparison.
        first.send_signal(signal.SIGSTOP)
        before = _tree(run)
        second = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
        after = _tree(run)
        first.send_signal(signal.SIGCONT)
        _, first_err = first.communicate(timeout=600)
    finally:
        first.kill()
    assert second.returncode == 2, second.stderr[-3000:]
    errors = [line for line in second.stderr.splitlines() if line.startswith("selfloop: error:")]
    assert errors == [
        f"selfloop: error: run directory {run} is in use by another selfloop process (PID {first.pid} on "
        f"{socket.gethostname()}); wait for it to finish or pass another --loop.run_dir"
    ]
    assert "Traceback" not in second.stderr
    assert after == before  # the refused process wrote nothing, the manifest included
    assert first.returncode == 0, first_err[-3000:]
    assert "\n1,lenet," in (run / "metrics.csv").read_text()

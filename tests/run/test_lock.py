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
from helpers.cli_run import run_cli
from lightning.pytorch.utilities import rank_zero_only

from selfloop.run.layout import RunDirectory
from selfloop.run.lock import LOCK_FILE, LockLostError, RunLock, RunLockedError
from selfloop.run.opening import open_run

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
    with open_run(run, {}, "", 0, 3) as runner:  # a rank-1 process of the same run is not refused
        assert runner.manifest.seed == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]  # and writes nothing
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    with pytest.raises(RunLockedError), open_run(run, {}, "", 0, 3):
        pass
    held.release()


def test_deleting_the_lock_file_mid_run_stops_the_holder_in_one_line(tmp_path):
    run = RunDirectory(tmp_path)
    with open_run(run, {"loop.seed": 0}, "loop:\n  seed: 0\n", 0, 3) as runner:
        (tmp_path / LOCK_FILE).unlink()
        second = RunLock(tmp_path).acquire()  # what a second process could now do
        with pytest.raises(LockLostError) as lost:
            runner.save_manifest()  # the holder's next manifest save
        second.release()
    assert str(lost.value) == (
        f"the lock file {tmp_path / LOCK_FILE} was deleted or replaced while this run held it, so another "
        f"selfloop process may be writing {tmp_path}; stop every selfloop process on it (never delete .lock "
        "by hand) and rerun the same command to resume"
    )
    # The hint, followed: once the other process is gone, the same run opens again where it was.
    with open_run(run, {"loop.seed": 0}, "loop:\n  seed: 0\n", 0, 3) as resumed:
        assert resumed.manifest.config == {"loop.seed": 0}


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
        second = run_cli(args[2:])  # the refused one runs here; the holder is a process of its own
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


@pytest.mark.slow
def test_two_new_runs_under_one_root_take_two_version_folders(tmp_path):
    from conftest import TINY_RUN

    args = [sys.executable, "main.py", "fit", "--config", "configs/digits.yaml", *TINY_RUN,
            "--loop.generations", "1", "--loop.root", str(tmp_path), "--loop.name", "digits"]  # fmt: skip
    procs = [
        subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = [proc.communicate(timeout=900)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [e[-3000:] for e in errors]
    runs = sorted(p.name for p in (tmp_path / "digits").iterdir())
    assert runs == ["version_0", "version_1"]
    assert all("\n1,lenet," in (tmp_path / "digits" / r / "metrics.csv").read_text() for r in runs)

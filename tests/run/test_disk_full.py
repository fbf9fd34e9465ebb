"""A full disk, a read-only file system: one line naming the file and the free space; rerunning resumes."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from helpers.cli_run import run_cli

from selfloop.run.atomic import (
    RunWriteError,
    atomic_torch_save,
    atomic_write,
    atomic_write_text,
    format_bytes,
    write_errors_named,
)

ROOT = Path(__file__).resolve().parents[2]
RESUMES = "The phases already finished are kept: free some space and rerun the same command to resume"


@pytest.fixture
def small_fs(tmp_path):
    """Mount a tmpfs of a given size (``mount(size, *options)``); skipped where mounting is not allowed."""
    mounts: list[Path] = []

    def mount(size: str, *options: str) -> Path:
        point = tmp_path / f"fs{len(mounts)}"
        point.mkdir()
        opts = ",".join([f"size={size}", *options])
        try:
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True, text=True
            )
        except FileNotFoundError:
            pytest.skip("no mount command here: a small file system cannot be made for this test")
        if done.returncode:
            pytest.skip(f"cannot mount a {size} tmpfs (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", str(point)], capture_output=True)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_torch_save_on_a_full_device_is_one_line_naming_the_path():
    # torch.save reports a failed write as "RuntimeError: [enforce fail at inline_container.cc] ...
    # unexpected pos", the ENOSPC only in its context.
    with (
        pytest.raises(RunWriteError) as raised,
        write_errors_named("/dev/full"),
        open("/dev/full", "wb") as handle,
    ):
        torch.save({"x": torch.zeros(10_000)}, handle)
    error = raised.value
    free = format_bytes(shutil.disk_usage("/dev").free)
    assert (
        str(error)
        == f"cannot write /dev/full: No space left on device ({free} free on that file system). {RESUMES}"
    )
    assert error.errno == errno.ENOSPC and error.path == Path("/dev/full")
    assert isinstance(error, OSError)


def test_a_full_file_system_keeps_the_previous_file_and_no_temporary(small_fs):
    folder = small_fs("1m")
    target = folder / "queue.pt"
    atomic_write_text(target, "previous\n")
    with pytest.raises(RunWriteError) as raised:
        atomic_torch_save(target, torch.zeros(4 << 20, dtype=torch.uint8))  # 4 MiB on a 1 MiB disk
    free = format_bytes(shutil.disk_usage(folder).free)
    assert str(raised.value) == (
        f"cannot write {target}: No space left on device ({free} free on that file system). {RESUMES}"
    )
    assert target.read_text() == "previous\n"
    assert sorted(p.name for p in folder.iterdir()) == ["queue.pt"]


def test_a_read_only_file_system_says_make_it_writable(small_fs):
    folder = small_fs("1m", "ro")
    target = folder / "manifest.json"
    with pytest.raises(RunWriteError) as raised:
        atomic_write_text(target, "{}\n")
    assert raised.value.errno == errno.EROFS
    assert str(raised.value).startswith(f"cannot write {target}: Read-only file system (")
    assert str(raised.value).endswith("make it writable and rerun the same command to resume")


def test_an_error_that_is_not_the_file_systems_is_not_disguised(tmp_path):
    def fail(handle):
        raise RuntimeError("the object cannot be serialised")

    with pytest.raises(RuntimeError, match="cannot be serialised") as raised:
        atomic_write(tmp_path / "x.pt", fail)
    assert not isinstance(raised.value, RunWriteError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_disk_full_run_stops_in_one_line_and_resumes_exactly_after_space_is_freed(
    tiny_run_args, tmp_path, small_fs
):
    reference = tmp_path / "reference"
    done = run_cli(tiny_run_args(reference, "--loop.generations", "1"))
    assert done.returncode == 0, done.stderr[-3000:]

    # 1 MiB holds generation 0 (config, manifest, classifier) but not generation 1's generator weights.
    folder = small_fs("1m")
    run = folder / "run"
    args = tiny_run_args(run, "--loop.generations", "1")
    full = run_cli(args)
    assert full.returncode == 2, full.stderr[-3000:]
    errors = [line for line in full.stderr.splitlines() if line.startswith("selfloop: error:")]
    assert len(errors) == 1 and "Traceback" not in full.stderr
    assert errors[0].startswith(f"selfloop: error: cannot write {run}/")
    assert ": No space left on device (" in errors[0] and errors[0].endswith(RESUMES)
    manifest = (run / "manifest.json").read_bytes()
    assert b"g0/classifier/lenet" in manifest  # what was finished is kept

    subprocess.run(["mount", "-o", "remount,size=64m", str(folder)], check=True)
    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout + resumed.stderr
    assert (run / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()


@pytest.mark.slow
def test_a_full_file_system_inside_a_fit_is_one_line_and_resumes(tiny_run_args, small_fs):
    # 8 inodes hold the run's own files but not the folders and event file of the first fit's TensorBoard log:
    # the failure is in TensorBoard's writer thread, inside Lightning's fit.
    folder = small_fs("64m", "nr_inodes=8")
    run = folder / "run"
    args = tiny_run_args(run, "--loop.generations", "1")
    full = run_cli(args)
    assert full.returncode == 2, full.stderr[-3000:]
    assert "Traceback" not in full.stderr and "Exception in thread" not in full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("selfloop: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"selfloop: error: cannot write {run}/phases/gen_000/")
    assert ": No space left on device (" in errors[0] and errors[0].endswith(RESUMES)

    # The hint, followed: with room again the same command finishes the run.
    subprocess.run(["mount", "-o", "remount,nr_inodes=4096", str(folder)], check=True)
    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "\n1,lenet," in (run / "metrics.csv").read_text()

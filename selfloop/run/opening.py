"""Opening a run directory for the loop: claim it, lock it, check it, and hand back its ``PhaseRunner``.

``open_run`` is everything that happens between a checked config and the first phase: a new version folder
is claimed (or the given one created), rank 0 takes the lock, removes the temporary files of atomic writes
a killed process left behind, refuses a directory with results but no manifest, reads the manifest (or
starts one), refuses a config that would change the run's results, and writes ``config.yaml``,
``metrics.csv`` (rebuilt from the manifest where damaged) and the manifest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn

from selfloop.core.errors import SelfLoopError
from selfloop.run.atomic import atomic_write_text, remove_stale_temp_files
from selfloop.run.compat import ConfigMismatchError, incompatible_changes
from selfloop.run.layout import RunDirectory
from selfloop.run.lock import LOCK_FILE, RunLock
from selfloop.run.manifest import Manifest
from selfloop.run.metrics_log import MetricsLog
from selfloop.run.phases import PhaseRunner
from selfloop.run.queue import StackingQueue

NEW_RUN_HINT = "pass another --loop.run_dir (or none for a new version folder)"
# What a run directory holds before its first manifest is written (a run killed that early left nothing else).
_BEFORE_MANIFEST = {LOCK_FILE, "config.yaml"}


class ManifestMissingError(SelfLoopError, FileNotFoundError):
    """A run directory holds results but no manifest: resuming it would redo (and overwrite) every phase."""


def run_directory(run_dir: str | None, root: str, name: str) -> RunDirectory:
    """The run's directory: ``run_dir`` (created), or a newly claimed ``root/name/version_<k>`` (DDP's other
    ranks are always given rank 0's directory as ``--loop.run_dir``).

    Raises:
        RunDirectoryError: naming the path when it cannot be created or written.
    """
    if run_dir is None:
        return RunDirectory.claim_next_version(root, name)
    run = RunDirectory(run_dir)
    run.create()
    return run


@contextmanager
def open_run(
    run: RunDirectory,
    config: Mapping[str, Any],
    config_text: str,
    seed: int,
    queue_capacity: int | None,
    writer: bool | None = None,
) -> Iterator[PhaseRunner]:
    """Open ``run`` for the loop, holding its lock (on the writer) until the block ends.

    Args:
        run: the run directory (see ``run_directory``).
        config: the result-shaping config (``selfloop.run.compat.result_config``), compared on resume.
        config_text: the resolved config, written as ``config.yaml``.
        seed: the run's base seed.
        queue_capacity: generations of samples the stacking queue keeps (``None``: all).
        writer: whether this process writes the run (default: global rank 0); other DDP ranks only read.

    Raises:
        RunLockedError: another process writes ``run``.
        ManifestMissingError: ``run`` holds results but no manifest.
        ManifestError: the manifest is damaged or of the wrong shape.
        ConfigMismatchError: ``config`` differs from the run's in keys that change results.
    """
    writer = rank_zero_only.rank == 0 if writer is None else writer
    lock = RunLock(run.path) if writer else None
    try:
        if lock is not None:
            lock.acquire()
            for stale in remove_stale_temp_files(run.path):
                rank_zero_info(f"[selfloop] removed {stale}, left by an interrupted write")
        runner = _runner(run, config, seed, queue_capacity, writer, lock)
        if writer:
            _write_config(runner, config_text)
            runner.restore_metrics()
            runner.save_manifest()
        yield runner
    finally:
        if lock is not None:
            lock.release()


def _runner(
    run: RunDirectory,
    config: Mapping[str, Any],
    seed: int,
    queue_capacity: int | None,
    writer: bool,
    lock: RunLock | None,
) -> PhaseRunner:
    if run.manifest_file.is_file():
        manifest = Manifest.load(run.manifest_file)
        changes = incompatible_changes(manifest.config, config)
        if changes:
            raise ConfigMismatchError(
                f"{run.path} holds a run with a different config, so it cannot be resumed: "
                + "; ".join(changes)
                + f". To start a new run, {NEW_RUN_HINT}"
            )
        rank_zero_info(f"[selfloop] resuming {run.path}: {len(manifest.completed)} phases already done")
    else:
        if writer:
            _refuse_results_without_manifest(run)
        manifest = Manifest(seed=seed, config=dict(config), metrics=[])
    queue = StackingQueue.from_state(run.queue_dir, queue_capacity, manifest.queue)
    metrics = MetricsLog(run.metrics_file, run.summary_dir, seed)
    return PhaseRunner(run, manifest, queue, metrics, guard=None if lock is None else lock.check)


def _refuse_results_without_manifest(run: RunDirectory) -> None:
    """Refuse a directory whose manifest is gone but whose results are not: rerunning would silently redo
    every phase and overwrite them."""
    held = sorted(
        p.name + ("/" if p.is_dir() else "") for p in run.path.iterdir() if p.name not in _BEFORE_MANIFEST
    )
    if held:
        shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
        raise ManifestMissingError(
            f"{run.path} holds results of a run ({shown}) but no {run.manifest_file.name}, so what was done "
            f"cannot be checked and would be redone: restore {run.manifest_file}, or {NEW_RUN_HINT}"
        )


def _write_config(runner: PhaseRunner, text: str) -> None:
    """Write ``config.yaml`` for a new run; on resume, rewrite it only when it is missing or was edited (the
    manifest has just found this command's config compatible with the run's)."""
    path: Path = runner.run.config_file
    resumed = runner.run.manifest_file.is_file()
    if resumed and (runner.intact(path) or (path.is_file() and not runner.recorded(path))):
        return  # intact, or written by a version that did not record its hash
    if resumed:
        rank_zero_warn(f"{path} is missing or was edited; rewrote it from this command's config")
    atomic_write_text(path, text)
    runner.record(path)

"""Every path of a run lies inside its directory; versions count up; an unwritable place is named."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from selfloop.run.layout import RunDirectory, RunDirectoryError


def test_every_path_is_inside_the_run_directory(tmp_path):
    run = RunDirectory(tmp_path / "r")
    paths = [
        run.config_file,
        run.manifest_file,
        run.metrics_file,
        run.queue_dir,
        run.summary_dir,
        run.generator_weights(3),
        run.candidates_file(3),
        run.audit_dir(3),
        run.review_dir(3),
        run.classifier_weights(3, "lenet"),
        run.subgroup_oracle_weights,
        run.fid_real_stats,
        *run.fid_tables,
        run.sample_grid(3),
        run.phase_log_dir(),
    ]
    assert all(p.is_relative_to(run.path) for p in paths)
    assert len(set(paths)) == len(paths)
    assert (
        run.classifier_weights(3, "lenet").relative_to(run.path).as_posix() == "classifiers/gen_003/lenet.pt"
    )
    assert run.generator_weights(12).relative_to(run.path).as_posix() == "generations/gen_012/generator.pt"


def test_claimed_version_is_one_past_the_highest(tmp_path):
    assert RunDirectory.claim_next_version(tmp_path, "digits").path == tmp_path / "digits" / "version_0"
    (tmp_path / "digits" / "version_4").mkdir()
    (tmp_path / "digits" / "notes").mkdir()
    claimed = RunDirectory.claim_next_version(tmp_path, "digits")
    assert claimed.path == tmp_path / "digits" / "version_5" and claimed.path.is_dir()


def test_runs_started_at_once_claim_distinct_versions(tmp_path):
    # Each claim computes the same next version; mkdir lets one win and the others move on.
    start = threading.Barrier(8)

    def claim(_: int) -> Path:
        start.wait()
        return RunDirectory.claim_next_version(tmp_path, "digits").path

    with ThreadPoolExecutor(8) as pool:
        claimed = list(pool.map(claim, range(8)))
    assert sorted(claimed) == [tmp_path / "digits" / f"version_{k}" for k in range(8)]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_place_is_named(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    with pytest.raises(RunDirectoryError, match=str(locked)):
        RunDirectory(locked / "run").create()


def test_a_file_in_the_way_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunDirectoryError, match="--loop.run_dir"):
        RunDirectory(blocker / "run").create()

"""Bad input on a real run directory: one-line errors naming the path or flag, nothing lost."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _main(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished one-generation run, copied fresh into each test."""
    from conftest import TINY_RUN

    run = tmp_path_factory.mktemp("finished") / "run"
    result = _main(
        [
            "fit",
            "--config",
            "configs/digits.yaml",
            *TINY_RUN,
            "--loop.run_dir",
            str(run),
            "--loop.generations",
            "1",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def test_resume_with_another_seed_is_refused_listing_the_keys(tiny_run_args, run):
    result = _main(tiny_run_args(run, "--loop.generations", "1", "--loop.seed", "1"))
    assert result.returncode == 2
    assert "loop.seed: 0 -> 1" in result.stderr and "--loop.run_dir" in result.stderr
    assert "Traceback" not in result.stderr


def test_more_generations_is_a_harmless_change(tiny_run_args, run):
    before = (run / "metrics.csv").read_text()
    result = _main(tiny_run_args(run, "--loop.generations", "2"))
    assert result.returncode == 0, result.stderr[-3000:]
    after = (run / "metrics.csv").read_text()
    # Finished phases are not redone: their rows stay as they were, generation 2 is added.
    assert after.startswith(before) and "\n2,lenet," in after


def test_manifest_edited_into_nonsense_names_the_file(tiny_run_args, run):
    (run / "manifest.json").write_text("{ not json")
    result = _main(tiny_run_args(run, "--loop.generations", "1"))
    assert result.returncode == 2
    assert str(run / "manifest.json") in result.stderr and "Traceback" not in result.stderr
    assert (run / "metrics.csv").is_file() and (run / "queue" / "gen_001.pt").is_file()


def test_truncated_shard_is_reported_and_rebuilt_identically(tiny_run_args, run):
    shard = run / "queue" / "gen_001.pt"
    original = hashlib.sha256(shard.read_bytes()).hexdigest()
    shard.write_bytes(shard.read_bytes()[:100])
    result = _main(tiny_run_args(run, "--loop.generations", "2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"queue shard {shard} is missing or damaged" in result.stderr
    manifest = json.loads((run / "manifest.json").read_text())
    # Rebuilt from the saved candidates with the same seeds: the very same bytes.
    assert manifest["queue"][0]["sha256"] == original
    assert not shard.exists() or hashlib.sha256(shard.read_bytes()).hexdigest() == original


def test_nan_loss_stops_naming_generation_phase_and_arch(tiny_run_args, tmp_path):
    run = tmp_path / "nan"
    result = _main(tiny_run_args(run, "--loop.generations", "1", "--model.lr", "1e12"))
    assert result.returncode == 2
    assert "generation 0, classifier lenet" in result.stderr
    assert " is nan in epoch " in result.stderr or " is inf in epoch " in result.stderr
    assert "Traceback" not in result.stderr
    # Everything produced before the failure stays.
    assert (run / "config.yaml").is_file() and (run / "manifest.json").is_file()

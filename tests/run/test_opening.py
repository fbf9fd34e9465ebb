"""Opening a run directory: a new run starts its files, a resume checks them, and what cannot be trusted is
refused in one line before anything is written."""

from __future__ import annotations

import json

import pytest

from selfloop.run.compat import ConfigMismatchError
from selfloop.run.layout import RunDirectory
from selfloop.run.lock import LOCK_FILE
from selfloop.run.manifest import ManifestError
from selfloop.run.opening import ManifestMissingError, open_run

CONFIG = {"loop.seed": 0, "model.lr": 0.001}
TEXT = "loop:\n  seed: 0\n"


def _open(run: RunDirectory, config: dict = CONFIG):
    return open_run(run, config, TEXT, 0, 3, writer=True)


def test_a_new_run_writes_its_config_manifest_and_metrics(tmp_path):
    run = RunDirectory(tmp_path)
    with _open(run) as runner:
        assert runner.manifest.config == CONFIG
    assert run.config_file.read_text() == TEXT
    manifest = json.loads(run.manifest_file.read_text())
    assert manifest["config"] == CONFIG and manifest["completed"] == [] and "config.yaml" in manifest["files"]


def test_results_without_a_manifest_are_refused_with_both_ways_forward(tmp_path):
    run = RunDirectory(tmp_path)
    with _open(run):
        pass
    run.manifest_file.unlink()
    (tmp_path / "classifiers").mkdir()
    run.metrics_file.write_text("generation,arch,seed,metric,value\n0,lenet,0,acc,0.5\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(ManifestMissingError) as refused:
        _open(run).__enter__()
    assert str(refused.value) == (
        f"{tmp_path} holds results of a run (classifiers/, metrics.csv) but no manifest.json, so what was done "
        f"cannot be checked and would be redone: restore {run.manifest_file}, or pass another --loop.run_dir "
        "(or none for a new version folder)"
    )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_a_run_killed_before_its_first_manifest_starts_again(tmp_path):
    run = RunDirectory(tmp_path)
    (tmp_path / LOCK_FILE).write_text("")
    run.config_file.write_text("partial")
    with _open(run) as runner:
        assert runner.manifest.completed == []
    assert run.config_file.read_text() == TEXT


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ([], "a JSON list, expected an object"),
        ({"format": 1, "seed": 0, "files": []}, "'files' must map paths to SHA-256 hashes"),
        ({"format": 1, "seed": 0, "queue": [{"generation": 1}]}, "'queue' must list shards (generation, file, sha256, count)"),
        ({"format": 1, "seed": "0"}, "'seed' must be an integer"),
    ],
    ids=["list", "files-list", "queue-rows", "seed-text"],
)  # fmt: skip
def test_a_manifest_of_the_wrong_shape_is_named(tmp_path, manifest, reason):
    run = RunDirectory(tmp_path)
    run.manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(ManifestError) as refused:
        _open(run).__enter__()
    assert str(refused.value) == (
        f"cannot read the run manifest {run.manifest_file} ({reason}); it was edited or damaged. Restore it, "
        "or start a new run in another --loop.run_dir"
    )


def test_a_changed_config_is_refused_naming_the_keys(tmp_path):
    run = RunDirectory(tmp_path)
    with _open(run):
        pass
    with pytest.raises(ConfigMismatchError, match=r"model\.lr: 0\.001 -> 0\.01\. To start a new run"):
        _open(run, {**CONFIG, "model.lr": 0.01}).__enter__()


def test_resume_removes_temp_files_of_interrupted_atomic_writes(tmp_path):
    run = RunDirectory(tmp_path)
    with _open(run):
        pass
    (tmp_path / "queue").mkdir()
    stale = [tmp_path / ".metrics.csv.a1b2c3d4.tmp", tmp_path / "queue" / ".gen_001.pt.zz_9yx8w.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    kept = tmp_path / "notes.tmp"  # not a name of selfloop's atomic writes
    kept.write_text("mine")
    with _open(run):
        pass
    assert not any(p.exists() for p in stale) and kept.read_text() == "mine"

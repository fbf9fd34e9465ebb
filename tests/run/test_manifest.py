"""The manifest round-trips through its file and refuses files it did not write."""

from __future__ import annotations

import json

import pytest

from selfloop.run.manifest import Manifest, ManifestError


def test_round_trip_keeps_every_field(tmp_path):
    manifest = Manifest(seed=3, config={"loop.seed": 3})
    manifest.mark_done("g0/classifier/lenet")
    manifest.mark_done("g0/classifier/lenet")  # marking twice records once
    manifest.seeds["g0/classifier/lenet"] = 11
    manifest.files["classifiers/gen_000/lenet.pt"] = "ab" * 32
    manifest.unit_seconds["g0/classifier/lenet"] = 12.5
    manifest.save(tmp_path / "manifest.json")
    loaded = Manifest.load(tmp_path / "manifest.json")
    assert loaded == manifest
    assert loaded.is_done("g0/classifier/lenet") and not loaded.is_done("g1/filter")


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"seed": 0, "format": 99}),
        json.dumps({"seed": 0, "format": 1, "completed": [1]}),
        json.dumps({"seed": 0, "format": 1, "unit_seconds": {"g1/filter": "long"}}),
    ],
    ids=["not-json", "other-format", "bad-completed", "bad-unit-seconds"],
)
def test_damaged_manifest_is_named_with_what_to_do(tmp_path, content):
    path = tmp_path / "manifest.json"
    path.write_text(content)
    with pytest.raises(ManifestError, match=str(path)) as err:
        Manifest.load(path)
    assert "--loop.run_dir" in str(err.value)
    if "unit_seconds" in content:
        assert "'unit_seconds' must map phase keys to seconds" in str(err.value)

"""load_restricted: numpy pickles load, a crafted payload is refused unrun (also via Hard ImageNet's metadata)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from fixtures_formats import MarkerPayload

from selfloop.data.errors import CorruptDatasetError, UntrustedPickleError
from selfloop.data.hard_imagenet import HardImageNetDataModule
from selfloop.data.safe_pickle import NUMPY_GLOBALS, load_restricted


def _load(path):
    return load_restricted(path, NUMPY_GLOBALS, "Test", "Fetch the official files.")


def test_the_payload_is_live_with_plain_pickle(tmp_path):
    # The control: the payload the other tests refuse does run code when unpickled naively.
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(MarkerPayload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_crafted_payload_is_refused_and_not_run(tmp_path, protocol):
    marker, path = tmp_path / "marker", tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps({"labels": [1, 2], "data": MarkerPayload(marker)}, protocol=protocol))
    with pytest.raises(UntrustedPickleError) as info:
        _load(path)
    assert not marker.exists()
    message = str(info.value)
    assert info.value.path == path and message.startswith(f"{path}: ")
    assert "system" in message and "not the official Test release" in message and "\n" not in message
    assert isinstance(info.value, CorruptDatasetError)  # the CLI reports it as a one-line user error


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_arrays_scalars_and_containers_load(tmp_path, protocol):
    entry = {
        "data": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "index": np.int64(7),
        "names": ["a", "b"],
        "by_id": {1: "x", 2: ("y", 3.5)},
        "raw": b"\x00\xff",
    }
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(entry, protocol=protocol))
    loaded = _load(path)
    assert np.array_equal(loaded["data"], entry["data"]) and loaded["data"].dtype == np.uint8
    assert loaded["index"] == 7 and loaded["names"] == ["a", "b"] and loaded["by_id"] == entry["by_id"]
    assert loaded["raw"] == b"\x00\xff"


def test_other_harmless_globals_are_refused_too(tmp_path):
    # Only what the data sets' files need is admitted: an allow-list, not a deny-list of dangerous calls.
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps({"when": __import__("datetime").date(2020, 1, 1)}))
    with pytest.raises(UntrustedPickleError, match="datetime.date"):
        _load(path)


def test_a_damaged_pickle_keeps_its_own_error(tmp_path):
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps({"a": 1})[:-3])
    with pytest.raises((pickle.UnpicklingError, EOFError)) as info:
        _load(path)
    assert not isinstance(info.value, UntrustedPickleError)


def _write_meta(root, idx_to_wnid):
    meta = root / "meta"
    meta.mkdir(parents=True)
    indices = list(range(100, 115))
    for name, value in (
        ("hard_imagenet_idx.pkl", indices),
        ("idx_to_wnid.pkl", idx_to_wnid),
        ("imagenet_classnames.pkl", [f"class {i}, alias" for i in range(1000)]),
    ):
        (meta / name).write_bytes(pickle.dumps(value))
    return meta


def test_hard_imagenet_metadata_loads(tmp_path):
    _write_meta(tmp_path, {np.int64(i): f"n{i:08d}" for i in range(1000)})
    dm = HardImageNetDataModule(hard_imagenet_root=str(tmp_path))
    assert dm.wnids == [f"n{i:08d}" for i in range(100, 115)]
    assert dm.class_names[0] == "class 100"


def test_hard_imagenet_crafted_metadata_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "marker"
    meta = _write_meta(tmp_path, {i: MarkerPayload(marker) for i in range(1000)})
    with pytest.raises(UntrustedPickleError) as info:
        _ = HardImageNetDataModule(hard_imagenet_root=str(tmp_path)).wnids
    assert not marker.exists()
    assert info.value.path == meta / "idx_to_wnid.pkl"
    assert "not the official Hard ImageNet release" in str(info.value)

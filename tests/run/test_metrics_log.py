import csv
import math

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from selfloop.run.metrics_log import MetricsFileError, MetricsLog, flatten_metrics


def _scalars(folder):
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_flatten_lists_into_indexed_metrics():
    assert flatten_metrics({"acc": 0.5, "subgroup_acc": [0.1, 0.2]}) == {
        "acc": 0.5,
        "subgroup_acc_0": 0.1,
        "subgroup_acc_1": 0.2,
    }


def test_csv_rows_and_tensorboard_scalars_agree(tmp_path):
    log = MetricsLog(tmp_path / "metrics.csv", tmp_path / "summary", seed=3)
    log.log(0, "lenet", {"acc": 0.9, "subgroup_acc": [0.8, 1.0, math.nan]})
    log.log(1, "lenet", {"acc": 0.95, "subgroup_acc": [0.9, 1.0, 0.7]})
    log.close()
    with open(tmp_path / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["generation", "arch", "seed", "metric", "value"]
    assert {r["seed"] for r in rows} == {"3"}
    values = {(int(r["generation"]), r["metric"]): float(r["value"]) for r in rows}
    assert values[(1, "subgroup_acc_2")] == 0.7 and math.isnan(values[(0, "subgroup_acc_2")])
    scalars = _scalars(tmp_path / "summary")
    assert [step for step, _ in scalars["lenet/acc"]] == [0, 1]
    for (generation, metric), value in values.items():
        if not math.isnan(value):
            assert dict(scalars[f"lenet/{metric}"])[generation] == pytest_approx(value)


def test_logging_a_phase_again_replaces_its_rows_in_place(tmp_path):
    log = MetricsLog(tmp_path / "metrics.csv", tmp_path / "summary", seed=0)
    log.log(0, "lenet", {"acc": 0.1})
    log.log(0, "alexnet", {"acc": 0.2})
    log.log(0, "lenet", {"acc": 0.3, "md": 0.05})
    rows = log.read()
    assert [(r["arch"], r["metric"], r["value"]) for r in rows] == [
        ("lenet", "acc", "0.3"),
        ("alexnet", "acc", "0.2"),
        ("lenet", "md", "0.05"),
    ]


def pytest_approx(value):
    import pytest

    return pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize(
    "content",
    [b"\x89\xf6\x00garbage", b"a,b\n1,2\n", b"generation,arch,seed,metric,value\n0,lenet,0\n"],
    ids=["binary", "other-columns", "short-row"],
)
def test_a_file_that_is_not_a_metrics_table_is_named(tmp_path, content):
    path = tmp_path / "metrics.csv"
    path.write_bytes(content)
    with pytest.raises(MetricsFileError) as err:
        MetricsLog(path, tmp_path / "summary", seed=0).read()
    assert str(err.value).startswith(f"cannot read the metrics table {path} (")
    assert str(err.value).endswith("Restore it, or start a new run in another --loop.run_dir")

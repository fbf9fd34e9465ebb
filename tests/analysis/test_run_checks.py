"""The report's loader checks each run against its manifest: damaged metrics are named and replaced by the
recorded rows, a damaged config or an infinite value is refused naming the file, never with a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from selfloop.__main__ import main as selfloop_main
from selfloop.analysis.runs import RunLoadError, load_run
from selfloop.run.atomic import sha256_file
from selfloop.run.manifest import Manifest
from selfloop.run.metrics_log import MetricsLog

CONFIG = {
    "model": {"arch": "lenet"},
    "data": {"class_path": "selfloop.data.digits.ColoredDigitsDataModule"},
    "loop": {"generations": 1, "seed": 3, "archs": ["lenet"]},
}
VALUES = {
    (0, "lenet", "acc"): 0.875,
    (0, "lenet", "md"): 0.125,
    (1, "lenet", "acc"): 0.75,
    (1, "lenet", "md"): 0.25,
}


@pytest.fixture
def run(tmp_path) -> Path:
    """A finished run's config.yaml, manifest.json and metrics.csv, written by the loop's own writers."""
    path = tmp_path / "run"
    path.mkdir()
    (path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    log = MetricsLog(path / "metrics.csv", path / "summary", seed=3)
    rows = [
        {"generation": str(g), "arch": a, "seed": "3", "metric": m, "value": repr(v)}
        for (g, a, m), v in VALUES.items()
    ]
    log.write(rows)
    manifest = Manifest(seed=3, completed=["g0/classifier/lenet", "g1/classifier/lenet"], metrics=rows)
    manifest.files["config.yaml"] = sha256_file(path / "config.yaml")
    manifest.save(path / "manifest.json")
    return path


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:90])


def _edit(path: Path) -> None:
    path.write_text(path.read_text().replace("0.875", "0.999"))


DAMAGE = {
    "binary": lambda path: path.write_bytes(b"\x89\xf6\x00garbage" * 40),
    "truncated": _truncate,
    "edited": _edit,
    "header-only": lambda path: path.write_text("generation,arch,seed,metric,value\n"),
    "nan": lambda path: path.write_text(path.read_text().replace("0.875", "nan")),
    "deleted": lambda path: path.unlink(),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_metrics_are_named_and_the_recorded_rows_read(run, damage):
    damage(run / "metrics.csv")
    with pytest.warns(UserWarning) as caught:
        loaded = load_run(run)
    (warning,) = [str(w.message) for w in caught]
    assert warning == (
        f"{run / 'metrics.csv'} is missing or differs from the 4 rows {run / 'manifest.json'} recorded (edited, "
        "truncated or damaged); read the recorded rows instead (a resume of the run rewrites the file)"
    )
    assert loaded.metrics == VALUES and loaded.finished


def test_an_intact_run_loads_without_a_warning(run, recwarn):
    assert load_run(run).metrics == VALUES
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_an_edited_config_is_refused_with_a_working_hint(run):
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("seed: 3", "seed: 4"))
    with pytest.raises(RunLoadError) as refused:
        load_run(run)
    assert str(refused.value) == (
        f"{config}: does not match the hash in {run / 'manifest.json'} (edited or damaged); rerun the run's "
        "command with the same --loop.run_dir to rewrite it, then report again"
    )


def test_a_binary_config_is_one_line(run):
    (run / "config.yaml").write_bytes(b"\x89\xf6\x00garbage")
    with pytest.raises(
        RunLoadError, match=r"config\.yaml: cannot read the config \(not UTF-8 text: invalid start byte"
    ):
        load_run(run)


def test_an_infinite_value_of_a_run_without_recorded_rows_names_the_line(run):
    manifest = Manifest.load(run / "manifest.json")
    manifest.metrics = None  # a run of a version that did not record its rows
    manifest.save(run / "manifest.json")
    (run / "metrics.csv").write_text((run / "metrics.csv").read_text().replace("0.25", "inf"))
    with pytest.raises(RunLoadError) as refused:
        load_run(run)
    assert str(refused.value) == (
        f"{run / 'metrics.csv'}, line 5: md of lenet in generation 1 is inf, not a finite number (the loop never "
        "writes one): restore the file or leave the run out"
    )


@pytest.mark.parametrize("name", ["metrics.csv", "config.yaml"])
def test_report_on_a_binary_file_is_one_line_without_traceback(run, tmp_path, name, capsys):
    if name == "metrics.csv":
        manifest = Manifest.load(run / "manifest.json")
        manifest.metrics = None  # nothing recorded to fall back on
        manifest.save(run / "manifest.json")
    (run / name).write_bytes(b"\x89\xf6\x00garbage" * 40)
    # ``selfloop report`` in this process (tests/analysis/test_report.py runs the report as a command).
    with pytest.raises(SystemExit) as exited:
        selfloop_main(["report", str(run), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert str(run / name) in line and "not UTF-8 text" in line

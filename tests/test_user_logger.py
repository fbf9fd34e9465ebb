"""The user's own Lightning logger gets every phase's curves (under the phase's prefix) and the
per-generation summary, beside the run's own TensorBoard logs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from selfloop.cli.app import SelfLoopCLI

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_csv_logger_gets_phase_curves_and_the_generation_summary(tiny_run_args, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    run, logs = tmp_path / "run", tmp_path / "csv"
    logger = (
        f"{{class_path: lightning.pytorch.loggers.CSVLogger, init_args: {{save_dir: {logs}, name: mine}}}}"
    )
    SelfLoopCLI(args=tiny_run_args(run, "--loop.generations", "1", "--trainer.logger", logger))

    (metrics_file,) = logs.glob("mine/version_*/metrics.csv")
    with open(metrics_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0])
    # The curves of every fit, each under its phase: generation 0 and 1 classifiers, generation 1 generator.
    assert {"gen_000/lenet/train_loss", "gen_001/lenet/train_loss", "gen_000/lenet/val_loss"} <= columns
    assert any(c.startswith("gen_001/generator/") for c in columns)
    # The per-generation summary, step = generation, with the values of the run's own metrics.csv.
    with open(run / "metrics.csv", newline="") as handle:
        tidy = {(r["generation"], r["arch"], r["metric"]): float(r["value"]) for r in csv.DictReader(handle)}
    for generation in ("0", "1"):
        logged = [r for r in rows if r["step"] == generation and r.get("lenet/acc")]
        assert len(logged) == 1
        assert float(logged[0]["lenet/acc"]) == pytest.approx(tidy[generation, "lenet", "acc"])
    # The run's own TensorBoard logs are still written.
    assert list((run / "phases").rglob("events.out.tfevents.*"))
    assert list((run / "summary").glob("events.out.tfevents.*"))

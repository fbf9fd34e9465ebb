"""The generation loop in process: phase order, resume skipping, metrics recorded once, stop checks.

One finished 2-generation tiny run (16 px digits, LeNet, the ``PerfectGenerator``) is shared by the
tests that read it; a test that changes or resumes it works on its own copy.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers.tiny_loop import SIZE, tiny_loop
from lightning.pytorch.callbacks import Callback

from selfloop.core.errors import RunInterrupted
from selfloop.data.digits import ColoredDigitsDataModule

# What every generation n >= 1 measures on its samples, in the order of its metrics.csv rows.
GENERATOR_METRICS = [
    "gen_label_acc",
    "gen_label_acc_kept",
    "num_candidates",
    "num_kept",
    "u_t",
    "subgroup_ambiguous_frac",
    "fid_raw",
    "fid_kept",
    "precision_raw",
    "recall_raw",
    "kid_raw",
    "precision_kept",
    "recall_kept",
    "kid_kept",
]
PHASES = [
    "g0/classifier/lenet",
    "g0/judge",
    "g1/generator",
    "g1/sample",
    "g1/filter",
    "g1/classifier/lenet",
    "g2/generator",
    "g2/sample",
    "g2/filter",
    "g2/classifier/lenet",
]


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """A finished 2-generation tiny run; read it, or copy it (``run_copy``) to change it."""
    run = tmp_path_factory.mktemp("loop") / "run"
    tiny_loop(run).run()
    return run


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _started(out: str) -> list[str]:
    """The phases a run started, from its console lines (``[selfloop] g1/2 generator · start``)."""
    return [
        line.split(" ", 1)[1].removesuffix(" · start")
        for line in out.splitlines()
        if line.endswith("· start")
    ]


def _forget(run: Path, keys: list[str]) -> None:
    """Make ``run`` look interrupted before ``keys``: not completed, their rows not recorded, the shards of
    unfinished filter steps not in the queue."""
    manifest = _manifest(run)
    manifest["completed"] = [k for k in manifest["completed"] if k not in keys]
    forgotten = {(k.split("/")[0][1:], k.split("/")[2]) for k in keys if "/classifier/" in k}
    forgotten |= {(k.split("/")[0][1:], "generator") for k in keys if k.endswith("/filter")}
    manifest["metrics"] = [r for r in manifest["metrics"] if (r["generation"], r["arch"]) not in forgotten]
    unfiltered = {int(g) for g, arch in forgotten if arch == "generator"}
    manifest["queue"] = [s for s in manifest["queue"] if s["generation"] not in unfiltered]
    (run / "manifest.json").write_text(json.dumps(manifest))


def test_a_two_generation_run_completes_its_phases_in_the_order_of_the_algorithm(finished_run):
    assert _manifest(finished_run)["completed"] == PHASES


def test_every_metric_is_recorded_once_and_the_manifest_holds_the_same_rows(finished_run):
    rows = _rows(finished_run)
    keys = [(r["generation"], r["arch"], r["metric"]) for r in rows]
    assert len(keys) == len(set(keys))
    for n in ("1", "2"):
        assert [
            r["metric"] for r in rows if r["generation"] == n and r["arch"] == "generator"
        ] == GENERATOR_METRICS
    # The counts follow from the config: 40 kept per generation of 50 candidates (drop 20%).
    generator = {(r["generation"], r["metric"]): float(r["value"]) for r in rows if r["arch"] == "generator"}
    assert generator[("1", "num_kept")] == generator[("2", "num_kept")] == 40.0
    assert generator[("1", "num_candidates")] == 50.0
    assert {r["arch"] for r in rows} == {"lenet", "generator"}
    assert _manifest(finished_run)["metrics"] == rows


def test_the_fid_table_holds_the_recorded_fid_values(finished_run):
    rows = {
        (r["generation"], r["metric"]): r["value"] for r in _rows(finished_run) if r["arch"] == "generator"
    }
    with open(finished_run / "fid_table.csv", newline="") as handle:
        table = {r["setting"]: r for r in csv.DictReader(handle)}
    label = "domain, N=20, native"
    for kind in ("raw", "kept"):
        # Both files hold repr() of the same float: equal as text.
        assert [table[f"{kind} ({label})"][f"g{n}"] for n in (1, 2)] == [
            rows[(str(n), f"fid_{kind}")] for n in (1, 2)
        ]


def test_the_queue_holds_each_generations_survivors(finished_run):
    queue = _manifest(finished_run)["queue"]
    assert [(s["generation"], s["count"]) for s in queue] == [(1, 40), (2, 40)]
    shard = torch.load(finished_run / "queue" / "gen_002.pt", weights_only=True)
    assert shard["images"].shape == (40, 3, SIZE, SIZE) and shard["images"].dtype == torch.uint8


def test_resume_runs_only_the_unfinished_phases_and_ends_with_the_same_metrics(
    run_copy, finished_run, capsys
):
    _forget(run_copy, ["g2/classifier/lenet"])
    capsys.readouterr()
    tiny_loop(run_copy).run()
    assert _started(capsys.readouterr().out) == ["g2/2 classifier lenet"]
    assert _manifest(run_copy)["completed"] == PHASES
    assert (run_copy / "metrics.csv").read_text() == (finished_run / "metrics.csv").read_text()


def test_resume_after_a_generator_fit_samples_from_its_saved_weights(run_copy, finished_run, capsys, caplog):
    _forget(run_copy, ["g2/sample", "g2/filter", "g2/classifier/lenet"])
    capsys.readouterr()
    with caplog.at_level(logging.INFO):
        tiny_loop(run_copy).run()
    assert "generation 2/2 · generator · resuming after its fit" in caplog.text
    assert _started(capsys.readouterr().out) == ["g2/2 classifier lenet"]
    assert (run_copy / "queue" / "gen_002.pt").read_bytes() == (
        finished_run / "queue" / "gen_002.pt"
    ).read_bytes()
    assert (run_copy / "metrics.csv").read_text() == (finished_run / "metrics.csv").read_text()


class _Digits(ColoredDigitsDataModule):
    """The digits without their exact colour oracle, as a data set whose subgroups only a model can read."""

    subgroup_oracle = None


def test_without_an_exact_oracle_a_subgroup_oracle_is_fitted_once_before_the_first_generator(tmp_path):
    run = tmp_path / "run"
    tiny_loop(run, datamodule=_Digits(image_size=SIZE), generations=1, fid_extractor="none").run()
    completed = _manifest(run)["completed"]
    assert completed[:4] == ["g0/classifier/lenet", "g0/judge", "g0/subgroup_oracle", "g1/generator"]
    rows = _rows(run)
    oracle = [r for r in rows if r["arch"] == "subgroup_oracle"]
    assert [(r["generation"], r["metric"]) for r in oracle] == [("0", "subgroup_acc")]
    assert 0 <= float(oracle[0]["value"]) <= 1
    assert "u_t" in {r["metric"] for r in rows if r["arch"] == "generator"}
    assert not (run / "fid_table.csv").exists()


class _StopAfterFirstFit(Callback):
    """Sends this process SIGTERM at the end of the first fit, as a scheduler's pre-emption would."""

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


def test_a_stop_signal_ends_the_run_after_the_phase_it_arrived_in(tmp_path):
    run = tmp_path / "run"
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RunInterrupted, match="stopped by SIGTERM; finished phases are saved"):
        tiny_loop(run, trainer={"callbacks": [_StopAfterFirstFit()]}).run()
    # The fit it arrived in finished and was recorded; nothing after it began.
    assert _manifest(run)["completed"] == ["g0/classifier/lenet"]
    assert not run.joinpath("classifiers", "judge.pt").exists()
    assert signal.getsignal(signal.SIGTERM) == handler


def test_a_classifier_that_learned_nothing_is_reported_as_at_chance(tmp_path):
    with pytest.warns(UserWarning) as caught:
        tiny_loop(tmp_path / "run", generations=0, trainer={"max_epochs": 0}).run()  # LeNet as initialised
    (warning,) = [str(w.message) for w in caught if "not above chance" in str(w.message)]
    assert warning.startswith("generation 0 · lenet: accuracy ")
    assert "bias metrics describe a classifier that learned nothing" in warning

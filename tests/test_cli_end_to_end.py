"""End-to-end runs of the real CLI on the embedded digits, at tiny sizes."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from helpers.cli_run import run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from selfloop.cli.app import SelfLoopCLI, main

ROOT = Path(__file__).resolve().parents[1]


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_cli_run_fills_and_evicts_the_queue(tiny_cli_run):
    run = tiny_cli_run
    manifest = json.loads((run / "manifest.json").read_text())
    # FIFO at capacity 1: generation 1 left when generation 2 entered.
    assert [s["generation"] for s in manifest["queue"]] == [2]
    assert sorted(p.name for p in (run / "queue").glob("*.pt")) == ["gen_002.pt"]
    assert all(s["count"] == 40 for s in manifest["queue"])
    for n in range(3):
        assert f"g{n}/classifier/lenet" in manifest["completed"]
    # Every unit of the console's ETA is timed in the manifest, for a resumed run's estimate.
    units = ["g0/classifier/lenet", "g1/filter", "g1/classifier/lenet", "g2/filter", "g2/classifier/lenet"]
    assert sorted(manifest["unit_seconds"]) == sorted(units)
    assert all(seconds > 0 for seconds in manifest["unit_seconds"].values())
    for n in (1, 2):
        assert (run / "samples" / f"gen_{n:03d}.png").stat().st_size > 0
    assert (run / "config.yaml").is_file()

    rows = _rows(run)
    lenet = {(int(r["generation"]), r["metric"]): float(r["value"]) for r in rows if r["arch"] == "lenet"}
    for n in range(3):
        for metric in (
            "acc",
            "meo",
            "di",
            "md",
            "worst_group_acc",
            "subgroup_acc_0",
            "ranked_subgroup_acc_2",
            "acc_chance_p",
        ):
            assert (n, metric) in lenet
        assert 0 <= lenet[(n, "acc")] <= 1 and 0 <= lenet[(n, "acc_chance_p")] <= 1
    gen = {(int(r["generation"]), r["metric"]): float(r["value"]) for r in rows if r["arch"] == "generator"}
    for n in (1, 2):
        for metric in ("gen_label_acc", "gen_label_acc_kept", "u_t", "fid_raw", "fid_kept"):
            assert (n, metric) in gen
        # A 1-epoch GAN may draw only blobs whose colour the oracle cannot read: u_t is then unknown.
        ambiguous = gen[(n, "subgroup_ambiguous_frac")]
        assert 0 <= ambiguous <= 1
        assert 0 <= gen[(n, "u_t")] <= 1 or (math.isnan(gen[(n, "u_t")]) and ambiguous == 1.0)

    events = EventAccumulator(str(run / "summary"))
    events.Reload()
    acc = {e.step: e.value for e in events.Scalars("lenet/acc")}
    assert sorted(acc) == [0, 1, 2]
    for n in range(3):
        assert acc[n] == pytest.approx(lenet[(n, "acc")], rel=1e-6)
    # Per-phase training curves live beside the summary.
    assert list((run / "phases" / "gen_001" / "generator").glob("events.out.tfevents.*"))


def test_same_seed_gives_the_same_metrics_and_earlier_generations_do_not_depend_on_later_ones(
    tiny_run_args, tiny_cli_run, tmp_path
):
    # A 1-generation run with the shared run's seed and settings: its rows are the shared run's first ones.
    run = tmp_path / "run"
    SelfLoopCLI(args=tiny_run_args(run, "--loop.generations", "1", "--loop.queue_capacity", "1"))
    rows = _rows(run)
    assert rows == [r for r in _rows(tiny_cli_run) if int(r["generation"]) <= 1]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--loop.generations", "0", "loop.generations"),
        ("--loop.queue_capacity", "0", "loop.queue_capacity"),
        ("--loop.samples_per_generation", "0", "--loop.samples_per_generation"),
        ("--filter.drop_fraction", "1.0", "--filter.drop_fraction"),
        ("--loop.archs", "[lenet, resnet5]", "resnet5"),
        ("--loop.real_fraction", "1.5", "--loop.real_fraction must be in [0, 1], got 1.5"),
        ("--loop.data_policy", "keep-all", "loop.data_policy"),
    ],
)
def test_bad_config_values_name_the_flag(tmp_path, capsys, flag, value, message):
    # In process: the one real process that must not show a traceback is the test below.
    config = str(ROOT / "configs" / "digits.yaml")
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", config, flag, value, "--loop.run_dir", str(tmp_path / "run")])
    assert info.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("selfloop: error:")]
    assert message in line
    assert not (tmp_path / "run").exists()


def test_unwritable_run_directory_names_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli(["fit", "--config", "configs/digits.yaml", "--loop.run_dir", str(blocker / "run")])
    assert result.returncode != 0
    assert str(blocker / "run") in result.stderr and "Traceback" not in result.stderr

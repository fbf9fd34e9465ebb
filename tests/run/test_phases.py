"""Phase keys, seeds and outputs; the runner's done / complete / intact rules on a real run directory."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy

from selfloop.run.layout import RunDirectory
from selfloop.run.manifest import Manifest
from selfloop.run.metrics_log import MetricsLog
from selfloop.run.phases import Phase, PhaseRunner
from selfloop.run.queue import StackingQueue
from selfloop.run.seeding import phase_seed


@pytest.fixture
def runner(tmp_path) -> PhaseRunner:
    run = RunDirectory(tmp_path / "run")
    run.create()
    manifest = Manifest(seed=7)
    queue = StackingQueue.from_state(run.queue_dir, 2, [])
    return PhaseRunner(run, manifest, queue, MetricsLog(run.metrics_file, run.summary_dir, 7))


def test_keys_are_the_ones_the_manifest_format_uses():
    assert Phase.generator(1).key == "g1/generator"
    assert Phase.sample(2).key == "g2/sample"
    assert Phase.filter(3).key == "g3/filter"
    assert Phase.review_exported(1).key == "g1/review_exported"
    assert Phase.classifier(0, "lenet").key == "g0/classifier/lenet"
    assert Phase.subgroup_oracle().key == "g0/subgroup_oracle"


def test_seeds_are_pure_functions_of_where_the_loop_is():
    # The values every earlier run used: resuming an old run directory re-enters phases identically.
    assert Phase.classifier(2, "lenet").seed(0) == phase_seed(0, 2, "classifier", "lenet")
    assert Phase.classifier(2, "lenet").seed(0, "loader") == phase_seed(0, 2, "classifier/loader", "lenet")
    assert Phase.generator(1).seed(3, "loader") == phase_seed(3, 1, "generator/loader")
    assert Phase.generator(1).seed(0) != Phase.generator(2).seed(0) != Phase.generator(1).seed(1)


def test_outputs_come_from_the_run_layout(runner):
    run = runner.run
    assert Phase.generator(2).outputs(run) == (run.generator_weights(2),)
    assert Phase.sample(2).outputs(run) == (run.candidates_file(2),)
    assert Phase.classifier(1, "alexnet").outputs(run) == (run.classifier_weights(1, "alexnet"),)
    assert Phase.subgroup_oracle().outputs(run) == (run.subgroup_oracle_weights,)
    assert Phase.filter(1).outputs(run) == ()


def test_a_phase_is_done_only_when_recorded_and_its_outputs_match_their_hashes(runner):
    phase = Phase.classifier(0, "lenet")
    weights = runner.run.classifier_weights(0, "lenet")
    assert not runner.done(phase)
    runner.save(weights, {"w": torch.arange(3)}, SingleDeviceStrategy(torch.device("cpu")))
    assert not runner.done(phase)  # written, not yet recorded
    runner.complete(phase)
    assert runner.done(phase)

    on_disk = json.loads(runner.run.manifest_file.read_text())
    assert on_disk["completed"] == ["g0/classifier/lenet"]
    assert on_disk["seeds"] == {"g0/classifier/lenet": phase.seed(7)}
    assert on_disk["files"] == {
        "classifiers/gen_000/lenet.pt": runner.manifest.files["classifiers/gen_000/lenet.pt"]
    }

    weights.write_bytes(weights.read_bytes() + b"x")  # damaged after the fact
    assert not runner.done(phase)
    weights.unlink()
    assert not runner.done(phase)


def test_begin_seeds_the_global_rngs_with_the_phase_seed(runner):
    phase = Phase.generator(1)
    assert runner.begin(phase) == phase.seed(7)
    first = torch.rand(3)
    runner.begin(phase)
    assert torch.equal(torch.rand(3), first)

"""GenerationController alone: a reference generator, a real Trainer, a real run directory."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy

from selfloop.callbacks.generated_sample_metrics import GeneratedSampleMetrics, SampleCounts
from selfloop.callbacks.generation_controller import GenerationController, GenerationPlan
from selfloop.classifiers.image_classifier import ImageClassifier
from selfloop.data.digits import ColoredDigitsDataModule
from selfloop.filtering.sample_filter import SampleFilter
from selfloop.generators.reference import PerfectGenerator
from selfloop.run.layout import RunDirectory
from selfloop.run.manifest import Manifest
from selfloop.run.metrics_log import MetricsLog
from selfloop.run.phases import PhaseRunner
from selfloop.run.queue import StackingQueue

SIZE = 16
KEPT_PER_CLASS = 4  # of ceil(4 / 0.8) = 5 candidates per class at drop_fraction 0.2


class _Stop(Exception):
    """Raised by a stop check, as ``GracefulStop.check`` raises ``RunInterrupted``."""


@pytest.fixture(scope="module")
def digits() -> ColoredDigitsDataModule:
    return ColoredDigitsDataModule(image_size=SIZE)


def _runner(tmp_path, capacity: int = 3) -> PhaseRunner:
    run = RunDirectory(tmp_path / "run")
    run.create()
    queue = StackingQueue.from_state(run.queue_dir, capacity, [])
    return PhaseRunner(
        run, Manifest(seed=0, metrics=[]), queue, MetricsLog(run.metrics_file, run.summary_dir, 0)
    )


def _controller(runner, digits, n: int, recorded: list, stop_check=lambda: None) -> GenerationController:
    def record(generation: int, arch: str, metrics: dict) -> None:
        # What the manifest says at the moment of recording: the filter step must not be finished yet.
        recorded.append((generation, arch, metrics, runner.manifest.is_done(f"g{n}/filter")))

    plan = GenerationPlan(n, KEPT_PER_CLASS, digits.class_names, grid_per_class=2)
    torch.manual_seed(0)
    previous = ImageClassifier(arch="lenet", image_size=SIZE).eval()
    measure = GeneratedSampleMetrics([SampleCounts()])
    return GenerationController(plan, runner, SampleFilter(0.2), previous, measure, record, stop_check)


def _fit(controller: GenerationController, digits) -> PerfectGenerator:
    generator = PerfectGenerator(num_classes=10, channels=3, image_size=SIZE)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[controller],
    )
    trainer.fit(generator, datamodule=digits)
    return generator


def test_at_fit_end_it_samples_filters_records_then_pushes_and_completes(tmp_path, digits):
    runner, recorded = _runner(tmp_path), []
    _fit(_controller(runner, digits, 1, recorded), digits)

    assert runner.manifest.completed == ["g1/generator", "g1/sample", "g1/filter"]
    # Recorded once, under the generator's name, before the filter step was marked finished.
    assert recorded == [(1, "generator", {"num_candidates": 50.0, "num_kept": 40.0}, False)]
    assert runner.queue.generations == [1]
    shard = torch.load(runner.run.queue_dir / "gen_001.pt", weights_only=True)
    assert torch.bincount(shard["labels"], minlength=10).tolist() == [KEPT_PER_CLASS] * 10
    candidates = torch.load(runner.run.candidates_file(1), weights_only=True)
    # The kept images are candidates of their own class.
    for image, label in zip(shard["images"], shard["labels"], strict=True):
        same = (candidates["images"] == image).flatten(1).all(1)
        assert bool(same.any()) and label in candidates["labels"][same]
    assert runner.run.sample_grid(1).stat().st_size > 0
    assert (runner.run.audit_dir(1)).is_dir()


def test_a_full_queue_evicts_the_oldest_shard_and_its_file(tmp_path, digits):
    runner = _runner(tmp_path, capacity=1)
    _fit(_controller(runner, digits, 1, []), digits)
    _fit(_controller(runner, digits, 2, []), digits)
    assert runner.queue.generations == [2]
    assert sorted(p.name for p in runner.run.queue_dir.glob("*.pt")) == ["gen_002.pt"]
    assert [s["generation"] for s in runner.manifest.queue] == [2]


def test_a_stop_between_sampling_and_filtering_leaves_a_resumable_step(tmp_path, digits):
    runner, calls = _runner(tmp_path), []

    def stop_on_second_check() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise _Stop

    with pytest.raises(_Stop):
        _fit(_controller(runner, digits, 1, [], stop_on_second_check), digits)
    assert runner.manifest.completed == ["g1/generator", "g1/sample"]
    assert runner.queue.generations == []
    candidates = runner.run.candidates_file(1).read_bytes()

    recorded: list = []
    generator = PerfectGenerator(num_classes=10, channels=3, image_size=SIZE)
    generator.load_generator_state(torch.load(runner.run.generator_weights(1), weights_only=True))
    _controller(runner, digits, 1, recorded).resume(SingleDeviceStrategy(torch.device("cpu")), generator)
    assert runner.manifest.completed == ["g1/generator", "g1/sample", "g1/filter"]
    assert runner.run.candidates_file(1).read_bytes() == candidates  # not sampled again
    assert [r[:2] for r in recorded] == [(1, "generator")]
    assert runner.queue.generations == [1]

"""A seconds-long ``SelfConsumingLoop`` built in process: 16 px embedded digits, LeNet, a reference generator.

The pieces are the real ones the CLI builds (data module, classifier and generator specs, filter, run
directory, manifest, queue, metrics log); only their sizes are tiny. Opening a run directory that holds a
manifest resumes it, as the CLI does.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from selfloop.classifiers.image_classifier import ImageClassifier
from selfloop.data.digits import ColoredDigitsDataModule
from selfloop.filtering.sample_filter import SampleFilter
from selfloop.generators.base import ConditionalGenerator
from selfloop.generators.reference import PerfectGenerator
from selfloop.run.layout import RunDirectory
from selfloop.run.manifest import Manifest
from selfloop.run.metrics_log import MetricsLog
from selfloop.run.phases import PhaseRunner
from selfloop.run.queue import StackingQueue
from selfloop.training.loop import SelfConsumingLoop
from selfloop.training.loop_config import LoopConfig
from selfloop.training.module_spec import ModuleSpec

SIZE = 16
TINY_LOOP = LoopConfig(
    generations=2,
    samples_per_generation=40,
    archs=["lenet"],
    generator_epochs=1,
    early_stopping_patience=1,
    fid_samples=20,
)
TINY_TRAINER: dict[str, Any] = {
    "accelerator": "cpu",
    "devices": 1,
    "max_epochs": 1,
    "limit_train_batches": 4,
    "limit_val_batches": 2,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "enable_checkpointing": False,
    "logger": False,
}


def tiny_loop(
    run_dir: Path,
    datamodule: ColoredDigitsDataModule | None = None,
    generator: type[ConditionalGenerator] = PerfectGenerator,
    trainer: dict[str, Any] | None = None,
    sample_filter: SampleFilter | None = None,
    generator_args: dict[str, Any] | None = None,
    **loop: Any,
) -> SelfConsumingLoop:
    """The loop of a tiny run in ``run_dir`` (created, or resumed when it holds a manifest).

    Args:
        run_dir: the run directory.
        datamodule: the data set (default: 16 px colourised digits).
        generator: the generator class (default: ``PerfectGenerator``: no training, real images).
        trainer: ``Trainer`` arguments replacing ``TINY_TRAINER``'s.
        sample_filter: the filter (default: drop 20% by the previous classifier's uncertainty).
        generator_args: further arguments of the generator (e.g. a density-seeking ``tilt``).
        **loop: ``LoopConfig`` fields replacing ``TINY_LOOP``'s.
    """
    config = replace(TINY_LOOP, **loop)
    dm = datamodule or ColoredDigitsDataModule(image_size=SIZE)
    run = RunDirectory(run_dir)
    run.create()
    if run.manifest_file.is_file():
        manifest = Manifest.load(run.manifest_file)
    else:
        manifest = Manifest(seed=config.seed, metrics=[])
    queue = StackingQueue.from_state(run.queue_dir, config.kept_generations(), manifest.queue)
    runner = PhaseRunner(run, manifest, queue, MetricsLog(run.metrics_file, run.summary_dir, config.seed))
    runner.restore_metrics()
    runner.save_manifest()
    shape = {"num_classes": dm.num_classes, "image_size": dm.image_size}
    return SelfConsumingLoop(
        config,
        ModuleSpec(ImageClassifier, {"arch": "lenet", "in_channels": dm.channels, **shape}),
        ModuleSpec(generator, {"channels": dm.channels, **shape, **(generator_args or {})}),
        dm,
        sample_filter or SampleFilter(drop_fraction=0.2),
        {**TINY_TRAINER, **(trainer or {})},
        runner,
    )

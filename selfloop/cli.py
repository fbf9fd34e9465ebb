"""``python main.py fit --config configs/X.yaml``: LightningCLI whose ``fit`` runs the generation loop."""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

from jsonargparse import lazy_instance
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info

from selfloop.classifiers.image_classifier import ImageClassifier
from selfloop.data.base import SelfLoopDataModule
from selfloop.errors import NonFiniteLossError, RunInterrupted
from selfloop.filtering.review import ReviewPending
from selfloop.filtering.sample_filter import SampleFilter
from selfloop.generators.base import ConditionalGenerator
from selfloop.generators.dcgan import ConditionalDCGAN
from selfloop.loop import SelfConsumingLoop
from selfloop.loop_config import LoopConfig
from selfloop.module_spec import ModuleSpec
from selfloop.run.atomic import atomic_write_text
from selfloop.run.compat import ConfigMismatchError, incompatible_changes, result_config
from selfloop.run.layout import RunDirectory, RunDirectoryError
from selfloop.run.manifest import Manifest, ManifestError
from selfloop.run.metrics_log import MetricsLog
from selfloop.run.phases import PhaseRunner
from selfloop.run.queue import ShardError, StackingQueue

RUN_DIR_FLAG = "--loop.run_dir"
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": 50,
    "enable_checkpointing": False,
    "log_every_n_steps": 10,
}


class SelfLoopCLI(LightningCLI):
    """The selfloop command line.

    Config groups: ``trainer`` (shared by every phase; ``max_epochs`` caps classifier fits), ``model``
    (the classifier's hyperparameters), ``data`` (a ``SelfLoopDataModule``), ``generator`` (a
    ``ConditionalGenerator``), ``filter`` (``SampleFilter``) and ``loop`` (``LoopConfig``).
    ``fit`` runs the whole self-consuming loop, building a fresh Trainer per phase from the parsed
    config (instantiating the trainer twice would duplicate callbacks). The ``model`` and
    ``generator`` groups are parsed, never instantiated here: each phase builds a fresh model.
    """

    def __init__(self, args: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("trainer_defaults", TRAINER_DEFAULTS)
        # Arguments from the command line (not a list given in Python) are what DDP re-runs for its ranks.
        self._command_line = args is None
        super().__init__(
            ImageClassifier,
            SelfLoopDataModule,
            subclass_mode_data=True,
            save_config_callback=None,
            auto_configure_optimizers=False,
            seed_everything_default=False,
            args=args,
            **kwargs,
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # Trainer.fit's checkpoint arguments do not apply: resume is the run directory's job.
        return {
            "fit": {
                "model",
                "train_dataloaders",
                "val_dataloaders",
                "datamodule",
                "ckpt_path",
                "weights_only",
            }
        }

    def add_core_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(self.trainer_class, "trainer")
        parser.set_defaults({f"trainer.{k}": v for k, v in self.trainer_defaults.items() if k != "callbacks"})
        parser.add_class_arguments(
            ImageClassifier, "model", fail_untyped=False, instantiate=False, sub_configs=True
        )
        parser.add_lightning_class_args(self._datamodule_class, "data", subclass_mode=True)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_dataclass_arguments(LoopConfig, "loop")
        parser.add_subclass_arguments(
            ConditionalGenerator, "generator", default=lazy_instance(ConditionalDCGAN), instantiate=False
        )
        parser.add_class_arguments(SampleFilter, "filter")
        for source, target in [
            ("num_classes", "num_classes"),
            ("channels", "in_channels"),
            ("image_size", "image_size"),
        ]:
            parser.link_arguments(f"data.{source}", f"model.{target}", apply_on="instantiate")
        for attr in ("num_classes", "channels", "image_size"):
            parser.link_arguments(f"data.{attr}", f"generator.init_args.{attr}", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        loop = config.loop
        loop_config = LoopConfig(**{k: v for k, v in vars(loop).items() if not k.startswith("__")})
        problems = loop_config.problems(config.model.arch)
        if problems:
            self.parser.error("; ".join(problems))

    def fit(self, model: Any, datamodule: SelfLoopDataModule, **_: Any) -> None:
        config = self.config_init[self.subcommand]
        loop: LoopConfig = config.loop
        run = RunDirectory(loop.run_dir) if loop.run_dir else RunDirectory.next_version(loop.root, loop.name)
        _ = datamodule.real  # a missing or damaged data set fails here, before a run directory exists
        run.create()
        current = result_config(self.config[self.subcommand].as_dict())
        resumed = run.manifest_file.is_file()
        if resumed:
            manifest = Manifest.load(run.manifest_file)
            changes = incompatible_changes(manifest.config, current)
            if changes:
                raise ConfigMismatchError(
                    f"{run.path} holds a run with a different config, so it cannot be resumed: "
                    + "; ".join(changes)
                    + ". To start a new run, pass another --loop.run_dir (or none for a new version folder)"
                )
            rank_zero_info(f"[selfloop] resuming {run.path}: {len(manifest.completed)} phases already done")
        else:
            manifest = Manifest(seed=loop.seed, config=current)
        queue = StackingQueue.from_state(run.queue_dir, loop.queue_capacity, manifest.queue)
        runner = PhaseRunner(run, manifest, queue, MetricsLog(run.metrics_file, run.summary_dir, loop.seed))
        if not resumed:
            parser = self._parser(self.subcommand)
            atomic_write_text(run.config_file, parser.dump(self.config[self.subcommand], skip_none=False))
            runner.save_manifest()
        trainer_kwargs = dict(self._get(self.config_init, "trainer", default={}))
        resume_command = shlex.join(["python", *sys.argv])
        if RUN_DIR_FLAG not in sys.argv:
            resume_command += f" {RUN_DIR_FLAG} {shlex.quote(str(run.path))}"
            if self._command_line:
                # DDP starts ranks 1.. by re-running this command line: the explicit flag gives them
                # rank 0's run directory instead of a version folder of their own.
                sys.argv += [RUN_DIR_FLAG, str(run.path)]
        SelfConsumingLoop(
            loop,
            ModuleSpec.from_config(model, ImageClassifier),
            ModuleSpec.from_config(config.generator),
            datamodule,
            config.filter,
            trainer_kwargs,
            runner,
            resume_command,
        ).run()


# Errors that describe a wrong config value, a missing or damaged file, or a diverged phase: the user
# gets one line naming the flag or path; SELFLOOP_DEBUG=1 shows the traceback instead.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    RunDirectoryError,
    ManifestError,
    ShardError,
    NonFiniteLossError,
    ConfigMismatchError,
)


def main(args: Any = None) -> None:
    """Run the CLI, turning user errors into a one-line message and exit status 2."""
    try:
        SelfLoopCLI(args=args)
    except RunInterrupted as err:
        print(f"selfloop: {err}", file=sys.stderr)
        sys.exit(143)
    except ReviewPending as err:
        print(f"selfloop: {err}", file=sys.stderr)
        sys.exit(3)
    except USER_ERRORS as err:
        if os.environ.get("SELFLOOP_DEBUG"):
            raise
        print(f"selfloop: error: {err}\n(set SELFLOOP_DEBUG=1 to see the traceback)", file=sys.stderr)
        sys.exit(2)

"""``python main.py fit --config configs/X.yaml``: LightningCLI whose ``fit`` runs the generation loop."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from jsonargparse import lazy_instance
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from selfloop.classifiers.image_classifier import ImageClassifier
from selfloop.cli.config_checks import missing_prerequisites, sample_count_problem, sample_memory_problem
from selfloop.cli.config_checks import problems as config_problems
from selfloop.cli.preflight import parser_error
from selfloop.console.quiet import quiet_lightning
from selfloop.core.errors import (
    InvalidConfigError,
    MissingWeightsError,
    PrerequisitesMissingError,
    RunInterrupted,
    SelfLoopError,
    yaml_syntax,
)
from selfloop.data.base import SelfLoopDataModule
from selfloop.filtering.review import ReviewPending
from selfloop.filtering.sample_filter import SampleFilter
from selfloop.generators.base import ConditionalGenerator
from selfloop.generators.dcgan import ConditionalDCGAN
from selfloop.run.atomic import named_write_error
from selfloop.run.compat import result_config
from selfloop.run.opening import open_run, run_directory
from selfloop.run.phases import PhaseRunner
from selfloop.run.topology import Topology
from selfloop.training.loop import SelfConsumingLoop
from selfloop.training.loop_config import LoopConfig
from selfloop.training.module_spec import ModuleSpec

RUN_DIR_FLAG = "--loop.run_dir"
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": 50,
    "enable_checkpointing": False,
    "log_every_n_steps": 10,
}

# The --trainer settings that decide where and in how many processes a fit runs.
TOPOLOGY_FLAGS = ("accelerator", "devices", "num_nodes", "strategy")
UNION_ERROR = "Does not validate against any of the Union subtypes"


class SelfLoopArgumentParser(LightningArgumentParser):
    """The CLI's parser: a parse error is one line naming the flag, and a pointer to ``--help``.

    jsonargparse follows argparse and prints the whole usage (about 70 lines here) before the error,
    and lists every member of a union type (``X | None``) with its own complaint; a YAML syntax
    error names ``"<unicode string>"`` instead of the file. This parser prints the relevant line
    only (``SELFLOOP_DEBUG=1`` restores jsonargparse's output).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading: list[str] = []

    def parse_path(self, cfg_path: Any, *args: Any, **kwargs: Any) -> Any:
        # Remembered for error(): jsonargparse parses the file's text and forgets where it came from.
        self._reading.append(str(cfg_path))
        try:
            return super().parse_path(cfg_path, *args, **kwargs)
        finally:
            self._reading.pop()

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        # exit_on_error is False for the parsers jsonargparse builds internally: they must raise.
        if not self.exit_on_error or os.environ.get("SELFLOOP_DEBUG"):
            super().error(message, ex)
        line = one_line(message, ex, self._reading[-1] if self._reading else None)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(parser_error(line, prog))
        sys.exit(2)


def one_line(message: str, error: BaseException | None = None, config_file: str | None = None) -> str:
    """A parser's or a constructor's error as one line that names the flag.

    Args:
        message: the error's text (jsonargparse's may span many lines).
        error: the exception behind it, if any (a YAML syntax error is read from its cause).
        config_file: the config file being read when the error arose.
    """
    syntax = yaml_syntax(error)
    if syntax is not None:
        return f"{config_file or 'the config file'}: {syntax}"
    message = re.sub(r'Parser key "([^"]+)":\s*', r"--\1: ", message)
    if UNION_ERROR in message:
        message = _union_line(message)
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _union_line(message: str) -> str:
    """Of jsonargparse's union report, the complaints of the members that apply."""
    head, _, report = message.partition(UNION_ERROR)
    lines = [line.strip() for line in report.splitlines()]
    given = next(
        (line.removeprefix("Given value: ") for line in lines if line.startswith("Given value: ")), ""
    )
    start = lines.index("Errors:") + 1 if "Errors:" in lines else len(lines)
    end = next((i for i, line in enumerate(lines) if line.startswith("Given value")), len(lines))
    items: list[str] = []
    for line in lines[start:end]:
        if line.startswith("- "):
            items.append(line[2:])
        elif items and line:
            items[-1] += " " + line
    if not items:  # not the report this was written for: keep all of it
        return message
    types = [_type_name(item.removeprefix("Expected a ")) for item in items if item.startswith("Expected a ")]
    sentences = [item for item in items if not item.startswith("Expected a ")]
    types = [t for t in types if t != "None"]
    if sentences:  # a member's own check (a constructor's ValueError) says what is wrong
        return head + "; ".join(sentences)
    value = next((t.split(". Got value: ", 1)[1] for t in types if ". Got value: " in t), given)
    types = [t.split(". Got value: ", 1)[0] for t in types]
    return f"{head}expected {' or '.join(types)}, got {value}"


def _type_name(text: str) -> str:
    text = re.sub(r"<class '(?:[\w]+\.)*(\w+)'>", r"\1", text)
    text = re.sub(r"typing\.Literal\[(.*?)\]", r"one of \1", text)
    return "None" if text == "NoneType" else text


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
        kwargs.setdefault("parser_class", SelfLoopArgumentParser)
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
        problems = loop_config.problems(config.model.arch) + config_problems(config)
        if problems:
            self._parser(self.subcommand).error("; ".join(problems))

    def instantiate_classes(self) -> None:
        # A constructor's own check of its arguments (``ValueError``) is a config value that cannot work, and
        # so is Lightning's refusal of the --trainer settings (no such accelerator here, invalid devices).
        with _invalid_config():
            try:
                super().instantiate_classes()
            except MissingWeightsError as err:
                # The filter looks for its CLIP weights when it is built: the other prerequisites join it.
                config = self.config[self.subcommand]
                others = missing_prerequisites(config, _data_module(config))
                raise PrerequisitesMissingError([*others, str(err)]) from err
            except MisconfigurationException as err:
                trainer = self.config[self.subcommand].get("trainer") or {}
                settings = " ".join(f"--trainer.{k} {trainer.get(k)}" for k in TOPOLOGY_FLAGS)
                raise InvalidConfigError(
                    f"the trainer settings {settings} cannot run here: {one_line(str(err))}"
                ) from err

    def fit(self, model: Any, datamodule: SelfLoopDataModule, **_: Any) -> None:
        config = self.config_init[self.subcommand]
        loop: LoopConfig = config.loop
        # Every missing file (data, weights) at once, before a run directory exists; a data set that loads
        # but cannot be split as configured is refused here too.
        with _invalid_config():
            missing = missing_prerequisites(self.config[self.subcommand], datamodule)
        if missing:
            raise PrerequisitesMissingError(missing)
        problem = (
            sample_count_problem(loop, datamodule)
            or sample_memory_problem(loop, config.filter, datamodule)
            or self._panel_workers_problem(loop)
        )
        if problem:
            self._parser(self.subcommand).error(problem)
        run = run_directory(loop.run_dir, loop.root, loop.name)
        parser = self._parser(self.subcommand)
        with open_run(
            run,
            result_config(self.config[self.subcommand].as_dict()),
            parser.dump(self.config[self.subcommand], skip_none=False),
            loop.seed,
            loop.kept_generations(),
        ) as runner:
            self._run_loop(runner, model, datamodule)

    def _panel_workers_problem(self, loop: LoopConfig) -> str | None:
        if loop.panel_workers == 1:
            return None
        world_size = Topology.of(self._trainer_kwargs()).world_size
        if world_size == 1:
            return None
        return (
            f"--loop.panel_workers {loop.panel_workers} fits the panel in processes of one device each, and the "
            f"--trainer settings start {world_size} processes per fit (DDP): use one or the other"
        )

    def _trainer_kwargs(self) -> dict[str, Any]:
        return dict(self._get(self.config_init, "trainer", default={}))

    def _run_loop(self, runner: PhaseRunner, model: Any, datamodule: SelfLoopDataModule) -> None:
        config = self.config_init[self.subcommand]
        loop: LoopConfig = config.loop
        run = runner.run
        trainer_kwargs = self._trainer_kwargs()
        resume_command = shlex.join(["python", *sys.argv])
        if RUN_DIR_FLAG not in sys.argv:
            resume_command += f" {RUN_DIR_FLAG} {shlex.quote(str(run.path))}"
            if self._command_line:
                # DDP starts ranks 1.. by re-running this command line: the explicit flag gives them
                # rank 0's run directory instead of a version folder of their own.
                sys.argv += [RUN_DIR_FLAG, str(run.path)]
        previous_hook, threading.excepthook = threading.excepthook, _quiet_event_writer_errors
        try:
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
        except (OSError, RuntimeError) as err:
            # A full disk inside a fit (event files, checkpoints) gets the line of every other failed write.
            named = named_write_error(err, run.path)
            if named is None:
                raise
            raise named from err
        finally:
            threading.excepthook = previous_hook


def _data_module(config: Any) -> SelfLoopDataModule | None:
    """The config's data module built alone (when another group failed to build), or ``None`` if it cannot be."""
    data = config.get("data")
    try:
        module, _, name = data.class_path.rpartition(".")
        return getattr(importlib.import_module(module), name)(**vars(data.init_args))
    except Exception:  # noqa: BLE001 - whatever it is, the data set is then checked once the rest is fixed
        return None


@contextmanager
def _invalid_config() -> Iterator[None]:
    """Report a ``ValueError`` raised while the config is checked as the one-line ``InvalidConfigError``."""
    try:
        yield
    except SelfLoopError:
        raise
    except ValueError as err:
        raise InvalidConfigError(str(err)) from err


def main(args: Any = None) -> None:
    """Run the CLI, turning user errors into a one-line message and exit status 2.

    Lightning's per-phase banners are silenced for the whole run (``selfloop.console.quiet.quiet_lightning``),
    whichever entry point calls this: ``selfloop fit``, ``python main.py``, ``selfloop validate``, a script.
    """
    try:
        with quiet_lightning():
            SelfLoopCLI(args=args)
    except RunInterrupted as err:
        print(f"selfloop: {err}", file=sys.stderr)
        sys.exit(143)
    except ReviewPending as err:
        print(f"selfloop: {err}", file=sys.stderr)
        sys.exit(3)
    except SelfLoopError as err:
        if os.environ.get("SELFLOOP_DEBUG"):
            raise
        print(
            f"selfloop: error: {one_line(str(err))}\n(set SELFLOOP_DEBUG=1 to see the traceback)",
            file=sys.stderr,
        )
        sys.exit(2)


def _quiet_event_writer_errors(args: threading.ExceptHookArgs) -> None:
    """TensorBoard's writer thread prints a failed write as a traceback, then its next call re-raises it in the
    main thread, which reports it in one line (``named_write_error``): the thread's print is left out."""
    from_tensorboard = type(args.thread).__module__.startswith("tensorboard.")
    if not (from_tensorboard and args.exc_value is not None and named_write_error(args.exc_value, ".")):
        threading.__excepthook__(args)

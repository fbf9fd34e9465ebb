"""What the benchmark scripts share: their common options, data, clock and Trainer fit, and reporting.

Imported by ``scripts/bench_overhead.py``, ``bench_device_batches.py`` and ``bench_classifiers.py``
as ``import bench_common`` (a script run as ``python scripts/X.py`` has ``scripts/`` on ``sys.path``),
after each has put the repository on ``sys.path`` so that ``selfloop`` imports without installing.
Nothing here prints except :func:`report_runs`; the scripts keep their own command lines and output.
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import time
import warnings
from collections.abc import Callable, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from selfloop.data.base import RealSplits, SelfLoopDataModule
from selfloop.data.image_set import ImageSet

THREADS_HELP = "torch intra-op threads (0: torch's default; 1 keeps timings stable on a shared CPU)"

Runs = dict[str, list[tuple[float, float]]]
"""Per side (or data path): its timed runs as (total s, steady-window s), in the order they ran."""


# Command line -----------------------------------------------------------------------------------


def make_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of the script's docstring ``doc``, showing defaults."""
    return argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )


def add_repeat_arguments(
    parser: argparse.ArgumentParser, *, warmup_steps: int, runs: str, side: str, skip_help: str
) -> None:
    """``--repeats``, ``--warmup-steps`` and ``--skip`` (checked by :func:`parse_timing_arguments`).

    Args:
        parser: the script's parser.
        warmup_steps: the default of ``--warmup-steps``.
        runs: what the script calls its timed runs ("runs", "fits"), in the help texts.
        side: what it calls each of the compared things ("side", "path"), in the help texts.
        skip_help: the help text of ``--skip``.
    """
    parser.add_argument("--repeats", type=int, default=3, help=f"timed {runs} of each {side} (median taken)")
    parser.add_argument(
        "--warmup-steps", type=int, default=warmup_steps, help=f"steps of the untimed warm-up {runs}"
    )
    parser.add_argument("--skip", type=int, default=None, help=skip_help)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--image-size``, ``--num-images`` and ``--num-classes`` (what :func:`load_data` reads)."""
    parser.add_argument(
        "--data",
        default="digits",
        choices=("digits", "synthetic"),
        help="embedded colorized digits (1,259 train images) or random uint8 images",
    )
    parser.add_argument("--image-size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--num-images", type=int, default=4096, help="synthetic data: number of images")
    parser.add_argument("--num-classes", type=int, default=10, help="synthetic data: number of classes")


def check_cuda(parser: argparse.ArgumentParser, device: str) -> None:
    """Exit with a usage error when ``--device cuda`` is asked for and there is no CUDA device."""
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")


def parse_timing_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Add ``--threads`` (default 1, see :func:`setup`) and ``--seed`` last, parse ``argv``, and check it.

    The script's own options must include ``--steps``, ``--batch-size``, ``--device`` and those of
    :func:`add_repeat_arguments`: ``--steps`` must be >= 2, ``--repeats``, ``--batch-size`` and
    ``--warmup-steps`` >= 1, an unset ``--skip`` becomes ``steps // 10`` and must lie in [0, steps),
    and ``--device cuda`` needs a CUDA device (each failure exits with a usage error).
    """
    parser.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    parser.add_argument("--seed", type=int, default=0, help="model, loader and dropout seed")
    args = parser.parse_args(argv)
    if args.steps < 2 or min(args.repeats, args.batch_size, args.warmup_steps) < 1:
        parser.error("--steps must be >= 2, --repeats, --batch-size and --warmup-steps >= 1")
    if args.skip is None:
        args.skip = args.steps // 10
    if not 0 <= args.skip < args.steps:
        parser.error("--skip must be in [0, steps)")
    check_cuda(parser, args.device)
    return args


def setup(threads: int, cudnn_benchmark: bool | None = None) -> None:
    """Silence warnings and Lightning's info logs (they would drown the figures), set torch's intra-op
    threads when ``threads`` > 0 (0 keeps torch's default) and, unless None, ``cudnn.benchmark``."""
    warnings.filterwarnings("ignore")  # Lightning's num_workers / tips
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if threads > 0:
        torch.set_num_threads(threads)
    if cudnn_benchmark is not None:
        torch.backends.cudnn.benchmark = cudnn_benchmark


# Data -------------------------------------------------------------------------------------------


class InMemoryData(SelfLoopDataModule):
    """A ``SelfLoopDataModule`` around an image set already in memory (CPU or GPU).

    Its loaders are the base class's, so a fit reads batches exactly as the loop's fits do.

    Args:
        train: the training images (uint8, on the device they should be read from).
        num_classes: number of classes.
        batch_size: images per batch.
        device_batches: the data module's ``device_batches`` switch.
    """

    num_subgroups = 1

    def __init__(
        self, train: ImageSet, num_classes: int, batch_size: int, device_batches: bool = False
    ) -> None:
        super().__init__(batch_size=batch_size, device_batches=device_batches)
        self._train = train
        self.num_classes = num_classes
        self.channels = int(train.images.shape[1])
        self.image_size = int(train.images.shape[-1])

    @property
    def class_names(self) -> list[str]:
        return [str(c) for c in range(self.num_classes)]

    @property
    def subgroup_names(self) -> list[str]:
        return ["all"]

    def load_real(self) -> RealSplits:
        return RealSplits(train=self._train, val=self._train, test=self._train)


def load_data(args: argparse.Namespace) -> tuple[ImageSet, int]:
    """The training images (uint8, CPU) and the number of classes.

    Args:
        args: parsed command line (``--data``, ``--image-size``, ``--num-images``, ``--num-classes``,
            ``--seed``).
    """
    if args.data == "digits":
        from selfloop.data.digits import ColoredDigitsDataModule

        return ColoredDigitsDataModule(image_size=args.image_size).real.train, 10
    generator = torch.Generator().manual_seed(args.seed)
    size = (args.num_images, 3, args.image_size, args.image_size)
    images = torch.randint(0, 256, size, dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, args.num_classes, (args.num_images,), generator=generator)
    return ImageSet(images, labels, torch.zeros_like(labels)), args.num_classes


# Timing -----------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work before a clock read (no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock(Callback):
    """Reads the clock before training step ``skip`` and after step ``steps`` (the steady window).

    Args:
        skip: the step (0-based) at which the steady window starts.
        steps: total optimizer steps of the fit.
        sync: called before each clock read (``torch.cuda.synchronize`` on a GPU).
    """

    def __init__(self, skip: int, steps: int, sync: Callable[[], None]) -> None:
        self.skip, self.steps, self.sync = skip, steps, sync
        self.start = self.end = float("nan")

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx
    ) -> None:
        if trainer.global_step == self.skip:
            self.sync()
            self.start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx
    ) -> None:
        if trainer.global_step == self.steps:
            self.sync()
            self.end = time.perf_counter()


class TrainerBench:
    """Timed ``lightning.Trainer`` fits of one data set on ``args.device``.

    Args:
        args: parsed command line (``--device``, ``--batch-size``, ``--bf16``, ``--seed``).
        data: the training images.
        num_classes: number of classes.
    """

    def __init__(self, args: argparse.Namespace, data: ImageSet, num_classes: int) -> None:
        self.args = args
        self.data = data
        self.num_classes = num_classes
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"

    def sync(self) -> None:
        """Wait for the GPU's queued work before a clock read (no-op on the CPU)."""
        sync(self.device)

    def datamodule(self, device_batches: bool = False) -> InMemoryData:
        """The data module of a fit: ``--batch-size``, and ``--seed`` as its ``loader_seed``."""
        dm = InMemoryData(self.data, self.num_classes, self.args.batch_size, device_batches)
        dm.loader_seed = self.args.seed
        return dm

    def timed_fit(
        self,
        model: L.LightningModule,
        datamodule: L.LightningDataModule,
        steps: int,
        skip: int,
        label: str = "",
        **trainer_options,
    ) -> tuple[float, float]:
        """Trainer construction + ``fit`` of ``steps`` optimizer steps, validation off.

        The global RNG is seeded with ``--seed`` + 1 just before (dropout masks: the same stream on
        every side). ``label`` prefixes the error raised when the fit ran another number of steps;
        ``trainer_options`` go to ``lightning.Trainer``. Returns (total s, steady-window s).
        """
        clock = StepClock(skip, steps, self.sync)
        gc.collect()
        torch.manual_seed(self.args.seed + 1)
        self.sync()
        start = time.perf_counter()
        trainer = L.Trainer(
            accelerator="gpu" if self.cuda else "cpu",
            devices=1,
            max_steps=steps,
            max_epochs=-1,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            precision="bf16-mixed" if self.args.bf16 else "32-true",
            callbacks=[clock],
            **trainer_options,
        )
        trainer.fit(model, datamodule=datamodule)
        self.sync()
        total = time.perf_counter() - start
        if trainer.global_step != steps:
            raise RuntimeError(
                f"{label}Lightning ran {trainer.global_step} optimizer steps, expected {steps}"
            )
        return total, clock.end - clock.start


def alternate(
    names: Sequence[str], repeats: int, run: Callable[[str], tuple[float, float, torch.nn.Module]]
) -> tuple[Runs, dict[str, torch.nn.Module]]:
    """``run(name)`` for every name, ``repeats`` times, in turn (reversed order every other repeat).

    ``run`` returns (total s, steady-window s, trained model). Returns the runs of each name and the
    model of its last run.
    """
    runs: Runs = {name: [] for name in names}
    models: dict[str, torch.nn.Module] = {}
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            total, steady, models[name] = run(name)
            runs[name].append((total, steady))
    return runs, models


def report_runs(
    runs: Runs, steps: int, skip: int, prefix: str = ""
) -> tuple[dict[str, float], dict[str, float]]:
    """Print each name's runs, ms per step and steady-window ms per step (``{prefix}{name}_runs_s: …``
    lines); return the median total and median steady-window seconds of each name."""
    steady_steps = steps - skip
    med = {name: statistics.median(t for t, _ in r) for name, r in runs.items()}
    med_steady = {name: statistics.median(s for _, s in r) for name, r in runs.items()}
    for name, r in runs.items():
        print(f"{prefix}{name}_runs_s: " + " ".join(f"{t:.4f}" for t, _ in r))
    for name in runs:
        print(f"{prefix}{name}_ms_per_step: {1e3 * med[name] / steps:.4f}")
    for name in runs:
        print(f"{prefix}{name}_steady_ms_per_step: {1e3 * med_steady[name] / steady_steps:.4f}")
    return med, med_steady


def max_param_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """Largest absolute difference between the parameters of two models of the same class."""
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return max(float((x.detach().cpu().float() - y.detach().cpu().float()).abs().max()) for x, y in pairs)

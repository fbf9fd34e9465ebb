"""Step time of a classifier fit with the DataLoader path and with ``device_batches``, as a ratio.

    python scripts/bench_device_batches.py [--device cpu|cuda] [--arch lenet] [--batch-size 64]
        [--steps 200] [--repeats 3] [--data digits|synthetic] [--num-images 4096] [--image-size 32]
        [--compile] [--compile-backend inductor] [--bf16] [--threads 1]

Both paths train selfloop's ``ImageClassifier`` (same seed) through a ``lightning.Trainer`` on the
same ``SelfLoopDataModule`` with the same ``loader_seed``, as every classifier phase of the loop does:

* **dataloader** (``device_batches: false``): the uint8 train set stays on the CPU; a ``DataLoader``
  gathers each batch there (``ImageSet.__getitems__``) and Lightning copies it to the device.
* **device_batches** (``device_batches: true``): the train set is copied to the device once per fit
  and every batch is an index gather there (:class:`selfloop.data.device_batches.DeviceBatches`).

The two see identical batches, so their trained weights agree (``max_param_diff``; exactly 0 on the
CPU). Timed: Trainer construction + ``fit`` of ``--steps`` optimizer steps (validation off); the
steady window leaves out the first ``--skip`` steps. After an untimed warm-up fit of each path, the
paths alternate ``--repeats`` times in one process and the medians are compared: ``ratio`` is
dataloader / device_batches (above 1: device_batches is faster). ``loader_*`` time the data path
alone (``--steps`` batches, each moved to the device as Lightning moves it, no model). ``--compile``
repeats the pair with ``torch.compile`` of the classifier (its first fit, untimed, compiles).

On a GPU every clock read is preceded by ``torch.cuda.synchronize()``. Output is ``key: value``
lines, easy to grep.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing the package

import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402

from selfloop.classifiers.backbones import ARCHS  # noqa: E402
from selfloop.classifiers.image_classifier import ImageClassifier  # noqa: E402
from selfloop.data.base import RealSplits, SelfLoopDataModule  # noqa: E402
from selfloop.data.device_batches import DeviceBatches  # noqa: E402
from selfloop.data.image_set import ImageSet  # noqa: E402

PATHS = ("dataloader", "device_batches")


class InMemoryData(SelfLoopDataModule):
    """A ``SelfLoopDataModule`` around an image set in CPU memory; its loaders are the base class's.

    Args:
        train: the training images (uint8, CPU).
        num_classes: number of classes.
        batch_size: images per batch.
        device_batches: the data module's ``device_batches`` switch.
    """

    num_subgroups = 1

    def __init__(self, train: ImageSet, num_classes: int, batch_size: int, device_batches: bool) -> None:
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


class StepClock(Callback):
    """Reads the clock before training step ``skip`` and after step ``steps`` (the steady window)."""

    def __init__(self, skip: int, steps: int, sync: Callable[[], None]) -> None:
        self.skip, self.steps, self.sync = skip, steps, sync
        self.start = self.end = float("nan")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.skip:
            self.sync()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.steps:
            self.sync()
            self.end = time.perf_counter()


def load_data(args: argparse.Namespace) -> tuple[ImageSet, int]:
    """The training images (uint8, CPU) and the number of classes."""
    if args.data == "digits":
        from selfloop.data.digits import ColoredDigitsDataModule

        return ColoredDigitsDataModule(image_size=args.image_size).real.train, 10
    generator = torch.Generator().manual_seed(args.seed)
    size = (args.num_images, 3, args.image_size, args.image_size)
    images = torch.randint(0, 256, size, dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, args.num_classes, (args.num_images,), generator=generator)
    return ImageSet(images, labels, torch.zeros_like(labels)), args.num_classes


class Bench:
    """The two data paths on one data set and one model recipe."""

    def __init__(self, args: argparse.Namespace, data: ImageSet, num_classes: int) -> None:
        self.args = args
        self.data = data
        self.num_classes = num_classes
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def model(self, compiled: bool) -> ImageClassifier:
        torch.manual_seed(self.args.seed)
        model = ImageClassifier(
            arch=self.args.arch,
            num_classes=self.num_classes,
            in_channels=int(self.data.images.shape[1]),
            image_size=int(self.data.images.shape[-1]),
        )
        if compiled:
            # In place: the module's __call__ (preprocess + backbone) is compiled, state_dict keys stay.
            model.compile(backend=self.args.compile_backend)
        return model

    def datamodule(self, path: str) -> InMemoryData:
        dm = InMemoryData(self.data, self.num_classes, self.args.batch_size, path == "device_batches")
        dm.loader_seed = self.args.seed
        return dm

    def fit(self, path: str, steps: int, skip: int, compiled: bool) -> tuple[float, float, ImageClassifier]:
        """One Trainer fit on ``path``; returns (total s, steady-window s, trained model)."""
        model = self.model(compiled)
        datamodule = self.datamodule(path)
        clock = StepClock(skip, steps, self.sync)
        gc.collect()
        torch.manual_seed(self.args.seed + 1)  # dropout masks: the same stream on both paths
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
        )
        trainer.fit(model, datamodule=datamodule)
        self.sync()
        total = time.perf_counter() - start
        if trainer.global_step != steps:
            raise RuntimeError(
                f"{path}: Lightning ran {trainer.global_step} optimizer steps, expected {steps}"
            )
        return total, clock.end - clock.start, model

    def loader_only(self, path: str) -> float:
        """Seconds to take ``--steps`` batches on ``path`` and move each to the device, no model."""
        dm = self.datamodule(path)
        dm.setup("fit")
        if path == "device_batches":
            loader: Iterable = DeviceBatches(
                dm.train_set,
                dm.batch_size,
                shuffle=True,
                generator=torch.Generator().manual_seed(dm.loader_seed),
                device=self.device,
            )
        else:
            loader = dm.train_dataloader()
        self.sync()
        start = time.perf_counter()
        taken = 0
        while taken < self.args.steps:
            # Like Lightning: len(loader) batches per epoch, each moved with non_blocking.
            for batch in itertools.islice(iter(loader), min(len(loader), self.args.steps - taken)):
                batch = tuple(t.to(self.device, non_blocking=True) for t in batch)
                taken += 1
        self.sync()
        return time.perf_counter() - start


def max_param_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return max(float((x.detach().cpu().float() - y.detach().cpu().float()).abs().max()) for x, y in pairs)


def measure(bench: Bench, compiled: bool, prefix: str) -> dict[str, float]:
    """Warm up, then alternate the two paths ``--repeats`` times; print and return the medians."""
    args = bench.args
    warm = min(args.warmup_steps, args.steps)
    if compiled:
        # Past the first epoch's end, so the last (partial) batch's shape is compiled too.
        warm = max(warm, -(-len(bench.data) // args.batch_size) + 1)
    for path in PATHS:
        bench.fit(path, warm, 0, compiled)
    runs: dict[str, list[tuple[float, float]]] = {path: [] for path in PATHS}
    models: dict[str, ImageClassifier] = {}
    for repeat in range(args.repeats):
        for path in PATHS if repeat % 2 == 0 else PATHS[::-1]:
            total, steady, models[path] = bench.fit(path, args.steps, args.skip, compiled)
            runs[path].append((total, steady))
    steady_steps = args.steps - args.skip
    med = {p: statistics.median(t for t, _ in r) for p, r in runs.items()}
    med_steady = {p: statistics.median(s for _, s in r) for p, r in runs.items()}
    for path in PATHS:
        print(f"{prefix}{path}_runs_s: " + " ".join(f"{t:.4f}" for t, _ in runs[path]))
    for path in PATHS:
        print(f"{prefix}{path}_ms_per_step: {1e3 * med[path] / args.steps:.4f}")
    for path in PATHS:
        print(f"{prefix}{path}_steady_ms_per_step: {1e3 * med_steady[path] / steady_steps:.4f}")
    ratio = med["dataloader"] / med["device_batches"]
    steady_ratio = med_steady["dataloader"] / med_steady["device_batches"]
    print(f"{prefix}max_param_diff: {max_param_diff(models['dataloader'], models['device_batches']):.3g}")
    print(f"{prefix}ratio: {ratio:.4f}")
    print(f"{prefix}steady_ratio: {steady_ratio:.4f}")
    return {"steady_device": med_steady["device_batches"] / steady_steps}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the model trains")
    parser.add_argument("--arch", default="lenet", choices=ARCHS, help="classifier backbone (from scratch)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per timed fit")
    parser.add_argument("--repeats", type=int, default=3, help="timed fits of each path (median taken)")
    parser.add_argument("--warmup-steps", type=int, default=20, help="steps of the untimed warm-up fits")
    parser.add_argument(
        "--skip", type=int, default=None, help="steps left out of the steady window (steps // 10)"
    )
    parser.add_argument(
        "--data", default="digits", choices=("digits", "synthetic"),
        help="embedded colorized digits (1,259 train images) or random uint8 images",
    )  # fmt: skip
    parser.add_argument("--image-size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--num-images", type=int, default=4096, help="synthetic data: number of images")
    parser.add_argument("--num-classes", type=int, default=10, help="synthetic data: number of classes")
    parser.add_argument(
        "--compile", action="store_true", help="also measure with torch.compile of the classifier"
    )
    parser.add_argument(
        "--compile-backend", default="inductor", help="torch.compile backend (aot_eager: quick)"
    )
    parser.add_argument("--bf16", action="store_true", help="Trainer precision bf16-mixed")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch intra-op threads (0: torch's default; 1 keeps timings stable on a shared CPU)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="model, loader and dropout seed")
    args = parser.parse_args(argv)
    if args.steps < 2 or min(args.repeats, args.batch_size, args.warmup_steps) < 1:
        parser.error("--steps must be >= 2, --repeats, --batch-size and --warmup-steps >= 1")
    if args.skip is None:
        args.skip = args.steps // 10
    if not 0 <= args.skip < args.steps:
        parser.error("--skip must be in [0, steps)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures; returns 0."""
    args = parse_args(argv)
    warnings.filterwarnings("ignore")  # Lightning's num_workers / tips; they would drown the figures
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    data, num_classes = load_data(args)
    bench = Bench(args, data, num_classes)
    device = bench.device
    print(f"device: {device.type}" + (f" ({torch.cuda.get_device_name(device)})" if bench.cuda else " (cpu)"))
    print(f"torch: {torch.__version__}  lightning: {L.__version__}  threads: {torch.get_num_threads()}")
    shape = "x".join(str(s) for s in data.images.shape)
    print(
        f"setup: arch {args.arch}  data {args.data} {shape} uint8  batch_size {args.batch_size}  "
        f"precision {'bf16-mixed' if args.bf16 else '32-true'}"
    )
    print(f"steps: {args.steps}  skip: {args.skip}  repeats: {args.repeats}")
    print("ratio_means: dataloader / device_batches time (above 1: device_batches is faster)")

    for path in PATHS:  # warm-up of the data path alone
        bench.loader_only(path)
    loader = {path: statistics.median(bench.loader_only(path) for _ in range(args.repeats)) for path in PATHS}
    for path in PATHS:
        print(f"loader_{path}_us_per_batch: {1e6 * loader[path] / args.steps:.2f}")
    print(f"loader_ratio: {loader['dataloader'] / loader['device_batches']:.4f}")

    eager = measure(bench, compiled=False, prefix="")
    if args.compile:
        print(f"compile_backend: {args.compile_backend}")
        compiled = measure(bench, compiled=True, prefix="compiled_")
        # Eager over compiled, both on device_batches: what torch.compile adds on top.
        print(f"compile_speedup: {eager['steady_device'] / compiled['steady_device']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

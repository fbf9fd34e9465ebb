"""Lightning overhead: the same classifier, data and optimizer steps through Lightning and a plain loop.

    python scripts/bench_overhead.py [--arch lenet] [--steps 300] [--batch-size 64] [--repeats 3]
        [--data digits|synthetic] [--device cpu|cuda] [--channels-last] [--bf16] [--threads 1]

Both sides train selfloop's ``ImageClassifier`` (built with the same seed) with its own Adam
(``configure_optimizers``) for the same number of optimizer steps, on the same batches of the same
in-memory uint8 tensors, each batch converted by the module's own ``preprocess`` (its ``forward``):

* **lightning**: a ``SelfLoopDataModule`` (the real loader: ``ImageSet.__getitems__`` gathers,
  ``loader_seed``-keyed shuffling) and a ``lightning.Trainer`` with logger, checkpointing, progress
  bar, model summary and validation off and ``max_steps``; the module's ``training_step`` runs as in
  the loop (cross-entropy, accuracy, ``log_dict`` on epoch).
* **plain**: a ``for`` loop over the identical index batches (precomputed, untimed, from a loader
  built exactly like the data module's) with ``model(x)``, ``F.cross_entropy``, ``zero_grad``,
  ``backward``, ``step``.

Timed: Trainer construction + ``fit`` (what every phase of the loop pays) against the plain loop
including ``model.to(device)``; both on a model built beforehand. After an untimed warm-up of each,
the two alternate ``--repeats`` times in one process and the medians are compared. ``ratio`` uses the
whole run; ``steady_ratio`` only steps ``--skip``..``--steps`` (per-fit fixed costs excluded). On a
GPU every clock read is preceded by ``torch.cuda.synchronize()`` and the uint8 data lives on the GPU.
Both sides seed the global RNG identically before training (dropout masks), so on the CPU their final
weights agree: ``max_param_diff`` shows that the two did the same work.

Output is one ``key: value`` per line (``ratio: 1.03``, ``goal_met: yes``), easy to grep.
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing the package

import lightning as L  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402
from torch import Tensor  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from selfloop.classifiers.backbones import ARCHS  # noqa: E402
from selfloop.classifiers.image_classifier import ImageClassifier  # noqa: E402
from selfloop.data.base import RealSplits, SelfLoopDataModule  # noqa: E402
from selfloop.data.image_set import ImageSet  # noqa: E402

GOAL = 1.05
"""Lightning may cost at most 5% more time per step than the plain loop."""


class InMemoryDataModule(SelfLoopDataModule):
    """A ``SelfLoopDataModule`` around an image set that is already in memory (CPU or GPU).

    Its loaders are the base class's, so the Lightning side reads batches exactly as the loop does.

    Args:
        train: the training images (uint8, on the device they should be read from).
        num_classes: number of classes.
        batch_size: images per batch.
    """

    num_subgroups = 1

    def __init__(self, train: ImageSet, num_classes: int, batch_size: int) -> None:
        super().__init__(batch_size=batch_size)
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


class _Indices(torch.utils.data.Dataset):
    """Dataset whose batches are the sampled indices themselves (to replay the loader's order)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, indices: Sequence[int]) -> Tensor:
        return torch.as_tensor(indices, dtype=torch.long)


class StepClock(Callback):
    """Reads the clock before training step ``skip`` and after the last step (steady-state window).

    Args:
        skip: the step (0-based) at which the steady-state window starts.
        steps: total optimizer steps of the fit.
        sync: called before each clock read (``torch.cuda.synchronize`` on a GPU).
    """

    def __init__(self, skip: int, steps: int, sync: Callable[[], None]) -> None:
        self.skip = skip
        self.steps = steps
        self.sync = sync
        self.start = float("nan")
        self.end = float("nan")

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


def load_data(args: argparse.Namespace) -> tuple[ImageSet, int]:
    """The training images (uint8, CPU) and the number of classes.

    Args:
        args: parsed command line (``--data``, ``--image-size``, ``--num-images``, ``--num-classes``).
    """
    if args.data == "digits":
        from selfloop.data.digits import ColoredDigitsDataModule

        return ColoredDigitsDataModule(image_size=args.image_size).real.train, 10
    generator = torch.Generator().manual_seed(args.seed)
    size = (args.num_images, 3, args.image_size, args.image_size)
    images = torch.randint(0, 256, size, dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, args.num_classes, (args.num_images,), generator=generator)
    return ImageSet(images, labels, torch.zeros_like(labels)), args.num_classes


def batch_indices(n: int, batch_size: int, seed: int, steps: int) -> list[Tensor]:
    """The index batches the data module's train loader yields for ``steps`` steps, epoch after epoch.

    Built exactly like ``SelfLoopDataModule.train_dataloader`` (a generator seeded with
    ``loader_seed``, shuffling, the same batch size), so the plain loop sees the same batches.
    """
    loader = DataLoader(
        _Indices(n),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=lambda batch: batch,
    )
    out: list[Tensor] = []
    while len(out) < steps:
        # Like Lightning, take len(loader) batches per epoch without exhausting the iterator: when the
        # data divides into full batches, exhausting it would draw once more from the generator
        # (RandomSampler's trailing randperm) and shift every later epoch's order.
        batches = iter(loader)
        for _ in range(min(len(loader), steps - len(out))):
            out.append(next(batches))
    return out


class Bench:
    """Both training paths on one data set and one model recipe.

    Args:
        args: parsed command line.
        data: training images, already on ``args.device``.
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
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def model(self) -> ImageClassifier:
        """A fresh classifier, identical on both sides (same seed, same hyperparameters)."""
        torch.manual_seed(self.args.seed)
        image_size = int(self.data.images.shape[-1])
        model = ImageClassifier(
            arch=self.args.arch, num_classes=self.num_classes, in_channels=3, image_size=image_size
        )
        if self.args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast with ``--bf16`` (what Lightning's ``bf16-mixed`` does), else nothing."""
        if self.args.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def lightning(self, steps: int, skip: int) -> tuple[float, float, ImageClassifier]:
        """Train through ``lightning.Trainer``; returns (total s, steady-state s, trained model)."""
        model = self.model()
        datamodule = InMemoryDataModule(self.data, self.num_classes, self.args.batch_size)
        datamodule.loader_seed = self.args.seed
        clock = StepClock(skip, steps, self.sync)
        gc.collect()
        torch.manual_seed(self.args.seed + 1)  # dropout masks: the same stream as the plain side
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
            benchmark=self.args.cudnn_benchmark,
            callbacks=[clock],
        )
        trainer.fit(model, datamodule=datamodule)
        self.sync()
        total = time.perf_counter() - start
        if trainer.global_step != steps:
            raise RuntimeError(f"Lightning ran {trainer.global_step} optimizer steps, expected {steps}")
        return total, clock.end - clock.start, model

    def plain(self, batches: list[Tensor], skip: int) -> tuple[float, float, ImageClassifier]:
        """Train with a plain PyTorch loop; returns (total s, steady-state s, trained model)."""
        model = self.model()
        images, labels = self.data.images, self.data.labels
        gc.collect()
        torch.manual_seed(self.args.seed + 1)
        self.sync()
        start = time.perf_counter()
        model = model.to(self.device)
        model.train()
        optimizer = model.configure_optimizers()
        steady = start
        for step, index in enumerate(batches):
            if step == skip:
                self.sync()
                steady = time.perf_counter()
            x, y = images[index], labels[index]
            with self.autocast():
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        self.sync()
        end = time.perf_counter()
        return end - start, end - steady, model


def max_param_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """Largest absolute difference between the parameters of two models of the same class."""
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return max(float((x.detach().cpu().float() - y.detach().cpu().float()).abs().max()) for x, y in pairs)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--arch", default="lenet", choices=ARCHS, help="classifier backbone (from scratch)")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per timed run")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side (median taken)")
    parser.add_argument("--warmup-steps", type=int, default=30, help="steps of the untimed warm-up runs")
    parser.add_argument(
        "--skip",
        type=int,
        default=None,
        help="steps excluded from the steady-state window (unset: steps // 10)",
    )
    parser.add_argument(
        "--data", default="digits", choices=("digits", "synthetic"),
        help="embedded colorized digits (1,259 train images) or random uint8 images",
    )  # fmt: skip
    parser.add_argument("--image-size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--num-images", type=int, default=4096, help="synthetic data: number of images")
    parser.add_argument("--num-classes", type=int, default=10, help="synthetic data: number of classes")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where data and model live")
    parser.add_argument("--channels-last", action="store_true", help="model in channels_last memory format")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (Lightning: precision bf16-mixed)")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="set torch.backends.cudnn.benchmark")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (0: torch's default; 1 keeps timings stable on a shared CPU)",
    )
    parser.add_argument("--seed", type=int, default=0, help="model, loader and dropout seed")
    args = parser.parse_args(argv)
    if args.steps < 2 or args.repeats < 1 or args.batch_size < 1 or args.warmup_steps < 1:
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
    torch.backends.cudnn.benchmark = args.cudnn_benchmark

    cpu_data, num_classes = load_data(args)
    device = torch.device(args.device)
    data = ImageSet(cpu_data.images.to(device), cpu_data.labels.to(device), cpu_data.subgroups.to(device))
    bench = Bench(args, data, num_classes)
    batches = batch_indices(len(data), args.batch_size, args.seed, args.steps)
    if bench.cuda:
        batches = [b.to(device) for b in batches]

    print(f"device: {device.type}" + (f" ({torch.cuda.get_device_name(device)})" if bench.cuda else ""))
    print(f"torch: {torch.__version__}  lightning: {L.__version__}  threads: {torch.get_num_threads()}")
    shape = "x".join(str(s) for s in data.images.shape)
    print(f"arch: {args.arch}  data: {args.data} {shape} uint8  batch_size: {args.batch_size}")
    print(
        f"options: channels_last={args.channels_last} bf16={args.bf16} cudnn_benchmark={args.cudnn_benchmark}"
    )

    # Warm-up: allocator, kernels, lazy imports and first-call costs on both sides.
    warm = min(args.warmup_steps, args.steps)
    bench.lightning(warm, 0)
    bench.plain(batches[:warm], 0)

    runs: dict[str, list[tuple[float, float]]] = {"lightning": [], "plain": []}
    models: dict[str, ImageClassifier] = {}
    for repeat in range(args.repeats):
        order = ("lightning", "plain") if repeat % 2 == 0 else ("plain", "lightning")
        for side in order:
            if side == "lightning":
                total, steady, models[side] = bench.lightning(args.steps, args.skip)
            else:
                total, steady, models[side] = bench.plain(batches, args.skip)
            runs[side].append((total, steady))

    steady_steps = args.steps - args.skip
    med = {side: statistics.median(t for t, _ in r) for side, r in runs.items()}
    med_steady = {side: statistics.median(s for _, s in r) for side, r in runs.items()}
    ratio = med["lightning"] / med["plain"]
    steady_ratio = med_steady["lightning"] / med_steady["plain"]
    print(f"steps: {args.steps}")
    print(f"repeats: {args.repeats}")
    for side in ("lightning", "plain"):
        print(f"{side}_runs_s: " + " ".join(f"{t:.4f}" for t, _ in runs[side]))
    for side in ("lightning", "plain"):
        print(f"{side}_ms_per_step: {1e3 * med[side] / args.steps:.4f}")
    for side in ("lightning", "plain"):
        print(f"{side}_steady_ms_per_step: {1e3 * med_steady[side] / steady_steps:.4f}")
    fixed = med["lightning"] - med_steady["lightning"] * args.steps / steady_steps
    print(f"lightning_fixed_cost_s: {fixed:.4f}")
    print(f"max_param_diff: {max_param_diff(models['lightning'], models['plain']):.3g}")
    print(f"ratio: {ratio:.4f}")
    print(f"steady_ratio: {steady_ratio:.4f}")
    print(f"goal: ratio <= {GOAL}")
    print(f"goal_met: {'yes' if ratio <= GOAL else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing the package

import bench_common  # noqa: E402
import lightning as L  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from selfloop.classifiers.backbones import ARCHS  # noqa: E402
from selfloop.classifiers.image_classifier import ImageClassifier  # noqa: E402
from selfloop.data.image_set import ImageSet  # noqa: E402

GOAL = 1.05
"""Lightning may cost at most 5% more time per step than the plain loop."""


class _Indices(torch.utils.data.Dataset):
    """Dataset whose batches are the sampled indices themselves (to replay the loader's order)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, indices: Sequence[int]) -> Tensor:
        return torch.as_tensor(indices, dtype=torch.long)


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


class Bench(bench_common.TrainerBench):
    """Both training paths on one data set and one model recipe.

    Args:
        args: parsed command line.
        data: training images, already on ``args.device``.
        num_classes: number of classes.
    """

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
        # timed_fit seeds dropout with --seed + 1: the same stream as the plain side.
        total, steady = self.timed_fit(
            model, self.datamodule(), steps, skip, benchmark=self.args.cudnn_benchmark
        )
        return total, steady, model

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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = bench_common.make_parser(__doc__)
    parser.add_argument("--arch", default="lenet", choices=ARCHS, help="classifier backbone (from scratch)")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per timed run")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch")
    bench_common.add_repeat_arguments(
        parser,
        warmup_steps=30,
        runs="runs",
        side="side",
        skip_help="steps excluded from the steady-state window (unset: steps // 10)",
    )
    bench_common.add_data_arguments(parser)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where data and model live")
    parser.add_argument("--channels-last", action="store_true", help="model in channels_last memory format")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (Lightning: precision bf16-mixed)")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="set torch.backends.cudnn.benchmark")
    return bench_common.parse_timing_arguments(parser, argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures; returns 0."""
    args = parse_args(argv)
    bench_common.setup(args.threads, cudnn_benchmark=args.cudnn_benchmark)

    cpu_data, num_classes = bench_common.load_data(args)
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

    def run(side: str) -> tuple[float, float, ImageClassifier]:
        if side == "lightning":
            return bench.lightning(args.steps, args.skip)
        return bench.plain(batches, args.skip)

    runs, models = bench_common.alternate(("lightning", "plain"), args.repeats, run)

    print(f"steps: {args.steps}")
    print(f"repeats: {args.repeats}")
    med, med_steady = bench_common.report_runs(runs, args.steps, args.skip)
    ratio = med["lightning"] / med["plain"]
    steady_ratio = med_steady["lightning"] / med_steady["plain"]
    fixed = med["lightning"] - med_steady["lightning"] * args.steps / (args.steps - args.skip)
    print(f"lightning_fixed_cost_s: {fixed:.4f}")
    print(f"max_param_diff: {bench_common.max_param_diff(models['lightning'], models['plain']):.3g}")
    print(f"ratio: {ratio:.4f}")
    print(f"steady_ratio: {steady_ratio:.4f}")
    print(f"goal: ratio <= {GOAL}")
    print(f"goal_met: {'yes' if ratio <= GOAL else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

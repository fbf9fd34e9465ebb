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
import itertools
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing the package

import bench_common  # noqa: E402
import lightning as L  # noqa: E402
import torch  # noqa: E402

from selfloop.classifiers.backbones import ARCHS  # noqa: E402
from selfloop.classifiers.image_classifier import ImageClassifier  # noqa: E402
from selfloop.data.device_batches import DeviceBatches  # noqa: E402

PATHS = ("dataloader", "device_batches")


class Bench(bench_common.TrainerBench):
    """The two data paths on one data set and one model recipe."""

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

    def fit(self, path: str, steps: int, skip: int, compiled: bool) -> tuple[float, float, ImageClassifier]:
        """One Trainer fit on ``path``; returns (total s, steady-window s, trained model)."""
        model = self.model(compiled)
        datamodule = self.datamodule(path == "device_batches")
        # timed_fit seeds dropout with --seed + 1: the same stream on both paths.
        total, steady = self.timed_fit(model, datamodule, steps, skip, label=f"{path}: ")
        return total, steady, model

    def loader_only(self, path: str) -> float:
        """Seconds to take ``--steps`` batches on ``path`` and move each to the device, no model."""
        dm = self.datamodule(path == "device_batches")
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


def measure(bench: Bench, compiled: bool, prefix: str) -> dict[str, float]:
    """Warm up, then alternate the two paths ``--repeats`` times; print and return the medians."""
    args = bench.args
    warm = min(args.warmup_steps, args.steps)
    if compiled:
        # Past the first epoch's end, so the last (partial) batch's shape is compiled too.
        warm = max(warm, -(-len(bench.data) // args.batch_size) + 1)
    for path in PATHS:
        bench.fit(path, warm, 0, compiled)
    runs, models = bench_common.alternate(
        PATHS, args.repeats, lambda path: bench.fit(path, args.steps, args.skip, compiled)
    )
    med, med_steady = bench_common.report_runs(runs, args.steps, args.skip, prefix)
    ratio = med["dataloader"] / med["device_batches"]
    steady_ratio = med_steady["dataloader"] / med_steady["device_batches"]
    diff = bench_common.max_param_diff(models["dataloader"], models["device_batches"])
    print(f"{prefix}max_param_diff: {diff:.3g}")
    print(f"{prefix}ratio: {ratio:.4f}")
    print(f"{prefix}steady_ratio: {steady_ratio:.4f}")
    return {"steady_device": med_steady["device_batches"] / (args.steps - args.skip)}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = bench_common.make_parser(__doc__)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the model trains")
    parser.add_argument("--arch", default="lenet", choices=ARCHS, help="classifier backbone (from scratch)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per timed fit")
    bench_common.add_repeat_arguments(
        parser,
        warmup_steps=20,
        runs="fits",
        side="path",
        skip_help="steps left out of the steady window (steps // 10)",
    )
    bench_common.add_data_arguments(parser)
    parser.add_argument(
        "--compile", action="store_true", help="also measure with torch.compile of the classifier"
    )
    parser.add_argument(
        "--compile-backend", default="inductor", help="torch.compile backend (aot_eager: quick)"
    )
    parser.add_argument("--bf16", action="store_true", help="Trainer precision bf16-mixed")
    return bench_common.parse_timing_arguments(parser, argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures; returns 0."""
    args = parse_args(argv)
    bench_common.setup(args.threads)
    data, num_classes = bench_common.load_data(args)
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

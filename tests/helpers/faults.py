"""Run the real CLI with a fault injected: a test-only driver, so production code has no crash hooks.

    python tests/helpers/faults.py --kill-at NAME [--record-train-sets DIR] fit --config ...

``--kill-at`` SIGKILLs the process at a named moment (SIGKILL cannot be caught: nothing is flushed,
exactly like a pre-empted node or an out-of-memory kill):

* ``generator-epoch``: at the end of the first generator training epoch;
* ``after-sampling``: after a generation's candidates are saved, before the filter scores them;
* ``after:<phase key>``: right after the manifest records that phase (e.g. ``after:g0/classifier/lenet``);
* ``evaluation``: at the first batch of a classifier's evaluation.

``--record-train-sets DIR`` writes, on every rank, the SHA-256 of each phase's train set (images and
labels) to ``DIR/rank<r>.txt``, one line per phase, so a test can check that DDP ranks train on the
same data. DDP re-runs this same command line for its other ranks, so they get the same faults.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
from pathlib import Path

from selfloop.callbacks.generation_controller import GenerationController
from selfloop.cli.app import main
from selfloop.data.base import SelfLoopDataModule
from selfloop.filtering.sample_filter import SampleFilter
from selfloop.metrics.fairness import GroupFairness
from selfloop.run.phases import PhaseRunner


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _inject_kill(name: str) -> None:
    if name == "generator-epoch":
        GenerationController.on_train_epoch_end = lambda self, trainer, module: _kill()
    elif name == "after-sampling":
        SampleFilter.__call__ = lambda self, *args, **kwargs: _kill()
    elif name == "evaluation":
        GroupFairness.update = lambda self, *args, **kwargs: _kill()
    elif name.startswith("after:"):
        key = name.removeprefix("after:")
        complete = PhaseRunner.complete

        def complete_then_kill(self, phase):
            complete(self, phase)
            if phase.key == key:
                _kill()

        PhaseRunner.complete = complete_then_kill
    else:
        raise SystemExit(f"unknown --kill-at {name!r}")


def _record_train_sets(folder: Path) -> None:
    setup = SelfLoopDataModule.setup

    def setup_and_record(self, stage):
        setup(self, stage)
        digest = hashlib.sha256()
        digest.update(self.train_set.images.numpy().tobytes())
        digest.update(self.train_set.labels.numpy().tobytes())
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"rank{self.trainer.global_rank}.txt", "a") as handle:
            handle.write(f"{len(self.train_set)} {digest.hexdigest()}\n")

    SelfLoopDataModule.setup = setup_and_record


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill-at")
    parser.add_argument("--record-train-sets", type=Path)
    options, cli_args = parser.parse_known_args()
    if options.kill_at:
        _inject_kill(options.kill_at)
    if options.record_train_sets:
        _record_train_sets(options.record_train_sets)
    main(args=cli_args)
    sys.exit(0)

"""FitProgress alone: a tiny module, a real Trainer, the progress lines it makes PhaseProgress print."""

from __future__ import annotations

import io
import itertools

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from selfloop.callbacks.fit_progress import FitProgress
from selfloop.console.progress import PhaseProgress
from selfloop.run.layout import RunDirectory
from selfloop.run.manifest import Manifest
from selfloop.run.metrics_log import MetricsLog
from selfloop.run.phases import Phase, PhaseRunner
from selfloop.run.queue import StackingQueue


class Regression(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return self.layer(x).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _progress_lines(tmp_path, batches: int, **limits) -> list[str]:
    run = RunDirectory(tmp_path / "run")
    run.create()
    runner = PhaseRunner(
        run,
        Manifest(seed=0),
        StackingQueue.from_state(run.queue_dir, 3, []),
        MetricsLog(run.metrics_file, run.summary_dir, 0),
    )
    stream = io.StringIO()
    # A clock that moves 10 s per reading, and a line whenever one reading has passed.
    runner.progress = PhaseProgress(
        1, ["lenet"], stream=stream, clock=itertools.count(0, 10).__next__, interval=10
    )
    phase = Phase.classifier(0, "lenet")
    runner.begin(phase)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[FitProgress(runner, phase)],
        **limits,
    )
    trainer.fit(Regression(), DataLoader(TensorDataset(torch.ones(batches, 1)), batch_size=1))
    return [line.split(" · ")[1] for line in stream.getvalue().splitlines()[1:]]


@pytest.mark.parametrize(
    ("batches", "limits"),
    [(8, {"max_steps": 4}), (2, {"max_epochs": 2}), (4, {"max_epochs": 1, "max_steps": 100})],
    ids=["steps", "epochs", "epochs-first"],
)
def test_the_share_of_the_fit_done_follows_whichever_limit_ends_it(tmp_path, batches, limits):
    assert _progress_lines(tmp_path, batches, **limits) == [
        "25% of its steps",
        "50% of its steps",
        "75% of its steps",
        "100% of its steps",
    ]

"""Where a run's phases run: the root device and the number of processes, as Lightning resolves them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy


@dataclass(frozen=True)
class Topology:
    """The device of rank 0 and the world size every phase's Trainer gets from the ``trainer`` group.

    Work outside a fit (sampling and filtering on resume, rebuilding a queue shard) runs in one process
    on ``device`` through ``local_strategy``, a real Lightning strategy whose collectives are the
    identity, and reproduces what ``world_size`` ranks would have produced.
    """

    device: torch.device
    world_size: int

    @classmethod
    def of(cls, trainer_kwargs: dict[str, Any]) -> Topology:
        """Resolve ``accelerator`` / ``devices`` / ``num_nodes`` / ``strategy`` with Lightning's own
        logic (a Trainer that never fits), so the answer is what every phase's Trainer gets."""
        kwargs = {**trainer_kwargs, "logger": False, "callbacks": [], "enable_progress_bar": False}
        trainer = L.Trainer(**kwargs)
        return cls(trainer.strategy.root_device, trainer.world_size)

    def local_strategy(self) -> SingleDeviceStrategy:
        return SingleDeviceStrategy(device=self.device)

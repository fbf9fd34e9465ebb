"""Lightning's per-phase banners silenced, everything else shown.

A run builds a fresh ``Trainer`` for every phase, and each one repeats Lightning's banners (device
availability, a logging-service advertisement, a validation-loop notice that does not apply to generator
fits). ``quiet_lightning`` silences exactly those messages, by their text, on the loggers and in the
``warnings`` module where they arise; every other log record and warning still reaches the console.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

# Info records Lightning logs for every Trainer (``rank_zero_info`` and the CUDA accelerator's logger).
# Matched at the start of the message, so a selfloop line that quotes one is never hidden.
LIGHTNING_BANNERS: tuple[str, ...] = (
    r"(GPU|TPU|HPU|IPU) available: ",
    r"LOCAL_RANK: \d+ - CUDA_VISIBLE_DEVICES: ",
    r"💡 Tip: For seamless cloud (logging|uploads)",
    # The loop prints its own end-of-phase line; "stopped: No training batches." stays visible.
    r"`Trainer\.fit` stopped: `max_(epochs|steps)=",
)
# The loggers those records are created on. ``rank_zero_info`` logs through whichever of the two
# ``rank_zero`` loggers was imported last, so both are filtered.
LIGHTNING_LOGGERS: tuple[str, ...] = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
)
# Warnings that do not apply to a run of the loop: a generator's datamodule offers a validation split
# for the classifiers; the pytree deprecation is Lightning's own use of a torch API.
LIGHTNING_WARNINGS: tuple[str, ...] = (
    r"You passed in a `val_dataloader` but have no `validation_step`",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)


class _BannerFilter(logging.Filter):
    """Drops the log records whose message starts with one of ``patterns``."""

    def __init__(self, patterns: Iterable[str]) -> None:
        super().__init__()
        self._pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return self._pattern.match(record.getMessage()) is None


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-phase banners and the warnings that do not apply, for the ``with`` block.

    Only the messages listed in ``LIGHTNING_BANNERS`` (on the loggers of ``LIGHTNING_LOGGERS``) and
    ``LIGHTNING_WARNINGS`` are dropped; everything else Lightning or anyone else logs or warns is shown
    as before. Leaving the block removes the filters again. Nested blocks are fine.

    Example::

        with quiet_lightning():
            trainer = L.Trainer(max_epochs=1)  # no "GPU available: ..." lines
            trainer.fit(model, datamodule)
    """
    log_filter = _BannerFilter(LIGHTNING_BANNERS)
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    for logger in loggers:
        logger.addFilter(log_filter)
    try:
        with warnings.catch_warnings():
            for message in LIGHTNING_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(log_filter)

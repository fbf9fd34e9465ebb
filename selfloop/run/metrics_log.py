"""Per-generation results: a tidy metrics.csv and TensorBoard scalars with step = generation."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from selfloop.run.atomic import atomic_write_text

COLUMNS = ("generation", "arch", "seed", "metric", "value")


def flatten_metrics(metrics: Mapping[str, float | list[float]]) -> dict[str, float]:
    """Lists become one scalar per entry: ``subgroup_acc`` -> ``subgroup_acc_0``, ``subgroup_acc_1``, ..."""
    flat: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, list | tuple):
            flat.update({f"{name}_{i}": float(v) for i, v in enumerate(value)})
        else:
            flat[name] = float(value)
    return flat


class MetricsLog:
    """Writes every metric twice: a row of ``metrics.csv`` and a TensorBoard scalar ``<arch>/<metric>``.

    The CSV is rewritten atomically on each call (it is small), and a (generation, arch, metric) that
    is logged again replaces its old row, so a phase redone after an interruption leaves one row.
    Only rank 0 writes.

    Args:
        csv_path: the tidy CSV file.
        summary_dir: folder of the TensorBoard summary events.
        seed: the run's seed, repeated in every row so runs concatenate into one table.
    """

    def __init__(self, csv_path: str | Path, summary_dir: str | Path, seed: int) -> None:
        self.csv_path = Path(csv_path)
        self.summary_dir = Path(summary_dir)
        self.seed = seed
        self._writer = None

    def read(self) -> list[dict]:
        """Rows logged so far (empty when the file does not exist)."""
        if not self.csv_path.is_file():
            return []
        with open(self.csv_path, newline="") as handle:
            return list(csv.DictReader(handle))

    @rank_zero_only
    def log(self, generation: int, arch: str, metrics: Mapping[str, float | list[float]]) -> None:
        """Record one phase's metrics."""
        flat = flatten_metrics(metrics)
        replaced = {(str(generation), arch, name) for name in flat}
        rows = [r for r in self.read() if (r["generation"], r["arch"], r["metric"]) not in replaced]
        rows += [
            {"generation": generation, "arch": arch, "seed": self.seed, "metric": k, "value": repr(v)}
            for k, v in flat.items()
        ]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.csv_path, buffer.getvalue())

        summary = self._summary_writer()
        for name, value in flat.items():
            if not math.isnan(value):
                summary.add_scalar(f"{arch}/{name}", value, global_step=generation)
        summary.flush()

    def _summary_writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.summary_dir))
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

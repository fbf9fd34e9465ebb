"""Per-generation results: a tidy metrics.csv and TensorBoard scalars with step = generation."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from selfloop.core.errors import SelfLoopError
from selfloop.run.atomic import atomic_write_text

COLUMNS = ("generation", "arch", "seed", "metric", "value")


class MetricsFileError(SelfLoopError, ValueError):
    """``metrics.csv`` is not a metrics table this version wrote.

    Args:
        path: the file.
        reason: what is wrong with it.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(
            f"cannot read the metrics table {path} ({reason}); it was edited or damaged. Restore it, or start a "
            "new run in another --loop.run_dir"
        )
        self.path = Path(path)
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[Path, str]]:
        return type(self), (self.path, self.reason)


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
    is logged again replaces its old row in place, so a phase redone after an interruption (or a lost
    classifier retrained) leaves one row where it was. Only rank 0 writes. The rows are held in memory
    (``rows``): the file is read once, for a resumed run, and never read back to rebuild what was written.

    Args:
        csv_path: the tidy CSV file.
        summary_dir: folder of the TensorBoard summary events.
        seed: the run's seed, repeated in every row so runs concatenate into one table.
        loggers: the user's own Lightning loggers, which get the same scalars (step = generation).
    """

    def __init__(
        self, csv_path: str | Path, summary_dir: str | Path, seed: int, loggers: Sequence[Logger] = ()
    ) -> None:
        self.csv_path = Path(csv_path)
        self.loggers = list(loggers)
        self.summary_dir = Path(summary_dir)
        self.seed = seed
        self._writer = None
        self._rows: list[dict] | None = None

    def read(self) -> list[dict]:
        """The rows in the file now (empty when it does not exist): what resume and repair compare.

        Raises:
            MetricsFileError: naming the file when it is not a metrics table (binary, other columns).
        """
        if not self.csv_path.is_file():
            return []
        try:
            with open(self.csv_path, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                rows = list(reader)
                columns = tuple(reader.fieldnames or ())
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise MetricsFileError(self.csv_path, str(getattr(err, "strerror", None) or err)) from None
        if columns != COLUMNS or any(None in row or None in row.values() for row in rows):
            raise MetricsFileError(self.csv_path, f"not the columns {', '.join(COLUMNS)} on every line")
        return rows

    @property
    def rows(self) -> list[dict]:
        """Rows logged so far (a copy), as ``read`` returns them; the file is read only the first time."""
        if self._rows is None:
            self._rows = self.read()
        return [dict(row) for row in self._rows]

    @rank_zero_only
    def log(self, generation: int, arch: str, metrics: Mapping[str, float | list[float]]) -> None:
        """Record one phase's metrics."""
        flat = flatten_metrics(metrics)
        rows = self.rows
        position = {(r["generation"], r["arch"], r["metric"]): i for i, r in enumerate(rows)}
        for name, value in flat.items():
            row = {
                "generation": str(generation),
                "arch": arch,
                "seed": str(self.seed),
                "metric": name,
                "value": repr(value),
            }
            index = position.get((row["generation"], arch, name))
            if index is None:
                rows.append(row)
            else:
                rows[index] = row
        self.write(rows)

        scalars = {f"{arch}/{name}": value for name, value in flat.items() if not math.isnan(value)}
        summary = self._summary_writer()
        for key, value in scalars.items():
            summary.add_scalar(key, value, global_step=generation)
        summary.flush()
        for logger in self.loggers:
            logger.log_metrics(scalars, step=generation)
            logger.save()

    @rank_zero_only
    def write(self, rows: list[dict]) -> None:
        """Replace the CSV with ``rows`` (as ``read`` returns them)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.csv_path, buffer.getvalue())
        self._rows = [dict(row) for row in rows]

    def _summary_writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.summary_dir))
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

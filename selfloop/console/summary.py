"""The run's per-generation table and the commands to look at it, printed when a run ends."""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from lightning.pytorch.utilities import rank_zero_only

from selfloop.console.progress import PREFIX
from selfloop.core.catalogue import GENERATOR_ARCH, console_metrics

if TYPE_CHECKING:
    from selfloop.run.phases import PhaseRunner

# The summary table: classifier metrics per (generation, arch), then the generator's of that generation.
CLASSIFIER_COLUMNS: tuple[str, ...] = console_metrics("classifier")
GENERATOR_COLUMNS: tuple[str, ...] = console_metrics("generator")
MISSING = "-"


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return math.nan


def summary_rows(rows: Iterable[Mapping[str, str]]) -> list[dict[str, object]]:
    """Per generation and classifier arch: the columns of the summary table (``None`` where not logged).

    Args:
        rows: ``metrics.csv`` rows (``MetricsLog.rows``): generation, arch, metric, value.
    """
    by_key: dict[tuple[int, str], dict[str, float]] = {}
    archs: list[str] = []
    for row in rows:
        key = (int(row["generation"]), row["arch"])
        by_key.setdefault(key, {})[row["metric"]] = _number(row["value"])
        if row["arch"] != GENERATOR_ARCH and row["arch"] not in archs:
            archs.append(row["arch"])
    table = []
    for generation in sorted({n for n, _ in by_key}):
        generator = by_key.get((generation, GENERATOR_ARCH), {})
        for arch in archs:
            metrics = by_key.get((generation, arch), {})
            # An arch row needs a classifier metric: the subgroup oracle logs only its own accuracy.
            if not any(c in metrics for c in CLASSIFIER_COLUMNS):
                continue
            entry: dict[str, object] = {"generation": generation, "arch": arch}
            entry.update({c: metrics.get(c) for c in CLASSIFIER_COLUMNS})
            entry.update({c: generator.get(c) for c in GENERATOR_COLUMNS})
            table.append(entry)
    return table


def _cell(column: str, value: object) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.2f}" if column.startswith("fid") else f"{value:.4f}"
    return str(value)


def summary_table(rows: Iterable[Mapping[str, str]]) -> str:
    """The summary as aligned text columns: generation, arch, acc, md, worst_group_acc, gen_label_acc,
    fid_raw (accuracies to 4 decimals, FID to 2; ``-`` where not logged, e.g. the generator columns
    of generation 0)."""
    columns = ("generation", "arch", *CLASSIFIER_COLUMNS, *GENERATOR_COLUMNS)
    cells = [list(columns)] + [[_cell(c, entry[c]) for c in columns] for entry in summary_rows(rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    text = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    ]
    return "\n".join(line.rstrip() for line in text)


def next_commands(run_dir: str | Path, runs_root: str | Path) -> list[str]:
    """The commands that look at a finished run: its TensorBoard summary and the report of its runs."""
    summary = Path(run_dir) / "summary"
    return [
        f"tensorboard --logdir {shlex.quote(str(summary))}",
        f"selfloop report {shlex.quote(str(runs_root))} --out report/",
    ]


@rank_zero_only
def print_summary(
    runner: PhaseRunner, runs_root: str | Path | None = None, stream: TextIO | None = None
) -> None:
    """Print the run's summary table (from its metrics rows) and the next commands (rank 0 only).

    Args:
        runner: the run's phases; the table reads ``runner.metrics``.
        runs_root: the folder ``selfloop report`` is pointed at (default: the run directory's parent,
            which holds every version of the run's config name).
        stream: where the text goes (default: ``sys.stdout``).
    """
    run_dir = runner.run.path
    root = run_dir.parent if runs_root is None else runs_root
    lines = [
        f"{PREFIX} summary of {run_dir}",
        summary_table(runner.metrics.rows),
        "",
        "next:",
        *(f"  {command}" for command in next_commands(run_dir, root)),
    ]
    print("\n".join(lines), file=stream or sys.stdout, flush=True)

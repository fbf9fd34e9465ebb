"""The report's tables: per-seed aggregates, Table 1 (FID by generation), and how a table is written.

Values are formatted once here (four significant digits, ``nan`` for missing) so the CSV files keep full
precision while markdown and HTML show the same rounded text.
"""

from __future__ import annotations

import csv
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfloop.analysis.runs import GENERATOR_ARCH, Run, aggregate, metric_names

FID_METRICS = ("fid_raw", "fid_kept")
METRICS_COLUMNS = ("group", "arch", "generation", "metric", "mean", "std", "n", "seeds")


def cell(value: Any) -> str:
    """A value as table text: floats to four significant digits, lists space-separated."""
    if isinstance(value, float):
        return "nan" if not math.isfinite(value) else f"{value:.4g}"
    if isinstance(value, list | tuple):
        return " ".join(map(str, value))
    return str(value)


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """Rows as a CSV file (lists space-separated, full float precision); returns ``path``."""
    columns = list(columns or (rows[0].keys() if rows else []))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in row.items()}
            )
    return path


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """Rows as the lines of a markdown table (``cell`` formatting)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return lines


def html_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as an HTML table fragment (``cell`` formatting, every value escaped)."""
    if not rows:
        return "<p><em>none</em></p>"
    columns = list(columns or rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def metrics_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Every metric's mean, std and n over seeds per arch and generation (``metrics_<group>.csv``)."""
    names = sorted(metric_names(runs) | metric_names(runs, GENERATOR_ARCH))
    return [{**r, "metric": m} for m in names for r in aggregate(runs, m)]


def fid_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Table 1: FID of raw and kept samples by group and generation, mean and std over seeds.

    Args:
        runs: loaded runs of any groups.

    Returns:
        Dicts with ``group, generation`` and ``<fid metric>_mean``, ``_std``, ``_n`` for ``fid_raw`` and
        ``fid_kept`` (empty when no run logged FID).
    """
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    for metric in FID_METRICS:
        for r in aggregate(runs, metric):
            if r["arch"] != GENERATOR_ARCH:
                continue
            row = cells.setdefault(
                (r["group"], r["generation"]), {"group": r["group"], "generation": r["generation"]}
            )
            row.update({f"{metric}_mean": r["mean"], f"{metric}_std": r["std"], f"{metric}_n": r["n"]})
    columns = [f"{m}_{s}" for m in FID_METRICS for s in ("mean", "std", "n")]
    return [
        {**{c: math.nan if not c.endswith("_n") else 0 for c in columns}, **row}
        for _, row in sorted(cells.items())
    ]


def fid_display_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table 1 as shown: ``group, generation, FID raw, FID kept, seeds`` with ``mean ± std`` cells."""

    def pair(row: dict[str, Any], metric: str) -> str:
        return f"{row[f'{metric}_mean']:.2f} ± {row[f'{metric}_std']:.2f}" if row[f"{metric}_n"] else ""

    return [
        {"group": r["group"], "generation": r["generation"], "FID raw": pair(r, "fid_raw"),
         "FID kept": pair(r, "fid_kept"), "seeds": max(r["fid_raw_n"], r["fid_kept_n"])}
        for r in rows
    ]  # fmt: skip


FID_COLUMNS = ("group", "generation", "FID raw", "FID kept", "seeds")

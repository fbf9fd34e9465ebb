"""Figures, tables, verdicts and one HTML page from run directories.

    python -m selfloop.analysis.report RUN_DIR... --out FOLDER

Runs are grouped into experiments (see ``selfloop.analysis.runs``); per group the report has the figures of
``selfloop.analysis.figures``, ``metrics_<group>.csv`` (every metric's mean, std and n over seeds, per arch and
generation), ``trends_<group>.csv`` (per arch and metric the shift and trend verdicts with their intervals,
adjusted p-values and detectable changes: ``selfloop.analysis.verdicts``) and the eq. 6 section
(``eq6_<group>.md`` and its CSV tables: leave-one-seed-out comparison with generation effects,
``selfloop.analysis.eq6_section``); plus ``table1_fid.csv`` / ``table1_fid.md`` (FID by generation, mean
± std over seeds) when FID rows exist, ``verdicts.md`` (every verdict, also printed by the command) and
``index.html`` showing all of it, the verdicts first. File names use the group key, ``<data set>-<config hash>``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfloop.analysis.eq6_section import EQ6_METHOD, Eq6Section, eq6_section
from selfloop.analysis.figures import Figure, group_figures
from selfloop.analysis.html_page import render_page
from selfloop.analysis.runs import (
    IGNORED_KEYS,
    Run,
    RunLoadError,
    by_group,
    distinguishing_settings,
    load_runs,
)
from selfloop.analysis.tables import (
    FID_COLUMNS,
    METRICS_COLUMNS,
    fid_display_rows,
    fid_rows,
    markdown_table,
    metrics_rows,
    write_csv,
)
from selfloop.analysis.verdict_tables import verdicts_markdown
from selfloop.analysis.verdicts import TRENDS_CSV_COLUMNS, MetricVerdict, metric_verdicts
from selfloop.analysis.wording import Q_TEXT

PROG = "python -m selfloop.analysis.report"


@dataclass
class GroupSection:
    """What the report shows of one group.

    Args:
        group: the group key.
        label: the key and the settings that set the group apart.
        runs: its runs.
        settings: the settings that differ between groups (or its data settings when there is one group).
        figures: the figures written.
        metrics_csv: file name of its aggregates.
        verdicts_csv: file name of its shift and trend verdicts (``trends_<group>.csv``).
        eq6: its eq. 6 section.
    """

    group: str
    label: str
    runs: list[Run]
    settings: dict[str, Any]
    figures: list[Figure]
    metrics_csv: str
    verdicts_csv: str
    eq6: Eq6Section

    def settings_rows(self) -> list[dict[str, str]]:
        return [{"setting": k, "value": json.dumps(v, default=str)} for k, v in self.settings.items()]

    def run_rows(self) -> list[dict[str, Any]]:
        return [
            {"run directory": str(r.path), "seed": r.seed, "finished": r.finished,
             "generations logged": r.generations, "archs": r.archs}
            for r in self.runs
        ]  # fmt: skip

    def config_text(self) -> str:
        return "\n".join(
            f"{k}: {json.dumps(v, default=str)}" for k, v in sorted(self.runs[0].group_config.items())
        )


def _label(group: str, settings: dict[str, Any], limit: int = 4) -> str:
    """The group key and what sets it apart, e.g. ``ColoredDigits-1a2b3c4d: bias=biased, majority=0.9``."""
    shown = [
        f"{k.rsplit('.', 1)[-1]}={json.dumps(v, default=str)}"
        for k, v in settings.items()
        if k != "data.class_path"
    ]
    if len(shown) > limit:
        shown = [*shown[:limit], "…"]
    return f"{group}: {', '.join(shown)}" if shown else group


def write_report(
    runs: Sequence[Run], out: str | Path, bias_metric: str = "md", n_bootstrap: int = 200
) -> Path:
    """Write every figure, table and ``index.html`` for the runs into ``out``.

    Args:
        runs: loaded runs (``load_runs``), of one or more groups.
        out: the output folder (created).
        bias_metric: the bias B of the eq. 6 fit.
        n_bootstrap: bootstrap resamples of the eq. 6 fit.

    Returns:
        The path of ``index.html``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    groups = by_group(runs)
    settings = distinguishing_settings(runs)
    # One family for the whole report: every group's tests are corrected together.
    found: list[MetricVerdict] = metric_verdicts(runs)
    sections = []
    for group, members in groups.items():
        # With one group the settings table lists its data settings; they would only clutter titles.
        label = _label(group, settings.get(group, {})) if len(groups) > 1 else group
        metrics_csv = write_csv(out / f"metrics_{group}.csv", metrics_rows(members), METRICS_COLUMNS)
        verdicts_csv = write_csv(
            out / f"trends_{group}.csv", [v.row() for v in found if v.group == group], TRENDS_CSV_COLUMNS
        )
        sections.append(
            GroupSection(
                group=group,
                label=label,
                runs=members,
                settings=settings.get(group, {}),
                figures=group_figures(members, group, label, out),
                metrics_csv=metrics_csv.name,
                verdicts_csv=verdicts_csv.name,
                eq6=eq6_section(members, group, out, bias_metric, n_bootstrap, q_text=Q_TEXT),
            )
        )
    fid = fid_rows(runs)
    if fid:
        write_csv(out / "table1_fid.csv", fid)
        lines = markdown_table(fid_display_rows(fid), FID_COLUMNS)
        (out / "table1_fid.md").write_text(
            "# Table 1: FID by generation (mean ± std over seeds)\n\n" + "\n".join(lines) + "\n"
        )
    (out / "verdicts.md").write_text(verdicts_markdown(found, [s.eq6.verdict_row() for s in sections]))
    index = out / "index.html"
    index.write_text(render_page(sections, found, fid, EQ6_METHOD))
    return index


def main(argv: Sequence[str] | None = None) -> None:
    """The command line: load the runs, write the report, print the verdicts and where ``index.html`` is.

    Args:
        argv: arguments (default: ``sys.argv[1:]``).

    Raises:
        SystemExit: with a one-line message naming the path when a run directory is missing or invalid, two
            runs repeat one seed, or the output folder cannot be written.
    """
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run directories, or folders holding them"
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="folder for the figures, tables and index.html"
    )
    parser.add_argument("--bias-metric", default="md", help="bias B of the eq. 6 fit (default: md)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples of the eq. 6 fit")
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="KEY",
        help="a further dotted config key that does not define an experiment (repeatable; e.g. "
        f"loop.fid_inception_weights); always ignored: {', '.join(IGNORED_KEYS)}",
    )
    args = parser.parse_args(argv)
    try:
        runs = load_runs(args.run_dirs, ignored=(*IGNORED_KEYS, *args.ignore))
    except RunLoadError as err:
        raise SystemExit(f"{PROG}: error: {err}") from None
    try:
        index = write_report(runs, args.out, args.bias_metric, args.bootstrap)
    except OSError as err:
        raise SystemExit(
            f"{PROG}: error: cannot write the report to {args.out} ({err.strerror or err})"
        ) from None
    print((index.parent / "verdicts.md").read_text())
    print(f"report: {index} ({len(runs)} runs in {len(by_group(runs))} groups)")


if __name__ == "__main__":
    main()

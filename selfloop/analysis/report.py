"""Figures, tables and one HTML page from run directories.

    python -m selfloop.analysis.report RUN_DIR... --out FOLDER

Runs are grouped into experiments (see ``selfloop.analysis.runs``); per group the report has

* ``fairness_<group>.png``: accuracy, MEO, DI and MD over generations, a line per arch, mean over seeds
  with a shaded +-std band (the paper's figure layout);
* ``within_class_<group>.png``: MD, MEO and DI computed inside each class over its subgroups, the mean over
  classes (solid) and the worst class (dashed), a colour per arch, when logged;
* ``ranked_<group>.png``: ranked subgroup accuracy over generations, a line per rank, a panel per arch;
* ``ablations_<group>.png`` (Hard ImageNet): accuracy and the three ablation drops per arch;
* ``generator_<group>.png``: class fidelity of generated samples (``gen_label_acc``, judged by ``Q_JUDGE``),
  u_t and FID, when logged;
* ``metrics_<group>.csv``: every metric's mean, std and n over seeds, per arch and generation;
* ``trends_<group>.csv``: per arch and metric, the per-seed slope over generations, its mean with a
  t-interval over seeds and the verdict (``selfloop.analysis.trends``);
* ``eq6_<group>.md`` and ``eq6_<group>_{parameters,A_t,comparison}.csv``: the eq. 6 fit and its
  held-out comparison with no change and a constant factor (``selfloop.analysis.bias_dynamics``) when
  q_t (``gen_label_acc_kept``) and u_t (``u_t``) are logged;

plus ``table1_fid.csv`` / ``table1_fid.md`` (FID by generation, mean +- std over seeds) when FID rows
exist, ``verdicts.md`` (every verdict, also printed by the command) and ``index.html`` showing all of
it, the verdicts first, with the configs and seeds used. File names use the group key,
``<data set>-<config hash>``.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfloop.analysis.bias_dynamics import BiasDynamicsFit, fit_bias_dynamics
from selfloop.analysis.runs import (
    GENERATOR_ARCH,
    IGNORED_KEYS,
    Run,
    RunLoadError,
    aggregate,
    by_group,
    distinguishing_settings,
    load_runs,
    metric_names,
)
from selfloop.analysis.seed_stats import fmt
from selfloop.analysis.trends import Trend, trends

PROG = "python -m selfloop.analysis.report"
FAIRNESS_PANELS = (("acc", "Accuracy"), ("meo", "MEO"), ("di", "DI"), ("md", "MD"))
# Per panel of the within-class figure: title, the mean over classes and the worst class.
WITHIN_CLASS_PANELS = (
    ("MD within class", "md_within_class", "worst_class_md"),
    ("MEO within class", "meo_within_class", "worst_class_meo"),
    ("DI within class", "di_within_class", "worst_class_di"),
)
ABLATION_PANELS = (
    ("acc", "Accuracy"),
    ("drop_object_gray", "Drop: object gray"),
    ("drop_box_gray", "Drop: box gray"),
    ("drop_box_tile", "Drop: box tile"),
)
# Who decides whether a generated sample shows its class: the one place the report words it (an independent
# judge would change this sentence, and the metrics it describes, together).
Q_JUDGE = (
    "an independent judge: a classifier of the scorer arch (--loop.scorer_arch, default the first of "
    "--loop.archs) trained once on real data only, with a seed of its own, that never scores the filter"
)
Q_TEXT = (
    f"Class fidelity gen_label_acc (all samples) and q_t = gen_label_acc_kept (the samples the filter kept): "
    f"the fraction of a generation's samples labelled as the class they were generated for by {Q_JUDGE}."
)
CLASS_FIDELITY = ("gen_label_acc", "gen_label_acc_kept")
# Panels of the generator figure: title and the generator metrics drawn in it.
GENERATOR_PANELS = (
    ("Class fidelity (judge: scorer's f_0)", CLASS_FIDELITY),
    ("Unbalanced generation u_t", ("u_t",)),
    ("FID", ("fid_raw", "fid_kept")),
)
FID_METRICS = ("fid_raw", "fid_kept")
Q_METRIC, U_METRIC = "gen_label_acc_kept", "u_t"
RANKED = re.compile(r"ranked_subgroup_acc_(\d+)")


def _pyplot():
    # Agg is chosen here rather than at import so importing this module leaves other code's backend alone.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _archs(runs: Sequence[Run]) -> list[str]:
    return list(dict.fromkeys(a for run in runs for a in run.archs))


def _series(runs: Sequence[Run], metric: str, arch: str) -> tuple[list[int], list[float], list[float]]:
    rows = [r for r in aggregate(runs, metric) if r["arch"] == arch and r["n"] > 0]
    return [r["generation"] for r in rows], [r["mean"] for r in rows], [r["std"] for r in rows]


def _draw(
    ax: Any, runs: Sequence[Run], metric: str, arch: str, label: str, **style: Any
) -> dict[str, Any] | None:
    """A mean line with a +-std band; returns its ``{"color": ...}``, None when there is nothing to draw."""
    x, mean, std = _series(runs, metric, arch)
    if not x:
        return None
    (line,) = ax.plot(x, mean, marker="o", label=label, **style)
    lo = [m - s for m, s in zip(mean, std, strict=True)]
    hi = [m + s for m, s in zip(mean, std, strict=True)]
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    return {"color": line.get_color()}


def _finish(fig: Any, axes: Sequence[Any], title: str, path: Path) -> Path:
    for ax in axes:
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def _panel_figure(
    runs: Sequence[Run], panels: Sequence[tuple[str, str]], archs: Sequence[str], title: str, path: Path
) -> Path | None:
    """One panel per metric (those logged), a line per arch."""
    logged = metric_names(runs)
    panels = [(m, t) for m, t in panels if m in logged]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), squeeze=False)
    for ax, (metric, label) in zip(axes[0], panels, strict=True):
        for arch in archs:
            _draw(ax, runs, metric, arch, arch)
        ax.set_title(label)
    return _finish(fig, axes[0], title, path)


def within_class_figure(runs: Sequence[Run], title: str, path: Path) -> Path | None:
    """Disparities inside each class over generations: a panel per MD / MEO / DI, per arch the mean over
    classes (solid) and the worst class (dashed) in one colour.

    Args:
        runs: runs of one group.
        title: the figure title.
        path: the PNG to write.

    Returns:
        The PNG, or None when no run logged a within-class metric.
    """
    logged = metric_names(runs)
    panels = [p for p in WITHIN_CLASS_PANELS if {p[1], p[2]} & logged]
    archs = _archs(runs)
    if not panels or not archs:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), squeeze=False)
    for ax, (label, mean_metric, worst_metric) in zip(axes[0], panels, strict=True):
        for arch in archs:
            colour = _draw(ax, runs, mean_metric, arch, f"{arch} mean over classes") or {}
            _draw(ax, runs, worst_metric, arch, f"{arch} worst class", linestyle="--", **colour)
        ax.set_title(label)
    return _finish(fig, axes[0], title, path)


def ranked_figure(runs: Sequence[Run], title: str, path: Path) -> Path | None:
    """Ranked subgroup accuracy over generations: a panel per arch, a line per rank (0 = worst).

    Args:
        runs: runs of one group.
        title: the figure title.
        path: the PNG to write.

    Returns:
        The PNG, or None when no run logged ``ranked_subgroup_acc_<k>``.
    """
    ranks = sorted({int(m.group(1)) for name in metric_names(runs) if (m := RANKED.fullmatch(name))})
    archs = _archs(runs)
    if not ranks or not archs:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(archs), figsize=(4 * len(archs), 3.4), squeeze=False, sharey=True)
    for ax, arch in zip(axes[0], archs, strict=True):
        for k in ranks:
            _draw(ax, runs, f"ranked_subgroup_acc_{k}", arch, f"rank {k}" + (" (worst)" if k == 0 else ""))
        ax.set_title(arch)
    axes[0][0].set_ylabel("ranked subgroup accuracy")
    return _finish(fig, axes[0], title, path)


def generator_figure(runs: Sequence[Run], title: str, path: Path) -> Path | None:
    """Generator rows over generations: class fidelity (raw, kept), u_t and FID, the panels logged.

    Args:
        runs: runs of one group.
        title: the figure title.
        path: the PNG to write.

    Returns:
        The PNG, or None when no generator metric of those panels was logged.
    """
    logged = metric_names(runs, GENERATOR_ARCH)
    panels = [(t, [m for m in ms if m in logged]) for t, ms in GENERATOR_PANELS]
    panels = [(t, ms) for t, ms in panels if ms]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), squeeze=False)
    for ax, (label, metrics) in zip(axes[0], panels, strict=True):
        for metric in metrics:
            _draw(ax, runs, metric, GENERATOR_ARCH, metric)
        ax.set_title(label)
    return _finish(fig, axes[0], title, path)


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


def _fid_cell(row: dict[str, Any], metric: str) -> str:
    n = row[f"{metric}_n"]
    return f"{row[f'{metric}_mean']:.2f} ± {row[f'{metric}_std']:.2f}" if n else ""


def _fid_markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| group | generation | FID raw | FID kept | seeds |", "|---|---|---|---|---|"]
    for r in rows:
        n = max(r["fid_raw_n"], r["fid_kept_n"])
        lines.append(
            f"| {r['group']} | {r['generation']} | {_fid_cell(r, 'fid_raw')} | {_fid_cell(r, 'fid_kept')} | {n} |"
        )
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> Path:
    columns = list(columns or (rows[0].keys() if rows else []))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in row.items()}
            )
    return path


def _html_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    columns = list(columns or rows[0].keys())

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "nan" if not math.isfinite(value) else f"{value:.4g}"
        if isinstance(value, list):
            return " ".join(map(str, value))
        return str(value)

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fit_section(
    runs: Sequence[Run], group: str, out: Path, metric: str, n_bootstrap: int
) -> dict[str, Any] | None:
    """Fit eq. 6 and write its tables; None when q_t or u_t is not logged."""
    logged = metric_names(runs, GENERATOR_ARCH)
    if Q_METRIC not in logged or U_METRIC not in logged:
        return None
    markdown = out / f"eq6_{group}.md"
    try:
        fit: BiasDynamicsFit = fit_bias_dynamics(runs, metric=metric, n_bootstrap=n_bootstrap)
    except ValueError as err:
        markdown.write_text(f"The eq. 6 fit could not run: {err}\n")
        return {"error": str(err), "files": [markdown.name]}
    files = [
        _write_csv(out / f"eq6_{group}_parameters.csv", fit.parameter_rows()),
        _write_csv(out / f"eq6_{group}_A_t.csv", fit.a_t),
        _write_csv(out / f"eq6_{group}_comparison.csv", fit.comparison_rows()),
    ]
    markdown.write_text(f"# Eq. 6 fit: {group}\n\n{Q_TEXT}\n\n{fit.to_markdown()}")
    return {"fit": fit, "files": [markdown.name, *(f.name for f in files)]}


TREND_METHOD = (
    "Per seed, the least-squares slope of the metric over generations (scipy.stats.linregress); the verdict "
    "is decided by the t-interval over seeds of their mean (scipy.stats.t): increases / decreases when it "
    "lies above / below 0, else no detectable change; with fewer than 3 seeds, no verdict."
)
EQ6_METHOD = (
    "No change (A = 1), a constant factor per arch (A = c_M) and eq. 6 are fitted on the early generations "
    "and predict the last ones; per seed, the log of a simpler model's held-out MSE minus a richer one's "
    "(above 0: the richer predicts better), with a bootstrap-t interval over seeds. q_t / u_t are said to "
    "explain the dynamics only when the interval for eq. 6 over the constant factor lies above 0. "
    f"q_t is {Q_METRIC}, judged by {Q_JUDGE}."
)


def _trend_method(found: Sequence[Trend]) -> str:
    """The method, and who judged the class fidelity where its trend is in the table."""
    judged = any(t.arch == GENERATOR_ARCH and t.metric in CLASS_FIDELITY for t in found)
    return f"{TREND_METHOD} {Q_TEXT}" if judged else TREND_METHOD


def trend_table(found: Sequence[Trend]) -> list[dict[str, Any]]:
    """Trend verdicts as display rows: ``group, arch, metric, verdict, mean slope per generation, interval``.

    Args:
        found: trends (``selfloop.analysis.trends.trends``).
    """
    return [
        {
            "group": t.group,
            "arch": t.arch,
            "metric": t.metric,
            "verdict": t.verdict or f"cannot be judged ({t.interval.n} seed{'s' * (t.interval.n != 1)})",
            "mean slope per generation": fmt(t.interval.estimate),
            "interval": t.interval.bounds() if t.verdict else "",
        }
        for t in found
    ]


def eq6_table(sections: Sequence[dict[str, Any]], bias_metric: str) -> list[dict[str, Any]]:
    """One display row per group on eq. 6: ``group, B, verdict``, the two log-MSE gains and the sentence.

    Args:
        sections: the report's group sections (``fit`` holds ``_fit_section``'s result).
        bias_metric: the bias metric B.
    """
    rows = []
    for s in sections:
        section = s["fit"]
        row = {"group": s["group"], "B": bias_metric, "verdict": "not fitted", "eq. 6 vs constant factor": "",
               "constant factor vs no change": ""}  # fmt: skip
        if section is None:
            row["sentence"] = f"Not fitted: it needs q_t ({Q_METRIC}) and u_t ({U_METRIC}) rows."
        elif "error" in section:
            row["sentence"] = f"The fit could not run: {section['error']}"
        else:
            c = section["fit"].comparison
            row["verdict"] = c.preferred or "cannot be judged"
            for key, interval in (("eq. 6 vs constant factor", c.eq6_vs_constant),
                                  ("constant factor vs no change", c.constant_vs_none)):  # fmt: skip
                row[key] = interval.describe() if interval is not None else ""
            row["sentence"] = c.verdict
        rows.append(row)
    return rows


def _markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return lines


def verdicts_markdown(found: Sequence[Trend], eq6: Sequence[dict[str, Any]]) -> str:
    """Every verdict of the report as markdown: the trends table, then eq. 6 per group.

    Args:
        found: the trends.
        eq6: ``eq6_table``'s rows.
    """
    lines = ["# Verdicts", "", "## Trends over generations", "", _trend_method(found), ""]
    table = trend_table(found)
    lines += (
        _markdown_table(table, list(table[0]) if table else ["group"]) if table else ["(no metric logged)"]
    )
    lines += ["", "## Eq. 6: do q_t / u_t explain bias dynamics?", "", EQ6_METHOD, ""]
    lines += _markdown_table(
        eq6, ["group", "B", "verdict", "eq. 6 vs constant factor", "constant factor vs no change"]
    )
    lines += ["", *(f"- {r['group']}: {r['sentence']}" for r in eq6)]
    return "\n".join(lines) + "\n"


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
    sections = []
    found: list[Trend] = []
    for group, members in groups.items():
        archs = _archs(members)
        # With one group the settings table lists its data settings; they would only clutter titles.
        label = _label(group, settings.get(group, {})) if len(groups) > 1 else group
        # Hard ImageNet groups are recognised by their ablation drops, not by the data class name.
        hard_imagenet = bool(metric_names(members) & {m for m, _ in ABLATION_PANELS[1:]})
        figures = [
            (
                "Accuracy and fairness",
                _panel_figure(members, FAIRNESS_PANELS, archs, label, out / f"fairness_{group}.png"),
            ),
            (
                "Disparities within classes",
                within_class_figure(members, label, out / f"within_class_{group}.png"),
            ),
            ("Ranked subgroup accuracy", ranked_figure(members, label, out / f"ranked_{group}.png")),
            (
                "Hard ImageNet ablations",
                _panel_figure(members, ABLATION_PANELS, archs, label, out / f"ablations_{group}.png")
                if hard_imagenet
                else None,
            ),
            ("Generated data", generator_figure(members, label, out / f"generator_{group}.png")),
        ]
        table = [
            {**r, "metric": m}
            for m in sorted(metric_names(members) | metric_names(members, GENERATOR_ARCH))
            for r in aggregate(members, m)
        ]
        metrics_csv = _write_csv(
            out / f"metrics_{group}.csv",
            table,
            ["group", "arch", "generation", "metric", "mean", "std", "n", "seeds"],
        )
        group_trends = trends(members)
        found += group_trends
        _write_csv(out / f"trends_{group}.csv", [t.row() for t in group_trends], list(_TREND_COLUMNS))
        sections.append(
            {
                "group": group,
                "label": label,
                "runs": members,
                "settings": settings.get(group, {}),
                "figures": [(t, p) for t, p in figures if p is not None],
                "metrics_csv": metrics_csv.name,
                "fit": _fit_section(members, group, out, bias_metric, n_bootstrap),
            }
        )
    fid = fid_rows(runs)
    if fid:
        _write_csv(out / "table1_fid.csv", fid)
        (out / "table1_fid.md").write_text(
            "# Table 1: FID by generation (mean ± std over seeds)\n\n" + _fid_markdown(fid)
        )
    eq6 = eq6_table(sections, bias_metric)
    (out / "verdicts.md").write_text(verdicts_markdown(found, eq6))
    index = out / "index.html"
    index.write_text(_html(sections, fid, bias_metric, found, eq6))
    return index


FIGURE_NOTES = {
    "Disparities within classes": (
        "MD, MEO and DI computed per class over that class's subgroups: solid, the mean over classes "
        "(md_within_class, meo_within_class, di_within_class); dashed, the worst class (worst_class_md, "
        "worst_class_meo, worst_class_di). They compare subgroups of one class, where the pooled metrics "
        "compare subgroup positions across classes."
    ),
    "Generated data": Q_TEXT,
}
"""Text under a figure's heading in ``index.html``, by heading."""

_TREND_COLUMNS = (
    "group", "arch", "metric", "verdict", "mean_slope", "low", "high", "level", "method", "n_seeds", "seeds",
    "sentence",
)  # fmt: skip


def _html(
    sections: list[dict[str, Any]],
    fid: list[dict[str, Any]],
    bias_metric: str,
    found: Sequence[Trend] = (),
    eq6: Sequence[dict[str, Any]] = (),
) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>selfloop report</title>',
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}img{max-width:100%;border:1px solid #ddd}"
        "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "pre{background:#f6f6f6;padding:0.5em;overflow:auto}.verdict{font-weight:bold}</style>",
        "</head><body>",
        "<h1>Self-consuming loop report</h1>",
        '<h2 id="verdicts">Verdicts</h2>',
        f"<h3>Trends over generations</h3><p>{esc(_trend_method(found))}</p>",
        _html_table(trend_table(found)),
        f"<h3>Eq. 6: do q_t / u_t explain bias dynamics?</h3><p>{esc(EQ6_METHOD)}</p>",
        _html_table(
            eq6, ["group", "B", "verdict", "eq. 6 vs constant factor", "constant factor vs no change"]
        ),
        "<ul>"
        + "".join(f'<li class="verdict">{esc(r["group"])}: {esc(r["sentence"])}</li>' for r in eq6)
        + "</ul>",
        '<p>Every verdict as text: <a href="verdicts.md">verdicts.md</a></p>',
        "<h2>Groups</h2>",
        "<ul>"
        + "".join(f'<li><a href="#{esc(s["group"])}">{esc(s["label"])}</a></li>' for s in sections)
        + "</ul>",
    ]
    if fid:
        parts += [
            '<h2 id="table1">Table 1: FID by generation (mean ± std over seeds)</h2>',
            _html_table(
                [
                    {
                        "group": r["group"],
                        "generation": r["generation"],
                        "FID raw": _fid_cell(r, "fid_raw"),
                        "FID kept": _fid_cell(r, "fid_kept"),
                    }
                    for r in fid
                ]
            ),  # fmt: skip
            '<p><a href="table1_fid.csv">table1_fid.csv</a> · <a href="table1_fid.md">table1_fid.md</a></p>',
        ]
    for s in sections:
        runs: list[Run] = s["runs"]
        parts.append(f'<h2 id="{esc(s["group"])}">{esc(s["label"])}</h2>')
        if s["settings"]:
            parts.append("<h3>Settings</h3>")
            parts.append(
                _html_table(
                    [{"setting": k, "value": json.dumps(v, default=str)} for k, v in s["settings"].items()]
                )
            )
        parts.append("<h3>Runs</h3>")
        parts.append(
            _html_table(
                [
                    {
                        "run directory": str(r.path),
                        "seed": r.seed,
                        "finished": r.finished,
                        "generations logged": " ".join(map(str, r.generations)),
                        "archs": " ".join(r.archs),
                    }
                    for r in runs
                ]
            )  # fmt: skip
        )
        config = "\n".join(
            f"{k}: {json.dumps(v, default=str)}" for k, v in sorted(runs[0].group_config.items())
        )
        parts.append(
            f"<details><summary>Config of the group (without seed, run directory and logging switches)</summary>"
            f"<pre>{esc(config)}</pre></details>"
        )
        for title, path in s["figures"]:
            parts.append(f"<h3>{esc(title)}</h3>")
            if title in FIGURE_NOTES:
                parts.append(f"<p>{esc(FIGURE_NOTES[title])}</p>")
            parts.append(f'<img src="{esc(path.name)}" alt="{esc(title)}: {esc(s["label"])}">')
        group_fid = [r for r in fid if r["group"] == s["group"]]
        if group_fid:
            parts.append("<h3>FID by generation</h3>")
            parts.append(
                _html_table(
                    [
                        {
                            "generation": r["generation"],
                            "FID raw": _fid_cell(r, "fid_raw"),
                            "FID kept": _fid_cell(r, "fid_kept"),
                        }
                        for r in group_fid
                    ]
                )  # fmt: skip
            )
        parts.append(
            f'<p>All metrics, mean/std/n over seeds: <a href="{esc(s["metrics_csv"])}">{esc(s["metrics_csv"])}</a>; '
            f'trend verdicts: <a href="trends_{esc(s["group"])}.csv">trends_{esc(s["group"])}.csv</a></p>'
        )
        parts.append(_fit_html(s["fit"], bias_metric))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _fit_html(section: dict[str, Any] | None, bias_metric: str) -> str:
    esc = html.escape
    if section is None:
        return (
            f"<h3>Eq. 6 fit</h3><p>Not fitted: it needs q_t ({Q_METRIC}) and u_t ({U_METRIC}) rows under arch "
            f"'{GENERATOR_ARCH}'.</p>"
        )
    links = " · ".join(f'<a href="{esc(f)}">{esc(f)}</a>' for f in section["files"])
    if "error" in section:
        return f"<h3>Eq. 6 fit</h3><p>The fit could not run: {esc(section['error'])}</p><p>{links}</p>"
    fit: BiasDynamicsFit = section["fit"]
    pct = f"{100 * fit.confidence:g}%"
    parts = [
        f"<h3>Eq. 6 fit (B = {esc(bias_metric)})</h3>",
        f'<p class="verdict">{esc(fit.verdict)}</p>',
        f"<p>{esc(EQ6_METHOD)}</p>",
        _html_table(fit.comparison_rows()),
        "<p>A_t = c_M (1 + kappa_Q (1 - q_t) + kappa_U u_t), c_M = (1 - gamma_M)(1 + delta_D), "
        "kappa = delta / (1 + delta_D); gamma_M and delta_D are identifiable only through c_M. "
        f"Parameter and A_t intervals: {pct} percentile bootstrap over seeds ({fit.n_bootstrap} resamples); "
        "descriptive only, too narrow with few seeds, and not used by the verdict.</p>",
        _html_table(fit.parameter_rows()),
        _html_table(fit.a_t),
    ]
    if fit.notes:
        parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in fit.notes) + "</ul>")
    parts.append(f"<p>{links}</p>")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    """The command line: load the runs, write the report, print where ``index.html`` is.

    Args:
        argv: arguments (default: ``sys.argv[1:]``).

    Raises:
        SystemExit: with a one-line message naming the path when a run directory is missing or invalid,
            or the output folder cannot be written.
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
        "loop.fid_inception_weights); "
        f"always ignored: {', '.join(IGNORED_KEYS)}",
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

"""The report's figures: a metric's mean over seeds with a +-std band, over generations, as PNG files.

* ``fairness``: accuracy, MEO, DI and MD, a line per arch (the paper's figure layout);
* ``within_class``: MD, MEO and DI inside each class, the mean over classes (solid) and the worst class (dashed);
* ``ranked``: ranked subgroup accuracy, a line per rank, a panel per arch;
* ``ablations`` (Hard ImageNet): accuracy and the three ablation drops per arch;
* ``generator``: class fidelity of generated samples, u_t and FID.

Every function returns the PNG's path, or None when none of its metrics was logged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfloop.analysis.runs import GENERATOR_ARCH, Run, aggregate, metric_names
from selfloop.analysis.wording import Q_TEXT

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
CLASS_FIDELITY = ("gen_label_acc", "gen_label_acc_kept")
# Panels of the generator figure: title and the generator metrics drawn in it.
GENERATOR_PANELS = (
    ("Class fidelity (judge: scorer's f_0)", CLASS_FIDELITY),
    ("Unbalanced generation u_t", ("u_t",)),
    ("FID", ("fid_raw", "fid_kept")),
)
RANKED = re.compile(r"ranked_subgroup_acc_(\d+)")


def _pyplot():
    # Agg is chosen here rather than at import so importing this module leaves other code's backend alone.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def archs_of(runs: Sequence[Run]) -> list[str]:
    """Classifier archs of the runs, in panel order."""
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


def panel_figure(
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
    archs = archs_of(runs)
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
    archs = archs_of(runs)
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


@dataclass(frozen=True)
class Figure:
    """One figure of a group's section: its heading, PNG and the text under the heading."""

    title: str
    path: Path
    note: str = ""


def group_figures(runs: Sequence[Run], group: str, label: str, out: Path) -> list[Figure]:
    """Every figure of one group that has something to show, written into ``out``.

    Args:
        runs: runs of one group.
        group: the group key (file names).
        label: the figures' title.
        out: the report folder.
    """
    archs = archs_of(runs)
    # Hard ImageNet groups are recognised by their ablation drops, not by the data class name.
    hard_imagenet = bool(metric_names(runs) & {m for m, _ in ABLATION_PANELS[1:]})
    candidates = [
        ("Accuracy and fairness", panel_figure(runs, FAIRNESS_PANELS, archs, label, out / f"fairness_{group}.png"), ""),
        ("Disparities within classes", within_class_figure(runs, label, out / f"within_class_{group}.png"),
         WITHIN_CLASS_NOTE),
        ("Ranked subgroup accuracy", ranked_figure(runs, label, out / f"ranked_{group}.png"), ""),
        ("Hard ImageNet ablations",
         panel_figure(runs, ABLATION_PANELS, archs, label, out / f"ablations_{group}.png") if hard_imagenet else None,
         ""),
        ("Generated data", generator_figure(runs, label, out / f"generator_{group}.png"), Q_TEXT),
    ]  # fmt: skip
    return [Figure(title, path, note) for title, path, note in candidates if path is not None]


WITHIN_CLASS_NOTE = (
    "MD, MEO and DI computed per class over that class's subgroups: solid, the mean over classes "
    "(md_within_class, meo_within_class, di_within_class); dashed, the worst class (worst_class_md, "
    "worst_class_meo, worst_class_di). They compare subgroups of one class, where the pooled metrics "
    "compare subgroup positions across classes."
)

"""The filter's audit trail: what every candidate scored, where the line was drawn, what lay near it.

``write_audit`` writes three files into a folder (each atomically):

* ``candidates.csv``: one row per candidate, in candidate order: ``generation, id, label, class_name``,
  ``subgroup`` (only when the filter was given the candidates' subgroups: the oracle's id, -1 for
  ambiguous), one column per scorer (raw score), ``combined`` (the score the filter ranked by),
  ``threshold`` (the candidate's class threshold, see ``FilterResult.threshold``) and ``kept`` (1
  survived, 0 dropped). ``id`` is the candidate's index in the generation's candidate tensor.
* ``score_histogram.png``: histograms of the combined scores, survivors and dropped stacked. The top
  panel pools all classes and marks every class threshold (or, with more than ``MAX_CLASS_PANELS``
  classes, their median); below it, one panel per class (up to ``MAX_CLASS_PANELS`` classes) with
  ``SCORE_RANGE_BINS`` bins over the class's own score range - the paper's bins - and its threshold.
* ``borderline.png``: a grid with a row per class (the first ``max_classes`` classes): columns
  ``0..per_class-1`` hold the lowest-scored survivors, weakest first; one blank column; then the
  highest-scored dropped candidates, strongest first. The separating column is gray, cells a class
  cannot fill are black, grid lines are white. Images are shrunk to at most ``cell_size`` pixels so
  that 512 px samples give a viewable grid.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.io import encode_png
from torchvision.utils import make_grid

from selfloop.filtering.sample_filter import SCORE_RANGE_BINS, FilterResult
from selfloop.run.atomic import atomic_write_bytes, atomic_write_text

_SEPARATOR = 128
"""Gray fill of the column between survivors and dropped candidates (empty cells are black)."""

MAX_CLASS_PANELS = 20
"""Above this many classes the histogram shows only the pooled panel (1000 panels help nobody)."""


def write_audit(
    folder: str | Path,
    generation: int,
    labels: Tensor,
    result: FilterResult,
    images: Tensor,
    class_names: list[str],
    per_class: int = 8,
    max_classes: int = 20,
    cell_size: int = 64,
) -> dict[str, Path]:
    """Write ``candidates.csv``, ``score_histogram.png`` and ``borderline.png`` into ``folder``.

    Args:
        folder: where the files go (created if missing).
        generation: the generation n the candidates belong to.
        labels: int64 ``(N,)`` class per candidate.
        result: the filter's verdict on the candidates.
        images: uint8 ``(N, C, H, W)`` candidates.
        class_names: a name per class.
        per_class: borderline samples per side (kept / dropped) and class.
        max_classes: classes (the first ones) shown in ``borderline.png``.
        cell_size: the largest side of a borderline cell in pixels.

    Returns:
        The written files by name.
    """
    folder = Path(folder)
    labels = labels.cpu().long()
    _check_lengths(labels, result, images)
    paths = {
        "candidates.csv": folder / "candidates.csv",
        "score_histogram.png": folder / "score_histogram.png",
        "borderline.png": folder / "borderline.png",
    }
    atomic_write_text(paths["candidates.csv"], _candidates_csv(generation, labels, result, class_names))
    atomic_write_bytes(paths["score_histogram.png"], _histogram_png(generation, labels, result, class_names))
    grid = borderline_grid(images, labels, result, per_class, max_classes, cell_size)
    atomic_write_bytes(paths["borderline.png"], encode_png(grid).numpy().tobytes())
    return paths


def _check_lengths(labels: Tensor, result: FilterResult, images: Tensor) -> None:
    n = len(labels)
    sizes = {"images": len(images), "scores": len(result.scores), "keep": len(result.keep)}
    if result.subgroups is not None:
        sizes["subgroups"] = len(result.subgroups)
    sizes.update({f"scores of {name}": len(v) for name, v in result.per_scorer.items()})
    wrong = {k: v for k, v in sizes.items() if v != n}
    if wrong:
        raise ValueError(f"audit: {n} labels but {wrong}; pass the candidates the filter scored")


def _class_name(class_names: list[str], label: int) -> str:
    return class_names[label] if 0 <= label < len(class_names) else str(label)


def _candidates_csv(generation: int, labels: Tensor, result: FilterResult, class_names: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    scorer_names = list(result.per_scorer)
    subgroup = ["subgroup"] if result.subgroups is not None else []
    writer.writerow(
        ["generation", "id", "label", "class_name", *subgroup, *scorer_names, "combined", "threshold", "kept"]
    )
    per_scorer = [result.per_scorer[name].tolist() for name in scorer_names]
    scores, keep, threshold = result.scores.tolist(), result.keep.tolist(), result.threshold.tolist()
    subgroups = result.subgroups.tolist() if result.subgroups is not None else None
    for i, label in enumerate(labels.tolist()):
        t = threshold[label] if label < len(threshold) else math.nan
        writer.writerow(
            [
                generation,
                i,
                label,
                _class_name(class_names, label),
                *([subgroups[i]] if subgroups is not None else []),
                *(f"{values[i]:.7g}" for values in per_scorer),
                f"{scores[i]:.7g}",
                "" if math.isnan(t) else f"{t:.7g}",
                int(keep[i]),
            ]
        )
    return buffer.getvalue()


def _histogram_png(generation: int, labels: Tensor, result: FilterResult, class_names: list[str]) -> bytes:
    # The object-oriented API with an Agg canvas: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scores, keep = result.scores.double().cpu().numpy(), result.keep.cpu().numpy()
    threshold = result.threshold.double().cpu().numpy()
    classes = labels.unique().tolist()
    panels = classes if len(classes) <= MAX_CLASS_PANELS else []
    cols = min(5, max(len(panels), 1))
    rows = math.ceil(len(panels) / cols) if panels else 0
    fig = Figure(figsize=(3.2 * cols, 3.0 + 2.4 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1 + rows, cols, height_ratios=[1.25] + [1] * rows)

    ax = fig.add_subplot(grid[0, :])
    bins = 30 if len(scores) > 1 else 1
    ax.hist([scores[keep], scores[~keep]], bins=bins, stacked=True, color=["tab:green", "tab:red"],
            label=[f"kept ({int(keep.sum())})", f"dropped ({int((~keep).sum())})"])  # fmt: skip
    used = [threshold[c] for c in classes if c < len(threshold) and not math.isnan(threshold[c])]
    if panels:
        for i, t in enumerate(used):
            ax.axvline(
                t, color="black", linestyle="--", linewidth=0.8, label="class thresholds" if i == 0 else None
            )
    elif used:
        ax.axvline(
            float(sorted(used)[len(used) // 2]), color="black", linestyle="--", label="median class threshold"
        )
    rule = f"{result.mode} rule" + ("" if result.selection == "score" else f", {result.selection} selection")
    ax.set_title(f"generation {generation}: combined scores ({rule}), all classes")
    ax.set_xlabel("combined score")
    ax.set_ylabel("candidates")
    ax.legend(fontsize="small")

    for i, c in enumerate(panels):
        sub = fig.add_subplot(grid[1 + i // cols, i % cols])
        members = (labels == c).numpy()
        s, k = scores[members], keep[members]
        low, high = float(s.min()), float(s.max())
        edges = (
            [low + (high - low) * j / SCORE_RANGE_BINS for j in range(SCORE_RANGE_BINS + 1)]
            if high > low
            else 1
        )
        sub.hist([s[k], s[~k]], bins=edges, stacked=True, color=["tab:green", "tab:red"])
        if c < len(threshold) and not math.isnan(threshold[c]):
            sub.axvline(threshold[c], color="black", linestyle="--", linewidth=0.8)
        sub.set_title(f"{_class_name(class_names, c)}: kept {int(k.sum())}/{len(k)}", fontsize="small")
        sub.tick_params(labelsize="x-small")

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def borderline_grid(
    images: Tensor,
    labels: Tensor,
    result: FilterResult,
    per_class: int = 8,
    max_classes: int = 20,
    cell_size: int = 64,
) -> Tensor:
    """The ``borderline.png`` grid as a uint8 ``(3, H, W)`` image (layout: see the module doc)."""
    if per_class < 1 or max_classes < 1 or cell_size < 1:
        raise ValueError(
            f"per_class, max_classes and cell_size must be >= 1, got {per_class}, {max_classes}, {cell_size}"
        )
    labels = labels.cpu()
    classes = labels.unique().tolist()[:max_classes]
    cells = _fit(images.cpu(), cell_size)
    width = 2 * per_class + 1
    grid_cells = torch.zeros(max(len(classes), 1) * width, *cells.shape[1:], dtype=torch.uint8)
    scores, keep = result.scores.cpu(), result.keep.cpu()
    for row, c in enumerate(classes):
        kept = ((labels == c) & keep).nonzero().flatten()
        dropped = ((labels == c) & ~keep).nonzero().flatten()
        weakest_kept = kept[torch.argsort(scores[kept], stable=True)[:per_class]]
        strongest_dropped = dropped[torch.argsort(scores[dropped], descending=True, stable=True)[:per_class]]
        start = row * width
        grid_cells[start : start + len(weakest_kept)] = cells[weakest_kept]
        start += per_class
        grid_cells[start] = _SEPARATOR
        start += 1
        grid_cells[start : start + len(strongest_dropped)] = cells[strongest_dropped]
    grid = make_grid(grid_cells, nrow=width, padding=2, pad_value=255)
    if grid.shape[0] == 1:
        grid = grid.expand(3, -1, -1)
    return grid.contiguous()


def _fit(images: Tensor, cell_size: int) -> Tensor:
    """Shrink uint8 images so that their larger side is at most ``cell_size`` (never enlarge)."""
    h, w = images.shape[-2:]
    if max(h, w) <= cell_size or len(images) == 0:
        return images
    scale = cell_size / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = [
        F.interpolate(chunk.float(), size=size, mode="bilinear", antialias=True)
        .round_()
        .clamp_(0, 255)
        .to(torch.uint8)
        for chunk in images.split(256)
    ]
    return torch.cat(out)

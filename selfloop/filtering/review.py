"""Human review of the filter's decisions: export a proposal, let a person edit it, read it back.

``export_review`` writes into a folder:

* ``review.csv``: ``id, label, class_name, score, keep``, one row per candidate in candidate order;
  ``keep`` is the filter's proposal (1 keep, 0 drop). ``id`` is the candidate's index in the
  generation's candidate tensor. Only the ``keep`` column is read back; rows may be re-ordered
  (e.g. sorted in a spreadsheet) as long as every id appears exactly once.
* ``contact_sheet.png``: every candidate in id order, row-major, ``columns`` cells per row, each
  with its id printed below it and a border showing the proposal (green keep, red drop). With more
  than ``per_page`` candidates the sheet is split into ``contact_sheet_1.png``, ``contact_sheet_2.png``,
  ... holding ids ``0..per_page-1``, ``per_page..2*per_page-1``, ...

``read_review`` returns the edited decisions as a boolean mask; ``ReviewPending`` is the exception
that stops a run until the edit is done.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from selfloop.core.errors import SelfLoopError
from selfloop.filtering.sample_filter import FilterResult
from selfloop.run.atomic import atomic_write_bytes, atomic_write_text

REVIEW_FILE = "review.csv"
REVIEW_COLUMNS = ("id", "label", "class_name", "score", "keep")
_KEEP_VALUES = {"0": False, "1": True}


class ReviewFileError(SelfLoopError, ValueError):
    """A human review file (``review.csv``) cannot be applied; the message names the file and the line."""


class ReviewPending(Exception):
    """The run stops until a person has reviewed the filter's proposal.

    Args:
        folder: the folder holding ``review.csv`` and the contact sheet(s).
        command: the command that resumes the run (shown to the user), if known.
    """

    def __init__(self, folder: str | Path, command: str | None = None) -> None:
        self.folder = Path(folder)
        self.command = command
        sheets = sorted(p.name for p in self.folder.glob("contact_sheet*.png")) or ["contact_sheet.png"]
        rerun = (
            f"rerun the same command to resume: {command}" if command else "rerun the same command to resume"
        )
        super().__init__(
            f"human review pending: look at {', '.join(str(self.folder / s) for s in sheets)} and edit the keep "
            f"column of {self.folder / REVIEW_FILE} (1 keeps a candidate, 0 drops it; the filter's proposal is "
            f"filled in, ids are printed under each image); then {rerun}"
        )


def export_review(
    folder: str | Path,
    images: Tensor,
    labels: Tensor,
    result: FilterResult,
    class_names: list[str],
    columns: int = 16,
    cell_size: int = 64,
    per_page: int = 400,
) -> list[Path]:
    """Write ``review.csv`` and the contact sheet(s) into ``folder`` (layout: see the module doc).

    An existing ``review.csv`` is overwritten, edits included: a caller resuming a run reads the
    review (``read_review``) instead of exporting again.

    Args:
        folder: where the files go (created if missing).
        images: uint8 ``(N, C, H, W)`` candidates.
        labels: int64 ``(N,)`` class per candidate.
        result: the filter's proposal.
        class_names: a name per class.
        columns: cells per contact-sheet row.
        cell_size: side of an image cell in pixels (images are scaled to fit, small ones enlarged
            with nearest-neighbour so that pixels stay visible).
        per_page: candidates per contact sheet.

    Returns:
        The written files, ``review.csv`` first.
    """
    if columns < 1 or cell_size < 8 or per_page < 1:
        raise ValueError(
            f"columns >= 1, cell_size >= 8 and per_page >= 1 needed, got {columns}, {cell_size}, {per_page}"
        )
    folder = Path(folder)
    labels = labels.cpu().long()
    n = len(labels)
    if not len(images) == len(result.scores) == len(result.keep) == n:
        raise ValueError(
            f"export_review: {n} labels, {len(images)} images, {len(result.scores)} scores, {len(result.keep)} "
            "keep flags; pass the candidates the filter scored"
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REVIEW_COLUMNS)
    for i, (label, score, keep) in enumerate(
        zip(labels.tolist(), result.scores.tolist(), result.keep.tolist(), strict=True)
    ):
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        writer.writerow([i, label, name, f"{score:.7g}", int(keep)])
    written = [folder / REVIEW_FILE]
    # Remove sheets of an earlier export with a different page count, so none is stale.
    for old in folder.glob("contact_sheet*.png"):
        old.unlink()
    pages = range(0, max(n, 1), per_page)
    for page, start in enumerate(pages, start=1):
        name = "contact_sheet.png" if len(pages) == 1 else f"contact_sheet_{page}.png"
        ids = range(start, min(start + per_page, n))
        png = _contact_sheet(
            images[start : start + per_page], result.keep[start : start + per_page], ids, columns, cell_size
        )
        atomic_write_bytes(folder / name, png)
        written.append(folder / name)
    # The CSV last: its presence tells that the export is complete.
    atomic_write_text(folder / REVIEW_FILE, buffer.getvalue())
    return written


def _contact_sheet(images: Tensor, keep: Tensor, ids: range, columns: int, cell_size: int) -> bytes:
    from PIL import Image, ImageDraw

    cells = _to_cells(images.cpu(), cell_size)  # uint8 (n, cell, cell, 3)
    label_height, border, gap = 14, 2, 4
    pitch_x, pitch_y = cell_size + 2 * border + gap, cell_size + 2 * border + label_height + gap
    rows = max(1, -(-len(ids) // columns))
    sheet = Image.new("RGB", (gap + min(columns, max(len(ids), 1)) * pitch_x, gap + rows * pitch_y), "white")
    draw = ImageDraw.Draw(sheet)
    for j, candidate in enumerate(ids):
        x, y = gap + (j % columns) * pitch_x, gap + (j // columns) * pitch_y
        color = (0, 160, 0) if bool(keep[j]) else (210, 0, 0)
        draw.rectangle([x, y, x + cell_size + 2 * border - 1, y + cell_size + 2 * border - 1], fill=color)
        sheet.paste(Image.fromarray(cells[j]), (x + border, y + border))
        draw.text((x + border, y + cell_size + 2 * border + 1), str(candidate), fill=(0, 0, 0))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


def _to_cells(images: Tensor, cell_size: int) -> np.ndarray:
    """uint8 ``(n, C, H, W)`` -> uint8 ``(n, cell, cell, 3)`` numpy, aspect kept, padded with black."""
    n, c, h, w = images.shape
    scale = cell_size / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    x = images.float()
    if scale > 1:
        x = F.interpolate(x, size=size, mode="nearest")
    elif scale < 1:
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True)
    x = x.round().clamp(0, 255).to(torch.uint8)
    if c == 1:
        x = x.expand(-1, 3, -1, -1)
    out = torch.zeros(n, 3, cell_size, cell_size, dtype=torch.uint8)
    top, left = (cell_size - size[0]) // 2, (cell_size - size[1]) // 2
    out[:, :, top : top + size[0], left : left + size[1]] = x[:, :3]
    return out.permute(0, 2, 3, 1).contiguous().numpy()


def read_review(folder: str | Path, n: int) -> Tensor:
    """The reviewed decisions: a boolean ``(n,)`` mask, True where ``keep`` is 1.

    Args:
        folder: the folder ``export_review`` wrote to.
        n: the number of candidates (every id ``0..n-1`` must appear exactly once).

    Raises:
        ValueError: the file is missing or unreadable, a column is missing, an id is not one of
            ``0..n-1``, repeated or missing, or a keep value is not 0 or 1. The message names the
            file and the line (the header is line 1).
    """
    path = Path(folder) / REVIEW_FILE
    if not path.is_file():
        raise ReviewFileError(f"{path}: review file not found; it is written by the filter's review export")
    try:
        # utf-8-sig: spreadsheets often save a byte-order mark in front of the header.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ReviewFileError(
            f"{path}: cannot read the review file ({error}); save it as UTF-8 CSV"
        ) from error
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [col for col in ("id", "keep") if col not in header]
    if missing:
        raise ReviewFileError(
            f"{path}: line 1 (header) lacks the column(s) {', '.join(missing)}; expected {', '.join(REVIEW_COLUMNS)}"
        )
    reader.fieldnames = header
    decisions: dict[int, bool] = {}
    for row in reader:
        line = reader.line_num
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # a blank line a spreadsheet left at the end
        raw_id = (row.get("id") or "").strip()
        try:
            candidate = int(raw_id)
        except ValueError:
            raise ReviewFileError(
                f"{path}: line {line}: id {raw_id!r} is not an integer; ids are 0..{n - 1}"
            ) from None
        if not 0 <= candidate < n:
            raise ReviewFileError(f"{path}: line {line}: id {candidate} is out of range; ids are 0..{n - 1}")
        if candidate in decisions:
            raise ReviewFileError(
                f"{path}: line {line}: id {candidate} appears twice; each id 0..{n - 1} exactly once"
            )
        raw_keep = (row.get("keep") or "").strip()
        if raw_keep not in _KEEP_VALUES:
            raise ReviewFileError(
                f"{path}: line {line} (id {candidate}): keep is {raw_keep!r}; allowed: 1 (keep) or 0 (drop)"
            )
        decisions[candidate] = _KEEP_VALUES[raw_keep]
    if len(decisions) != n:
        absent = [i for i in range(n) if i not in decisions]
        shown = ", ".join(map(str, absent[:10])) + (", ..." if len(absent) > 10 else "")
        raise ReviewFileError(
            f"{path}: {len(absent)} id(s) missing: {shown}; every id 0..{n - 1} needs a row"
        )
    keep = torch.zeros(n, dtype=torch.bool)
    for candidate, value in decisions.items():
        keep[candidate] = value
    return keep

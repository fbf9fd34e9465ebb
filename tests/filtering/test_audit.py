"""The filter's audit files: the CSV's content, the PNGs' existence and the borderline grid's layout."""

from __future__ import annotations

import csv

import pytest
import torch
from helpers.rounding import written_rounding
from torchvision.io import decode_png, read_file

from selfloop.filtering.audit import borderline_grid, write_audit
from selfloop.filtering.sample_filter import SampleFilter
from selfloop.filtering.scorers import Scorer, ScoringContext


class FixedScorer(Scorer):
    def __init__(self, name, values):
        self.name = name
        self.values = torch.tensor(values)

    def score(self, images, labels, context):
        return self.values.clone()


def candidates():
    # 2 classes x 5 candidates; every image is filled with its id so grid cells identify candidates.
    labels = torch.tensor([0] * 5 + [1] * 5)
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 6, 6).clone() * 20 + 10
    a = [0.9, 0.1, 0.5, 0.7, 0.3, 0.2, 0.8, 0.6, 0.4, 0.05]
    b = [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    f = SampleFilter(0.4, [FixedScorer("a", a), FixedScorer("b", b)])
    result = f(images, labels, ScoringContext(["zero", "one"]), 3)
    return images, labels, result


def test_write_audit_writes_the_three_files_with_one_csv_row_per_candidate(tmp_path):
    images, labels, result = candidates()
    paths = write_audit(tmp_path / "audit", 3, labels, result, images, ["zero", "one"])
    assert sorted(p.name for p in paths.values()) == [
        "borderline.png",
        "candidates.csv",
        "score_histogram.png",
    ]
    with open(paths["candidates.csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "generation",
        "id",
        "label",
        "class_name",
        "a",
        "b",
        "combined",
        "threshold",
        "kept",
    ]
    assert [int(r["id"]) for r in rows] == list(range(10))
    assert {r["generation"] for r in rows} == {"3"}
    assert [r["class_name"] for r in rows] == ["zero"] * 5 + ["one"] * 5
    assert [int(r["kept"]) for r in rows] == result.keep.int().tolist()
    # The CSV rounds to 7 significant digits: each value within half a unit of its last digit.
    for column, values in (("combined", result.scores), ("a", result.per_scorer["a"])):
        assert all(
            abs(float(r[column]) - v) <= written_rounding(r[column])
            for r, v in zip(rows, values.tolist(), strict=True)
        )
    assert abs(float(rows[0]["threshold"]) - result.threshold[0].item()) <= written_rounding(
        rows[0]["threshold"]
    )
    for name in ("score_histogram.png", "borderline.png"):
        png = decode_png(read_file(str(paths[name])))
        assert png.shape[0] in (3, 4) and png.shape[1] > 10 and png.shape[2] > 10
    # Atomic writes leave no temporary files behind.
    assert sorted(p.name for p in (tmp_path / "audit").iterdir()) == sorted(p.name for p in paths.values())


def test_borderline_rows_hold_the_weakest_kept_then_the_strongest_dropped():
    images, labels, result = candidates()
    per_class = 3  # 3 kept and 2 dropped per class: one empty (black) cell per row
    grid = borderline_grid(images, labels, result, per_class=per_class, cell_size=64)
    cell, pad = 6, 2

    def cell_value(row, col):
        y, x = pad + row * (cell + pad), pad + col * (cell + pad)
        return int(grid[0, y + 3, x + 3])

    for row, c in enumerate([0, 1]):
        members = (labels == c).nonzero().flatten()
        kept = [int(i) for i in members if result.keep[i]]
        dropped = [int(i) for i in members if not result.keep[i]]
        weakest = sorted(kept, key=lambda i: result.scores[i].item())[:per_class]
        strongest = sorted(dropped, key=lambda i: -result.scores[i].item())[:per_class]
        row_values = [cell_value(row, col) for col in range(2 * per_class + 1)]
        expected = [i * 20 + 10 for i in weakest] + [0] * (per_class - len(weakest)) + [128]  # gray separator
        expected += [i * 20 + 10 for i in strongest] + [0] * (per_class - len(strongest))  # black: empty
        assert row_values == expected


def test_audit_rejects_mismatched_inputs(tmp_path):
    images, labels, result = candidates()
    with pytest.raises(ValueError, match="10 labels but"):
        write_audit(tmp_path, 1, labels, result, images[:5], ["zero", "one"])


def test_candidates_csv_gets_the_subgroup_column_when_the_filter_knew_the_subgroups(tmp_path):
    labels = torch.tensor([0] * 5 + [1] * 5)
    images = torch.zeros(10, 1, 6, 6, dtype=torch.uint8)
    subgroups = torch.tensor([0, 1, -1, 1, 0, 2, 2, 0, -1, 1])
    scorer = FixedScorer("a", [0.9, 0.1, 0.5, 0.7, 0.3, 0.2, 0.8, 0.6, 0.4, 0.05])
    f = SampleFilter(0.4, [scorer], selection="subgroup_balanced")
    result = f(images, labels, ScoringContext(["zero", "one"]), 3, subgroups=subgroups, num_subgroups=3)
    paths = write_audit(tmp_path, 1, labels, result, images, ["zero", "one"])
    with open(paths["candidates.csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:6] == ["generation", "id", "label", "class_name", "subgroup", "a"]
    assert [int(r["subgroup"]) for r in rows] == subgroups.tolist()
    assert [int(r["kept"]) for r in rows] == result.keep.int().tolist()

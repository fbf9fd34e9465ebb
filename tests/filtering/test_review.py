"""Human review round trip: export the proposal, edit the CSV as a person would, read the decisions back."""

from __future__ import annotations

import csv

import pytest
import torch
from torchvision.io import decode_png, read_file

from selfloop.filtering.review import ReviewPending, export_review, read_review
from selfloop.filtering.sample_filter import FilterResult

CLASSES = ["zero", "one", "two"]


def proposal(n=9):
    labels = torch.arange(n) % 3
    images = torch.randint(
        0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    scores = torch.linspace(0, 1, n)
    keep = scores > 0.3
    result = FilterResult(scores=scores, per_scorer={"s": scores}, keep=keep, threshold=torch.zeros(3))
    return images, labels, result


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path, rows, fieldnames=("id", "label", "class_name", "score", "keep")):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fieldnames))
        writer.writeheader()
        writer.writerows(rows)


def test_export_then_edit_then_read_back(tmp_path):
    images, labels, result = proposal()
    written = export_review(tmp_path, images, labels, result, CLASSES, columns=4)
    assert [p.name for p in written] == ["review.csv", "contact_sheet.png"]
    rows = read_rows(tmp_path / "review.csv")
    assert [r["id"] for r in rows] == [str(i) for i in range(9)]
    assert [r["class_name"] for r in rows] == [CLASSES[i % 3] for i in range(9)]
    assert [int(r["keep"]) for r in rows] == result.keep.int().tolist()
    sheet = decode_png(read_file(str(tmp_path / "contact_sheet.png")))
    assert sheet.shape[0] == 3 and sheet.shape[2] > sheet.shape[1]  # 4 columns x 3 rows

    # Unedited: the filter's proposal comes back.
    assert torch.equal(read_review(tmp_path, 9), result.keep)

    # A person flips two decisions and sorts the rows by score, descending, as spreadsheets do.
    rows[0]["keep"], rows[8]["keep"] = "1", "0"
    rows.sort(key=lambda r: -float(r["score"]))
    write_rows(tmp_path / "review.csv", rows)
    expected = result.keep.clone()
    expected[0], expected[8] = True, False
    assert torch.equal(read_review(tmp_path, 9), expected)


def test_spreadsheet_byte_order_mark_and_trailing_blank_line_are_accepted(tmp_path):
    images, labels, result = proposal(3)
    export_review(tmp_path, images, labels, result, CLASSES)
    text = (tmp_path / "review.csv").read_text()
    (tmp_path / "review.csv").write_text("\ufeff" + text + ",,,,\n", encoding="utf-8")
    assert torch.equal(read_review(tmp_path, 3), result.keep)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda rows: rows[2].update(keep="yes"),
            r"line 4 \(id 2\): keep is 'yes'; allowed: 1 \(keep\) or 0 \(drop\)",
        ),
        (lambda rows: rows[1].update(keep=""), r"line 3 \(id 1\): keep is ''; allowed: 1"),
        (lambda rows: rows[3].update(id="42"), r"line 5: id 42 is out of range; ids are 0..8"),
        (lambda rows: rows[3].update(id="x"), r"line 5: id 'x' is not an integer"),
        (lambda rows: rows[4].update(id="0"), r"line 6: id 0 appears twice"),
        (lambda rows: rows.pop(7), r"1 id\(s\) missing: 7"),
    ],
    ids=["keep-word", "keep-empty", "id-out-of-range", "id-not-int", "id-twice", "id-missing"],
)
def test_bad_edits_name_the_file_the_line_and_what_is_allowed(tmp_path, edit, message):
    images, labels, result = proposal()
    export_review(tmp_path, images, labels, result, CLASSES)
    rows = read_rows(tmp_path / "review.csv")
    edit(rows)
    write_rows(tmp_path / "review.csv", rows)
    with pytest.raises(ValueError, match=message) as info:
        read_review(tmp_path, 9)
    assert str(tmp_path / "review.csv") in str(info.value)


def test_missing_file_and_missing_column(tmp_path):
    with pytest.raises(ValueError, match="review.csv: review file not found"):
        read_review(tmp_path, 3)
    write_rows(tmp_path / "review.csv", [{"id": 0, "label": 0}], fieldnames=("id", "label"))
    with pytest.raises(ValueError, match=r"line 1 \(header\) lacks the column\(s\) keep"):
        read_review(tmp_path, 1)


def test_large_exports_are_paged_and_review_pending_says_what_to_do(tmp_path):
    images, labels, result = proposal(9)
    written = export_review(tmp_path, images, labels, result, CLASSES, per_page=4)
    assert [p.name for p in written] == [
        "review.csv",
        "contact_sheet_1.png",
        "contact_sheet_2.png",
        "contact_sheet_3.png",
    ]
    message = str(ReviewPending(tmp_path, command="selfloop fit --config run.yaml"))
    assert str(tmp_path / "review.csv") in message and "contact_sheet_3.png" in message
    assert (
        "keep column" in message
        and "rerun the same command to resume: selfloop fit --config run.yaml" in message
    )
    # Exporting again with one page removes the stale pages.
    export_review(tmp_path, images, labels, result, CLASSES)
    assert sorted(p.name for p in tmp_path.glob("contact_sheet*.png")) == ["contact_sheet.png"]

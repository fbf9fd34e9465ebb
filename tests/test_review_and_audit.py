"""Filtering inside the loop: audit trail, FID per generation, and the human review round trip."""

from __future__ import annotations

import csv
import json

import pytest

from selfloop.cli.app import main


def _main(args: list[str], capsys) -> tuple[int, str]:
    """The exit status of ``selfloop`` with ``args`` (in process) and what it printed to stderr."""
    with pytest.raises(SystemExit) as info:
        main(args)
        raise SystemExit(0)
    return info.value.code, capsys.readouterr().err


def test_audit_files_and_fid_per_generation(tiny_cli_run):
    run = tiny_cli_run
    for n in (1, 2):
        audit = run / "generations" / f"gen_{n:03d}" / "audit"
        with open(audit / "candidates.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        # 40 survivors out of ceil(4 / 0.8) = 5 candidates per class.
        assert len(rows) == 50 and sum(int(r["kept"]) for r in rows) == 40
        assert {"uncertainty", "combined", "kept"} <= set(rows[0])
        for png in ("score_histogram.png", "borderline.png"):
            assert (audit / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(run / "metrics.csv", newline="") as handle:
        generator = {
            (r["generation"], r["metric"]): float(r["value"])
            for r in csv.DictReader(handle)
            if r["arch"] == "generator"
        }
    for n in ("1", "2"):
        assert generator[(n, "fid_raw")] > 0 and generator[(n, "fid_kept")] > 0
    table = (run / "fid_table.md").read_text()
    assert "domain, N=40" in table and "raw" in table and "kept" in table
    assert (run / "fid_table.csv").is_file() and (run / "fid_real_stats.pt").is_file()


def test_human_review_round_trip(tiny_run_args, tmp_path, capsys):
    run = tmp_path / "run"
    args = tiny_run_args(run, "--loop.generations", "1", "--loop.human_review", "true")
    status, err = _main(args, capsys)
    assert status == 3, err[-3000:]
    review = run / "generations" / "gen_001" / "review"
    assert "review.csv" in err and "--loop.run_dir" in err
    assert (review / "contact_sheet.png").is_file()

    with open(review / "review.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 50 and sum(int(r["keep"]) for r in rows) == 40
    # The reviewer keeps only the first candidate of every class.
    seen: set[str] = set()
    for row in rows:
        row["keep"] = "1" if row["label"] not in seen else "0"
        seen.add(row["label"])
    with open(review / "review.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    status, err = _main(args, capsys)
    assert status == 0, err[-3000:]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["queue"][0]["count"] == 10
    assert "g1/classifier/lenet" in manifest["completed"]

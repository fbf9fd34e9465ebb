"""The known-answer scenarios at tiny scale through the real CLI, judged by the report's shift and trend verdicts.

The density-seeking scenario runs on 5 seeds: its u_t grows by construction, and with the table's tests in
one Holm family that growth is found even at this size (with 3 seeds, df = 2, the strictest step would need
a t of about 20); one seed of it, reused, must be called "cannot be judged". That the perfect generator's
samples are real training images is tested on the generator itself (tests/generators/test_reference.py). The collapse scenarios' configs are
parsed with the other shipped configs (tests/test_configs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfloop.known_answers import HEADER, SCENARIOS, main

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
VERDICTS = ("increases", "decreases", "no detectable change", "unchanged within")


def _table(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    assert lines[0] == "| " + " | ".join(HEADER) + " |"
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


def test_tiny_known_answer_tables(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(ROOT)
    runs, judged, single = tmp_path / "runs", tmp_path / "judged.md", tmp_path / "single.md"
    common = ["--scale", "tiny", "--runs", str(runs)]
    reference = ["--scenario", "density-seeking", "--seeds", "0", "1", "2", "3", "4"]
    status = main([*common, *reference, "--out", str(judged)])
    console = "".join(capfd.readouterr())
    # The loop's progress lines, without Lightning's per-phase banners (silenced by the CLI itself).
    assert "[validate] density-seeking · seed 4" in console and "g3/3 classifier lenet · done" in console
    assert "GPU available:" not in console and "💡 Tip" not in console
    rows = _table(judged)
    (wanted,) = [s for s in SCENARIOS if s.name == "density-seeking"]
    assert [(r[0], r[1]) for r in rows] == [
        (wanted.name, f"{e.metric} ({e.arch})") for e in wanted.expectations
    ]
    # Every trend has a verdict with its evidence over 5 seeds and its Holm-adjusted p-value, or (at this size
    # a worst cell can sit at 0 in every seed) says that a zero-width interval judges nothing; generator
    # metrics have no shift.
    for r in rows:
        has_verdict = r[5].startswith(VERDICTS) and "over 5 seeds" in r[5] and "Holm-adjusted p" in r[5]
        assert has_verdict or r[5].startswith("cannot be judged: every seed gives the same"), r
    assert all(r[2:4] == ["-", "-"] for r in rows if "(generator)" in r[1])
    # Guaranteed by construction: the density-seeking generator's tilt compounds through the queue.
    u_t = next(r for r in rows if r[:2] == ["density-seeking", "u_t (generator)"])
    assert u_t[4] == "increases" and u_t[5].startswith("increases: ") and u_t[6] == "yes"
    assert status == (0 if all(r[6] == "yes" for r in rows) else 1)
    assert "form one family, corrected by Holm's method" in console

    # A second call reuses the finished runs and gives the same table.
    assert main([*common, *reference, "--out", str(judged)]) == status
    assert _table(judged) == rows

    # One seed gives no verdict, and the command fails rather than claim agreement (seed 0's finished run
    # is reused: no new run).
    assert main([*common, *reference[:2], "--seeds", "0", "--out", str(single)]) == 1
    single_rows = _table(single)
    assert len(single_rows) == len(wanted.expectations)
    assert all(r[5].startswith("cannot be judged: 1 seed with a trend") and r[6] == "NO" for r in single_rows)

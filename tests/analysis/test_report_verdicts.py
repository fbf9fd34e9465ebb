"""The report's verdicts on synthetic run directories with known answers: a one-time shift is a shift, not a
trend; pure noise over many groups gives no more false verdicts than the family-wise error rate allows."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from test_report import write_run

from selfloop.analysis.report import main
from selfloop.core.catalogue import metrics_of, spec

DIGITS = "selfloop.data.digits.ColoredDigitsDataModule"
GENERATIONS = 6  # generations 0..6: real data at 0, generated data from 1 on


def rows_of(out: Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted(out.glob("trends_*.csv")):
        with open(path) as handle:
            rows += list(csv.DictReader(handle))
    return rows


def test_a_one_time_shift_gives_shift_verdicts_and_no_trend_verdict(tmp_path: Path, capsys) -> None:
    # The quick start's shape: MD 0.05 at generation 0 and 0.02 after, worst-group accuracy 0.85 then 0.6,
    # accuracy unchanged; seed-to-seed noise of 0.002 (0.01 for worst-group accuracy).
    dirs = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        metrics: dict = {}
        for g in range(GENERATIONS + 1):
            metrics[g, "lenet", "md"] = (0.05 if g == 0 else 0.02) + rng.normal(0, 0.002)
            metrics[g, "lenet", "worst_group_acc"] = (0.85 if g == 0 else 0.6) + rng.normal(0, 0.01)
            metrics[g, "lenet", "acc"] = 0.96 + rng.normal(0, 0.002)
        dirs.append(write_run(tmp_path / f"run{seed}", DIGITS, seed, ["lenet"], GENERATIONS, metrics))
    out = tmp_path / "report"
    main([*map(str, dirs), "--out", str(out), "--bootstrap", "5"])
    printed = capsys.readouterr().out
    rows = {r["metric"]: r for r in rows_of(out)}
    assert (
        rows["md"]["shift_verdict"] == "decreases" and rows["worst_group_acc"]["shift_verdict"] == "decreases"
    )
    assert rows["acc"]["shift_verdict"] not in ("increases", "decreases")
    for metric in ("md", "worst_group_acc", "acc"):
        assert rows[metric]["trend_verdict"] not in ("increases", "decreases"), metric
        assert "Holm" in rows[metric]["method"] and rows[metric]["n_seeds"] == "5"
    # MD's trend is flat within its margin of 0.01 per generation: an equivalence verdict, with its p-value.
    assert rows["md"]["trend_verdict"] == "unchanged within ±0.01"
    assert "md of lenet: adding generated data lowers it once (generation 0 -> 1: " in rows["md"]["sentence"]
    assert "corrected by Holm's method" in printed and "Holm-adjusted p = " in printed


def test_pure_noise_over_ten_groups_keeps_the_family_wise_error_rate(tmp_path: Path) -> None:
    rng = np.random.default_rng(2026)
    for group in range(10):
        for seed in range(5):
            metrics = {
                (g, "lenet", m): 0.5 + rng.normal(0, 0.05)
                for g in range(GENERATIONS + 1)
                for m in metrics_of("classifier")
            }
            metrics |= {
                (g, "generator", m): 0.5 + rng.normal(0, 0.05)
                for g in range(1, GENERATIONS + 1)
                for m in metrics_of("generator")
            }
            path = tmp_path / f"g{group}" / f"s{seed}"
            run = write_run(path, DIGITS, seed, ["lenet"], GENERATIONS, metrics)
            # Ten experiments: one data setting apart each.
            config = (run / "config.yaml").read_text().replace("batch_size: 64", f"batch_size: {64 + group}")
            (run / "config.yaml").write_text(config)
    out = tmp_path / "report"
    main([str(tmp_path / f"g{k}") for k in range(10)] + ["--out", str(out), "--bootstrap", "2"])
    rows = rows_of(out)
    assert len({r["group"] for r in rows}) == 10
    changed = {
        r["group"] for r in rows if {r["shift_verdict"], r["trend_verdict"]} & {"increases", "decreases"}
    }
    # 10 groups x (every classifier metric's shift and trend + every generator metric's trend) difference
    # tests, plus an equivalence test for each with a margin, in one family: under the global null, Holm
    # keeps the chance of any false verdict at 5%, so no group, or at most one.
    assert len(changed) <= 1
    classifier, generator = (
        [spec(m) for m in metrics_of("classifier")],
        [spec(m) for m in metrics_of("generator")],
    )
    per_group = 2 * len(classifier) + len(generator)
    per_group += 2 * sum(m.margin is not None for m in classifier) + sum(
        m.margin is not None for m in generator
    )
    assert {r["family_size"] for r in rows} == {str(10 * per_group)}
    # Every "no detectable change" in verdicts.md carries the change the design could have detected.
    cells = (out / "verdicts.md").read_text().split(" | ")
    quiet = [i for i, c in enumerate(cells) if c == "no detectable change"]
    assert quiet and all("detectable with 80% power: ±" in cells[i + 1] for i in quiet)

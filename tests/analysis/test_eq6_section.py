"""The report's eq. 6 section: its files, its three states and its rows, markdown and HTML."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from helpers.tidy_rows import metric_rows, quality_rows

from selfloop.analysis.eq6_section import EQ6_METHOD, VERDICT_COLUMNS, eq6_section
from selfloop.analysis.runs import Run

GROUP = "ColoredDigits-0123abcd"


def eq6_runs(seeds: int = 5, generator: bool = True) -> list[Run]:
    """Runs of one group whose MD follows eq. 6 (c = 0.8, kappa_Q = 1, kappa_U = 1.5, 1% noise), with two
    subgroup accuracies logged for the measurement noise."""
    rng = np.random.default_rng(0)
    runs = []
    for seed in range(seeds):
        q, u = rng.uniform(0.6, 0.95, 6), rng.uniform(0.0, 0.3, 6)
        b = [0.1]
        for t in range(6):
            b.append(0.8 * (1 + (1 - q[t]) + 1.5 * u[t]) * b[-1] * (1 + 0.01 * rng.standard_normal()))
        rows = metric_rows(seed, "lenet", "md", b) + (quality_rows(seed, q, u) if generator else [])
        rows += [
            r | {"metric": f"subgroup_acc_{k}", "value": 0.9 - 0.2 * k} for r in rows[:7] for k in (0, 1)
        ]
        metrics = {(r["generation"], r["arch"], r["metric"]): r["value"] for r in rows}
        runs.append(Run(Path(f"run{seed}"), {}, seed, GROUP, {}, metrics))
    return runs


def test_a_fitted_section_writes_its_files_and_renders_the_verdict(tmp_path: Path) -> None:
    section = eq6_section(
        eq6_runs(), GROUP, tmp_path, n_bootstrap=20, q_text="q_t judged by f_0.", test_size=1000
    )
    assert section.state == "fitted" and section.comparison.preferred == "eq. 6"
    names = [f"eq6_{GROUP}.md", *(f"eq6_{GROUP}_{s}.csv" for s in ("parameters", "A_t", "comparison"))]
    assert section.files == names and all((tmp_path / n).is_file() for n in names)
    with open(tmp_path / f"eq6_{GROUP}_parameters.csv") as handle:
        params = {r["parameter"]: float(r["estimate"]) for r in csv.DictReader(handle)}
    assert abs(params["c[lenet]"] - 0.8) < 0.05 and abs(params["kappa_Q"] - 1.0) < 0.3
    with open(tmp_path / f"eq6_{GROUP}_A_t.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 6
    with open(tmp_path / f"eq6_{GROUP}_comparison.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["preferred"] == "eq. 6" and row["n_seeds"] == "5" and float(row["eq6_vs_generation_low"]) > 0

    verdict = section.verdict_row()
    assert list(verdict) == [*VERDICT_COLUMNS, "sentence"]
    assert verdict["verdict"] == "eq. 6" and verdict["B"] == "md" and verdict["group"] == GROUP
    assert verdict["eq. 6 vs generation effects"].endswith("(95% t-interval over 5 seeds)")
    assert verdict["sentence"] == section.comparison.verdict

    text = (tmp_path / f"eq6_{GROUP}.md").read_text()
    assert text == section.markdown() and "q_t judged by f_0." in text and EQ6_METHOD in text
    assert f"**Verdict:** {section.comparison.verdict}" in text and "| kappa_Q |" in text
    # Two subgroups at 0.9 and 0.7 on 1000 samples: var(MD) = 6e-4, stated as the factors' attenuation.
    assert f"shrinks the fitted factors by about {section.fit.attenuation:.3g}" in text
    page = section.html()
    assert page.startswith("<h3>Eq. 6 fit (B = md)</h3>") and "<th>held-out RMSE</th>" in page
    assert f'<a href="eq6_{GROUP}_comparison.csv">' in page


def test_without_q_and_u_nothing_is_written(tmp_path: Path) -> None:
    section = eq6_section(eq6_runs(generator=False), GROUP, tmp_path)
    assert section.state == "not logged" and section.files == [] and not list(tmp_path.iterdir())
    row = section.verdict_row()
    assert row["verdict"] == "not fitted" and row["eq. 6 vs generation effects"] == ""
    assert (
        row["sentence"]
        == "Not fitted: it needs q_t (gen_label_acc_kept) and u_t (u_t) rows under arch 'generator'."
    )
    assert "Not fitted" in section.html()


def test_a_fit_that_cannot_run_is_a_state_with_its_reason(tmp_path: Path) -> None:
    section = eq6_section(eq6_runs(), GROUP, tmp_path, bias_metric="<worst>")
    assert section.state == "failed" and section.files == [f"eq6_{GROUP}.md"]
    assert "no '<worst>' rows in the table" in section.error
    assert (
        (tmp_path / f"eq6_{GROUP}.md").read_text().endswith(f"The eq. 6 fit could not run: {section.error}\n")
    )
    assert section.verdict_row()["verdict"] == "not fitted"
    page = section.html()
    assert "&lt;worst&gt;" in page and "<worst>" not in page

"""The replication table on runs whose answers are planted: outcomes per takeaway, paired tests and one family."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from selfloop.analysis import replication
from selfloop.analysis.runs import Run
from selfloop.analysis.verdicts import NO_CHANGE, correct_family, make_test, seed_contrasts

SEEDS = range(5)
GENERATIONS = range(7)
ARCHS = ("lenet", "mobilenet_v3")


def _run(arm: str, seed: int, worst_slope: dict[str, float], md_slope: float, fid_slope: float) -> Run:
    noise = np.random.default_rng(100 * len(arm) + seed)
    metrics = {}
    for g in GENERATIONS:
        for arch in ARCHS:
            jitter = lambda scale: float(noise.normal(0, scale))  # noqa: E731
            metrics[(g, arch, "acc")] = 0.90 + 0.01 * g + jitter(0.002)  # improves every generation
            metrics[(g, arch, "meo")] = 0.98 + jitter(0.0005)  # flat
            metrics[(g, arch, "di")] = 0.98 + jitter(0.0005)
            metrics[(g, arch, "md")] = 0.02 + md_slope * g + jitter(0.0005)
            metrics[(g, arch, "worst_group_acc")] = 0.85 + worst_slope[arch] * g + jitter(0.002)
        if g >= 1:
            metrics[(g, "generator", "fid_raw")] = 10.0 + fid_slope * g + jitter(0.1)
            metrics[(g, "generator", "u_t")] = 0.05 * g + jitter(0.01)
    return Run(
        Path(f"/runs/{arm}/{seed}"), {"loop": {"archs": list(ARCHS)}}, seed, arm, {}, metrics, [], True
    )


def _arms(md_slope_biased: float = 0.0) -> dict[str, list[Run]]:
    worst = {"lenet": 0.0, "mobilenet_v3": -0.02}  # the archs differ in subgroup performance
    return {
        "unbiased": [_run("unbiased", s, worst, 0.0, fid_slope=1.0) for s in SEEDS],
        "biased": [_run("biased", s, worst, md_slope_biased, fid_slope=1.0) for s in SEEDS],
        "biased_accumulate": [_run("biased_accumulate", s, worst, 0.0, fid_slope=0.0) for s in SEEDS],
    }


def _outcomes(rows: list[replication.Row]) -> dict[tuple[str, str], str]:
    return {(row.claim, row.scope): row.outcome for row in rows}


def test_each_takeaway_gets_the_outcome_its_planted_answer_implies():
    rows = replication.build(_arms(), ARCHS, beyond=[("biased_accumulate", "biased")])
    outcome = _outcomes(rows)
    for arm in ("unbiased", "biased"):
        assert outcome[(replication._FID, arm)] == replication.DISAGREES  # FID rises by 1 per generation
        for arch in ARCHS:
            assert outcome[(replication._ACC, f"{arm}, {arch}")] == replication.AGREES
            assert outcome[(replication._SINGLE, f"{arm}, {arch}")] == replication.AGREES
        assert outcome[(replication._SUBGROUP, arm)] == replication.AGREES
        # planted: LeNet's worst subgroup is flat, MobileNet-V3's falls by 0.02 a generation
        assert outcome[(replication._VARIATION, f"{arm}, lenet")] == replication.DISAGREES
        assert outcome[(replication._VARIATION, f"{arm}, mobilenet_v3")] == replication.AGREES
    for arch in ARCHS:
        assert outcome[(replication._AMPLIFY, arch)] == replication.AGREES
        assert outcome[("(beyond the paper) biased_accumulate against biased", arch)] == "(beyond the paper)"


def test_a_biased_arm_whose_md_grows_faster_refutes_no_amplification():
    outcome = _outcomes(replication.build(_arms(md_slope_biased=0.02), ARCHS))
    assert outcome[(replication._AMPLIFY, "lenet")] == replication.DISAGREES
    # and its single-bias metrics change too
    assert outcome[(replication._SINGLE, "biased, lenet")] == replication.DISAGREES


def test_an_arm_difference_is_a_paired_t_test_on_per_seed_slopes_and_the_table_is_one_holm_family():
    arms = _arms(md_slope_biased=0.001)
    rows = replication.build(arms, ARCHS)

    def slopes(arm: str) -> list[float]:
        return [
            seed_contrasts(
                {g: v for (g, a, m), v in r.metrics.items() if a == "lenet" and m == "md"}, "classifier"
            )["trend"]
            for r in arms[arm]
        ]

    (amplify,) = [r for r in rows if r.claim == replication._AMPLIFY and r.scope == "lenet"]
    (md_trend,) = [t.contrast for t in amplify.tests if t.label == "md trend: biased - unbiased"]
    assert md_trend.p == pytest.approx(stats.ttest_rel(slopes("biased"), slopes("unbiased")).pvalue, rel=1e-9)

    contrasts = [t.contrast for row in rows for t in row.tests if t.contrast.judged]
    pvalues = [c.p for c in contrasts] + [c.p_equivalence for c in contrasts if c.margin is not None]
    adjusted = multipletests(pvalues, method="holm")[1]
    assert [c.p_adjusted for c in contrasts] == pytest.approx(list(adjusted[: len(contrasts)]))
    assert {c.family_size for c in contrasts} == {len(pvalues)}


def test_the_table_quotes_the_method_and_table_1_sits_next_to_the_studys_fid():
    arms = _arms()
    rows = replication.build(arms, ARCHS)
    lines = replication.markdown(rows)
    assert lines[0].startswith("| paper's takeaway |") and "Holm" in lines[-1]
    (family,) = {t.contrast.family_size for row in rows for t in row.tests}
    tests = sum(len(row.tests) for row in rows)  # every one judged; all but the FID rows' have a margin
    fid_rows = sum(row.claim == replication._FID for row in rows)
    assert family == 2 * tests - fid_rows
    assert (
        f"the family is this table's {family} p-values ({tests} difference tests and the {tests - fid_rows} "
        "equivalence tests of those whose metric has a margin)" in lines[-1]
    )
    fid = replication.fid_table(arms)
    assert (
        fid[0]
        == "| generation | paper unbiased | paper biased | selfloop unbiased (domain FID) | selfloop biased (domain FID) |"
    )
    first = [r.value(1, "generator", "fid_raw") for r in arms["unbiased"]]
    assert fid[2].startswith(
        f"| 1 | 111.7 | 109.4 | {np.mean(first):.2f} [{min(first):.2f}-{max(first):.2f}]"
    )
    assert fid[-1] == "| 10 | 106.3 | 116.5 |  |  |"  # the study stops at generation 6


def test_the_accuracy_table_gives_each_arch_and_arm_its_mean_and_range_at_generation_0_and_the_last():
    arms = _arms()
    lines = replication.accuracy_table(arms, ARCHS)
    assert lines[0] == "| arch | unbiased: g0 -> g6 | biased: g0 -> g6 | biased_accumulate: g0 -> g6 |"
    first = [r.metrics[(0, "lenet", "acc")] for r in arms["biased"]]
    last = [r.metrics[(6, "lenet", "acc")] for r in arms["biased"]]
    cell = lines[2].split(" | ")[2]
    assert cell == (
        f"{np.mean(first):.3f} [{min(first):.3f}-{max(first):.3f}] -> "
        f"{np.mean(last):.3f} [{min(last):.3f}-{max(last):.3f}]"
    )
    assert lines[3].startswith("| mobilenet_v3 | ")


def test_a_row_that_cannot_tell_says_how_many_of_its_contrasts_are_shown_unchanged():
    flat = make_test("trend", [0.001, -0.001, 0.0005, -0.0005, 0.0], list(SEEDS), margin=0.01)
    noisy = make_test("shift", [0.05, -0.04, 0.03, -0.06, 0.02], list(SEEDS), margin=0.01)
    correct_family([flat, noisy])
    assert (flat.verdict, noisy.verdict) == ("unchanged within ±0.01", NO_CHANGE)
    for rule in (replication.improves, replication.barely_changes, replication.differs):
        assert rule([flat, noisy]) == (
            replication.CANNOT_TELL,
            "1 of 2 contrasts are shown unchanged within their margins; the rest are neither changed nor ruled out",
        )


def test_the_tally_counts_the_outcomes_of_the_paper_rows_only():
    rows = replication.build(_arms(), ARCHS, beyond=[("biased_accumulate", "biased")])
    paper = [r for r in rows if not r.claim.startswith("(beyond the paper)")]
    disagree = sum(r.outcome == replication.DISAGREES for r in paper)
    assert disagree == 4  # per arm: the planted FID rise, LeNet's flat worst subgroup
    assert replication.tally(rows) == (
        f"Of the {len(paper)} rows on the paper's takeaways: {len(paper) - disagree} agree, 4 disagree."
    )


def test_the_mix_table_gives_each_arms_u_t_per_generated_generation():
    arms = _arms()
    lines = replication.mix_table(arms)
    assert lines[0] == "| generation | unbiased: u_t | biased: u_t | biased_accumulate: u_t |"
    assert [line.split(" | ")[0] for line in lines[2:]] == [f"| {g}" for g in range(1, 7)]
    values = [r.metrics[(3, "generator", "u_t")] for r in arms["biased"]]
    assert lines[4].split(" | ")[2] == f"{np.mean(values):.3f} [{min(values):.3f}-{max(values):.3f}]"

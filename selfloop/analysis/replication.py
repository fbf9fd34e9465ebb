"""The paper's Colorized-MNIST takeaways (section 4.2, Table 1) checked against a study's runs.

A study is a set of arms (``unbiased``, ``biased``, and arms beyond the paper), each run over the same seeds
with the same classifier panel. Every takeaway becomes one or more tests, all made with the verdicts'
machinery (:mod:`selfloop.analysis.verdicts`: per-seed contrasts, a t-interval over seeds, TOST against the
catalogue's margin) and Holm-corrected together as **one family: every test of the replication table**.
Comparisons between arms or archs are paired by seed (the same ``--loop.seed``: the same data split,
initialisations and sampling seeds; only the arm's setting differs) and test the per-seed difference of two
contrasts against 0.

Each row says ``agrees``, ``disagrees`` or ``cannot tell at this scale`` by a fixed rule per takeaway, with
the verdicts that decided it; nothing is typed by hand.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from selfloop.analysis.runs import Run
from selfloop.analysis.verdicts import (
    DECREASES,
    INCREASES,
    Contrast,
    Kind,
    correct_family,
    make_test,
    method_line,
    seed_contrasts,
)
from selfloop.core.catalogue import GENERATOR_ARCH, spec

AGREES, DISAGREES, CANNOT_TELL = "agrees", "disagrees", "cannot tell at this scale"
PAPER_FID = {  # Table 1, Colorized MNIST: generations 1-10 (the first generator trains on real data only)
    "unbiased": (111.7, 108.9, 107.8, 107.1, 104.5, 103.6, 101.0, 100.5, 103.6, 106.3),
    "biased": (109.4, 106.0, 107.03, 106.4, 105.3, 114.2, 109.0, 108.6, 109.1, 116.5),
}


@dataclass
class Test:
    """One labelled test of the table: what it contrasts, and the contrast over seeds."""

    label: str
    contrast: Contrast

    def describe(self) -> str:
        return f"{self.label}: {self.contrast.verdict} ({self.contrast.evidence()})"


@dataclass
class Row:
    """One row of the replication table: a takeaway, where it applies, the tests and the outcome."""

    claim: str
    where: str
    scope: str
    tests: list[Test]
    rule: Callable[[list[Contrast]], tuple[str, str]]
    outcome: str = ""
    why: str = ""

    def decide(self) -> None:
        self.outcome, self.why = self.rule([t.contrast for t in self.tests])


def _series(run: Run, arch: str, metric: str) -> dict[int, float]:
    return {g: v for (g, a, m), v in run.metrics.items() if a == arch and m == metric}


def _per_seed(runs: Sequence[Run], arch: str, metric: str, kind: Kind) -> dict[int, float]:
    source = "generator" if arch == GENERATOR_ARCH else "classifier"
    return {r.seed: seed_contrasts(_series(r, arch, metric), source)[kind] for r in runs}


def contrast(runs: Sequence[Run], arch: str, metric: str, kind: Kind) -> Contrast:
    """The shift or trend of one metric over the runs' seeds (not yet corrected)."""
    values = _per_seed(runs, arch, metric, kind)
    return make_test(kind, list(values.values()), list(values), spec(metric).margin)


def paired_difference(
    first: tuple[Sequence[Run], str], second: tuple[Sequence[Run], str], metric: str, kind: Kind
) -> Contrast:
    """Per seed present in both, ``first``'s contrast minus ``second``'s (each: runs and arch), over seeds."""
    a = _per_seed(*first, metric, kind)
    b = _per_seed(*second, metric, kind)
    seeds = sorted(set(a) & set(b))
    return make_test(kind, [a[s] - b[s] for s in seeds], seeds, spec(metric).margin)


# Rules: each maps a row's contrasts to (outcome, why). ---------------------------------------------------


def _equivalent(c: Contrast) -> bool:
    return c.verdict.startswith("unchanged")  # a test that cannot be judged says "cannot be judged"


def _undecided(contrasts: list[Contrast]) -> str:
    """Why a row whose contrasts neither decide for nor against its takeaway cannot tell: how many of them
    are shown unchanged within their margins (the others are neither changed nor ruled out)."""
    return (
        f"{sum(map(_equivalent, contrasts))} of {len(contrasts)} contrasts are shown unchanged within their "
        "margins; the rest are neither changed nor ruled out"
    )


def improves(contrasts: list[Contrast]) -> tuple[str, str]:
    """Accuracy improves: some contrast increases and none decreases."""
    if any(c.verdict == DECREASES for c in contrasts):
        return DISAGREES, "accuracy decreases"
    if any(c.verdict == INCREASES for c in contrasts):
        return AGREES, "accuracy increases and nothing decreases"
    if all(_equivalent(c) for c in contrasts):
        return DISAGREES, "accuracy is unchanged within the margin"
    return CANNOT_TELL, _undecided(contrasts)


def _moves(contrasts: list[Contrast], if_changed: str, if_unchanged: str) -> tuple[str, str]:
    """``if_changed`` when some contrast changes, ``if_unchanged`` when every one is shown unchanged within its
    margin, else cannot tell; with the count that decided it."""
    moved = [c for c in contrasts if c.changed]
    if moved:
        return if_changed, f"{len(moved)} of {len(contrasts)} contrasts change"
    if all(_equivalent(c) for c in contrasts):
        return if_unchanged, f"all {len(contrasts)} contrasts are unchanged within their margins"
    return CANNOT_TELL, _undecided(contrasts)


def barely_changes(contrasts: list[Contrast]) -> tuple[str, str]:
    """Single-bias metrics barely change: every contrast is equivalent to 0 within the catalogue's margin."""
    return _moves(contrasts, if_changed=DISAGREES, if_unchanged=AGREES)


def varies(contrasts: list[Contrast]) -> tuple[str, str]:
    """Subgroup performance varies with generated data: some contrast changes."""
    return _moves(contrasts, if_changed=AGREES, if_unchanged=DISAGREES)


def differs(contrasts: list[Contrast]) -> tuple[str, str]:
    """Archs differ: the paired difference of their contrasts is not 0."""
    if any(c.changed for c in contrasts):
        return AGREES, "the archs' contrasts differ"
    if all(_equivalent(c) for c in contrasts):
        return DISAGREES, "the archs' contrasts are equal within the margin"
    return CANNOT_TELL, _undecided(contrasts)


def flat(contrasts: list[Contrast]) -> tuple[str, str]:
    """FID roughly flat: a slope of FID has no margin in the catalogue, so flatness can be refuted, not shown."""
    if any(c.changed for c in contrasts):
        return DISAGREES, "FID changes across generations"
    return CANNOT_TELL, "no trend detected; FID has no equivalence margin, so flatness cannot be shown"


def reported(contrasts: list[Contrast]) -> tuple[str, str]:
    """Beyond the paper: no claim to agree with."""
    return "(beyond the paper)", "reported"


# The table ---------------------------------------------------------------------------------------------------


def build(
    arms: Mapping[str, Sequence[Run]], archs: Sequence[str], beyond: Sequence[tuple[str, str]] = ()
) -> list[Row]:
    """Every takeaway of section 4.2 as rows over the arms ``unbiased`` and ``biased``, plus, per pair in
    ``beyond`` (arm, reference arm), the same bias contrasts between two arms; all tests Holm-corrected as
    one family.

    Args:
        arms: per arm, its finished runs, one per seed.
        archs: the classifier panel (the first is compared with each other one).
        beyond: (arm, reference arm) pairs beyond the paper, e.g. ``("biased_accumulate", "biased")``.
    """
    archs = list(archs)
    paper_arms = [a for a in ("unbiased", "biased") if a in arms]
    rows: list[Row] = []
    for arm in paper_arms:
        tests = [Test("fid_raw trend", contrast(arms[arm], GENERATOR_ARCH, "fid_raw", "trend"))]
        rows.append(Row(_FID, "§4.2, Table 1", arm, tests, flat))
    for arm in paper_arms:
        for arch in archs:
            tests = [
                Test(f"acc {kind}", contrast(arms[arm], arch, "acc", kind)) for kind in ("shift", "trend")
            ]
            rows.append(Row(_ACC, "§4.2", f"{arm}, {arch}", tests, improves))
    for arm in paper_arms:
        for arch in archs:
            tests = [
                Test(f"{metric} {kind}", contrast(arms[arm], arch, metric, kind))
                for metric in ("meo", "di", "md")
                for kind in ("shift", "trend")
            ]
            rows.append(Row(_SINGLE, "§4.2", f"{arm}, {arch}", tests, barely_changes))
    for arm in paper_arms:
        for arch in archs:
            tests = [
                Test(f"worst_group_acc {kind}", contrast(arms[arm], arch, "worst_group_acc", kind))
                for kind in ("shift", "trend")
            ]
            rows.append(Row(_VARIATION, "§4.2", f"{arm}, {arch}", tests, varies))
    if len(archs) >= 2:
        for arm in paper_arms:
            tests = [
                Test(
                    f"worst_group_acc {kind}: {archs[0]} - {other}",
                    paired_difference((arms[arm], archs[0]), (arms[arm], other), "worst_group_acc", kind),
                )
                for other in archs[1:]
                for kind in ("shift", "trend")
            ]
            rows.append(Row(_SUBGROUP, "§4.2", arm, tests, differs))
    pairs = [("biased", "unbiased")] if len(paper_arms) == 2 else []
    for arm, reference in [*pairs, *beyond]:
        claim, where, rule = (
            (_AMPLIFY, "§4.2", barely_changes)  # the biased-minus-unbiased differences are equivalent to 0
            if (arm, reference) == ("biased", "unbiased")
            else (f"(beyond the paper) {arm} against {reference}", "-", reported)
        )
        for arch in archs:
            tests = [
                Test(
                    f"{metric} {kind}: {arm} - {reference}",
                    paired_difference((arms[arm], arch), (arms[reference], arch), metric, kind),
                )
                for metric in ("md", "worst_group_acc")
                for kind in ("shift", "trend")
            ]
            rows.append(Row(claim, where, arch, tests, rule))
    correct_family([t.contrast for row in rows for t in row.tests])
    for row in rows:
        row.decide()
    return rows


_FID = "FID stays roughly flat across generations: the generator learns a representation close to the real samples'"
_ACC = "models are consistently improved by augmenting the data set with generated data across generations"
_SINGLE = "generated data does not significantly affect single-bias performance (MEO, DI, MD)"
_VARIATION = "generated data can lead to substantial variations in subgroup performance, revealing the multi-bias problem"
_SUBGROUP = "the impact on subgroup performance varies between architectures"
_AMPLIFY = "the presence of dataset bias does not significantly amplify model bias"


def markdown(rows: Sequence[Row]) -> list[str]:
    """The replication table: one line per row, the tests and their verdicts in the last column."""
    judged = [t.contrast for r in rows for t in r.tests if t.contrast.judged]
    equivalence = sum(c.margin is not None for c in judged)
    seeds = sorted({s for r in rows for t in r.tests for s in t.contrast.seeds})
    lines = [
        "| paper's takeaway | where | applies to | selfloop | why | tests (verdict: estimate [95% interval], "
        "adjusted p) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        tests = "<br>".join(t.describe() for t in row.tests)
        lines.append(f"| {row.claim} | {row.where} | {row.scope} | **{row.outcome}** | {row.why} | {tests} |")
    lines += [
        "",
        f"Method: {method_line()}; the family is this table's {len(judged) + equivalence} p-values "
        f"({len(judged)} difference tests and the {equivalence} equivalence tests of those whose metric has a "
        f"margin); seeds {_span(seeds)}. A shift is "
        "generation 0 -> 1, a trend the slope per generation after generation 1; an arm or arch difference is "
        "paired by seed.",
    ]
    return lines


def tally(rows: Sequence[Row]) -> str:
    """One sentence counting the outcomes of the rows on the paper's takeaways, e.g. ``Of the 14 rows on the
    paper's takeaways: 2 agree, 1 disagrees, 11 cannot tell at this scale.``"""
    outcomes = [row.outcome for row in rows if row.outcome in (AGREES, DISAGREES, CANNOT_TELL)]
    words = {
        AGREES: ("agrees", "agree"),
        DISAGREES: ("disagrees", "disagree"),
        CANNOT_TELL: (CANNOT_TELL,) * 2,
    }
    counts = [f"{n} {words[o][n != 1]}" for o in (AGREES, DISAGREES, CANNOT_TELL) if (n := outcomes.count(o))]
    return f"Of the {len(outcomes)} rows on the paper's takeaways: {', '.join(counts) or 'none'}."


def fid_table(arms: Mapping[str, Sequence[Run]]) -> list[str]:
    """Table 1's Colorized-MNIST FID per generation next to the study's domain FID (mean [min-max] over seeds)."""
    present = [a for a in PAPER_FID if a in arms]
    generations = sorted(
        {g for a in present for r in arms[a] for (g, arch, m) in r.metrics if m == "fid_raw"}
    )
    header = [f"paper {a}" for a in present] + [f"selfloop {a} (domain FID)" for a in present]
    lines = ["| generation | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    for g in sorted(set(generations) | set(range(1, 11))):
        paper = [f"{PAPER_FID[a][g - 1]:g}" if g <= len(PAPER_FID[a]) else "" for a in present]
        ours = [spread(_values(arms[a], g, GENERATOR_ARCH, "fid_raw"), "{:.2f}") for a in present]
        lines.append(f"| {g} | " + " | ".join(paper + ours) + " |")
    return lines


def mix_table(arms: Mapping[str, Sequence[Run]]) -> list[str]:
    """The generated samples' subgroup mix against the real one (``u_t``) per generation and arm, mean [min-max]
    over seeds: what the generator made of the arm's colouring."""
    generations = sorted(
        {
            g
            for runs in arms.values()
            for r in runs
            for (g, arch, m) in r.metrics
            if (arch, m) == (GENERATOR_ARCH, "u_t")
        }
    )
    lines = ["| generation | " + " | ".join(f"{a}: u_t" for a in arms) + " |", "|---|" + "---|" * len(arms)]
    for g in generations:
        cells = [spread(_values(runs, g, GENERATOR_ARCH, "u_t"), "{:.3f}") for runs in arms.values()]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return lines


def accuracy_table(arms: Mapping[str, Sequence[Run]], archs: Sequence[str]) -> list[str]:
    """Each arch's test accuracy per arm at generation 0 and at the last, mean [min-max] over seeds: the
    context of every bias verdict (a classifier near chance answers every subgroup alike and reads as fair)."""
    last = max(g for runs in arms.values() for r in runs for g in r.generations)
    lines = [
        "| arch | " + " | ".join(f"{a}: g0 -> g{last}" for a in arms) + " |",
        "|---|" + "---|" * len(arms),
    ]
    for arch in archs:
        cells = [
            f"{spread(_values(runs, 0, arch, 'acc'), '{:.3f}')} -> {spread(_values(runs, last, arch, 'acc'), '{:.3f}')}"
            for runs in arms.values()
        ]
        lines.append(f"| {arch} | " + " | ".join(cells) + " |")
    return lines


def spread(values: Sequence[float], form: str) -> str:
    """``mean [min-max]`` of ``values`` in ``form`` (the mean alone for one value, empty for none)."""
    if not values:
        return ""
    mean = form.format(statistics.mean(values))
    return mean if len(values) == 1 else f"{mean} [{form.format(min(values))}-{form.format(max(values))}]"


def _values(runs: Sequence[Run], generation: int, arch: str, metric: str) -> list[float]:
    return [v for r in runs if math.isfinite(v := r.value(generation, arch, metric))]


def _span(seeds: Sequence[int]) -> str:
    return ", ".join(map(str, seeds)) if seeds else "none"

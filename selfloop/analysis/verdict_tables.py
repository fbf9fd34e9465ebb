"""The verdicts as the report shows them: one row per (group, arch, metric), the method next to the table.

The same rows feed ``verdicts.md`` (printed by the report command), the top of ``index.html`` and
``selfloop validate``'s table, so a verdict reads the same wherever it appears.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfloop.analysis.tables import markdown_table
from selfloop.analysis.verdicts import ALPHA, FAMILY_METHOD_NAME, MIN_SEEDS, POWER, MetricVerdict
from selfloop.analysis.wording import Q_TEXT
from selfloop.core.catalogue import GENERATOR_ARCH

DISPLAY_COLUMNS = ("group", "arch", "metric", "shift (generation 0 -> 1)", "shift evidence", "trend (per generation)",
                   "trend evidence")  # fmt: skip


def method_text(found: Sequence[MetricVerdict], scope: str = "this report") -> str:
    """The method of the table in one paragraph: contrasts, intervals, tests, the family and its size.

    Args:
        found: the verdicts the table shows.
        scope: what one family is, e.g. ``this report`` or ``each scenario``.
    """
    sizes = sorted({t.family_size for v in found for t in v.tests if t.family_size})
    size = f"{sizes[0]}-{sizes[-1]}" if len(sizes) > 1 else str(sizes[0]) if sizes else "0"
    text = (
        "Two verdicts per metric, each from one number per seed (seeds are the replicates). Shift: the value at "
        "generation 1 predicted by the seed's least-squares line over generations >= 1, minus its value at "
        "generation 0 (what first adding generated data did; generator metrics start at generation 1 and have "
        "none). Trend: the seed's least-squares slope over generations >= 1 (the change per generation after "
        f"that). Each is averaged over seeds with a 95% t-interval, tested against 0 with a one-sample t-test and, "
        "where the metric catalogue declares a margin m, against ±m with a two-one-sided-tests equivalence test. "
        f"The tests of {scope} ({size}) form one family, corrected by {FAMILY_METHOD_NAME}'s method "
        f"(family-wise error rate {ALPHA:g}); the verdict follows the adjusted p-value: increases / decreases, "
        "else unchanged within ±m when the equivalence test rejects, else no detectable change, stated with "
        f"the smallest change the design detects with {POWER:.0%} power at the family's strictest level "
        f"({ALPHA:g} / family size). Fewer than {MIN_SEEDS} seeds, or every seed giving the same value, cannot "
        "be judged."
    )
    if any(v.arch == GENERATOR_ARCH and v.metric.name.startswith("gen_label_acc") for v in found):
        text += f" {Q_TEXT}"
    return text


def verdict_rows(found: Sequence[MetricVerdict]) -> list[dict[str, str]]:
    """Display rows: group, arch, metric, then each verdict with its estimate, interval, adjusted p-value and
    (for no detectable change) the detectable change."""
    return [
        {
            "group": v.group,
            "arch": v.arch,
            "metric": v.metric.name,
            "shift (generation 0 -> 1)": v.shift.verdict if v.shift else "",
            "shift evidence": v.shift.evidence() if v.shift else "(generator metrics start at generation 1)",
            "trend (per generation)": v.trend.verdict,
            "trend evidence": v.trend.evidence(),
        }
        for v in found
    ]


def notes_of(found: Sequence[MetricVerdict]) -> list[str]:
    """Every note once (runs left out, contrasts that fell back), in order."""
    return list(dict.fromkeys(n for v in found for n in v.notes))


def verdicts_markdown(found: Sequence[MetricVerdict], eq6_rows: Sequence[dict[str, str]]) -> str:
    """Every verdict of the report as markdown: shift and trend per metric, then eq. 6 per group.

    Args:
        found: the verdicts (``metric_verdicts``).
        eq6_rows: one display row per group from its eq. 6 section (``verdict_row``).
    """
    lines = ["# Verdicts", "", "## Shift and trend per metric", "", method_text(found), ""]
    rows = verdict_rows(found)
    lines += markdown_table(rows, DISPLAY_COLUMNS) if rows else ["(no metric logged)"]
    notes = notes_of(found)
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    lines += ["", "## Eq. 6: do q_t / u_t explain bias dynamics?", ""]
    if eq6_rows:
        columns = [c for c in eq6_rows[0] if c != "sentence"]
        lines += markdown_table(eq6_rows, columns)
        lines += ["", *(f"- {r['group']}: {r['sentence']}" for r in eq6_rows)]
    return "\n".join(lines) + "\n"

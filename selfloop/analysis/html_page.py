"""``index.html``: the report's page, rendered from a Jinja template with every value escaped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from selfloop.analysis.tables import FID_COLUMNS, fid_display_rows, html_table
from selfloop.analysis.verdict_tables import DISPLAY_COLUMNS, method_text, notes_of, verdict_rows
from selfloop.analysis.verdicts import MetricVerdict
from selfloop.analysis.wording import Q_TEXT

if TYPE_CHECKING:
    from selfloop.analysis.report import GroupSection

_ENVIRONMENT = Environment(
    loader=PackageLoader("selfloop.analysis", "templates"), autoescape=True, undefined=StrictUndefined
)
_ENVIRONMENT.globals["table"] = html_table


def render_page(
    sections: Sequence[GroupSection],
    found: Sequence[MetricVerdict],
    fid: Sequence[dict[str, Any]],
    eq6_method: str,
) -> str:
    """The page: the verdicts first (with their method), the groups, Table 1, then each group's runs, config,
    figures and eq. 6 section.

    Args:
        sections: one per group.
        found: every metric's shift and trend verdicts.
        fid: Table 1's rows (``tables.fid_rows``), empty without FID.
        eq6_method: the eq. 6 comparison's method in one paragraph.
    """
    eq6_rows = [s.eq6.verdict_row() for s in sections]
    return _ENVIRONMENT.get_template("report.html").render(
        method=method_text(found),
        verdicts=verdict_rows(found),
        verdict_columns=DISPLAY_COLUMNS,
        notes=notes_of(found),
        eq6_method=eq6_method,
        q_text=Q_TEXT,
        eq6_rows=eq6_rows,
        eq6_columns=[c for c in (eq6_rows[0] if eq6_rows else {}) if c != "sentence"],
        sections=sections,
        fid=fid_display_rows(fid),
        fid_columns=FID_COLUMNS,
    )

"""The report's eq. 6 section of one group (placeholder over ``bias_dynamics`` until its split lands)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from selfloop.analysis.bias_dynamics import BiasDynamicsFit, fit_bias_dynamics
from selfloop.analysis.runs import GENERATOR_ARCH, Run, metric_names
from selfloop.analysis.tables import write_csv
from selfloop.analysis.wording import Q_JUDGE, Q_TEXT

Q_METRIC, U_METRIC = "gen_label_acc_kept", "u_t"
EQ6_METHOD = (
    "No change (A = 1), a constant factor per arch (A = c_M) and eq. 6 are fitted on the early generations "
    "and predict the last ones; per seed, the log of a simpler model's held-out MSE minus a richer one's "
    "(above 0: the richer predicts better), with a bootstrap-t interval over seeds. q_t / u_t are said to "
    "explain the dynamics only when the interval for eq. 6 over the constant factor lies above 0. "
    f"q_t is {Q_METRIC}, judged by {Q_JUDGE}."
)


@dataclass
class Eq6Section:
    """The eq. 6 fit of one group, or why there is none."""

    group: str
    bias_metric: str
    fit: BiasDynamicsFit | None = None
    error: str = ""
    files: list[str] = field(default_factory=list)

    def verdict_row(self) -> dict[str, str]:
        row = {"group": self.group, "B": self.bias_metric, "verdict": "not fitted", "sentence": ""}
        if self.fit is None:
            row["sentence"] = self.error
            return row
        row["verdict"] = self.fit.comparison.preferred or "cannot be judged"
        row["sentence"] = self.fit.verdict
        return row

    def markdown(self) -> str:
        if self.fit is None:
            return f"{self.error}\n"
        return f"# Eq. 6 fit: {self.group}\n\n{Q_TEXT}\n\n{self.fit.to_markdown()}"

    def html(self) -> str:
        esc = html.escape
        links = " · ".join(f'<a href="{esc(f)}">{esc(f)}</a>' for f in self.files)
        body = esc(self.fit.verdict if self.fit else self.error)
        return f'<h3>Eq. 6 fit (B = {esc(self.bias_metric)})</h3><p class="verdict">{body}</p><p>{esc(EQ6_METHOD)}</p><p>{links}</p>'


def eq6_section(
    runs: Sequence[Run], group: str, out: Path, bias_metric: str = "md", n_bootstrap: int = 200
) -> Eq6Section:
    """Fit eq. 6 to one group's runs and write ``eq6_<group>.md`` and its CSV tables into ``out``."""
    logged = metric_names(runs, GENERATOR_ARCH)
    if Q_METRIC not in logged or U_METRIC not in logged:
        return Eq6Section(
            group, bias_metric, error=f"Not fitted: it needs q_t ({Q_METRIC}) and u_t ({U_METRIC}) rows."
        )
    try:
        fit = fit_bias_dynamics(runs, metric=bias_metric, n_bootstrap=n_bootstrap)
    except ValueError as err:
        section = Eq6Section(group, bias_metric, error=f"The fit could not run: {err}")
    else:
        section = Eq6Section(group, bias_metric, fit)
        for name, rows in (
            ("parameters", fit.parameter_rows()),
            ("A_t", fit.a_t),
            ("comparison", fit.comparison_rows()),
        ):
            section.files.append(write_csv(out / f"eq6_{group}_{name}.csv", rows).name)
    markdown = out / f"eq6_{group}.md"
    markdown.write_text(section.markdown())
    section.files.insert(0, markdown.name)
    return section

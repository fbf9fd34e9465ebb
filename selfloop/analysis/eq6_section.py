"""The eq. 6 part of the report for one experiment: the fit, the comparison, their files and their text.

``eq6_section`` writes ``eq6_<group>.md`` and ``eq6_<group>_{parameters,A_t,comparison}.csv`` and returns
an ``Eq6Section`` that the report renders: a row of the verdict table (``verdict_row``), an HTML fragment
for the group (``html``) and markdown (``markdown``). Runs without q_t / u_t rows, and runs the fit cannot
use (a ``ValueError``), are states of the section, not errors of the report.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from selfloop.analysis.eq6_comparison import (
    GAINS,
    MIN_SEEDS,
    MIN_TRANSITIONS,
    ModelComparison,
    compare_models,
    reduction,
)
from selfloop.analysis.eq6_fit import Eq6Fit, fit_eq6
from selfloop.analysis.eq6_transitions import Q_METRIC, U_METRIC, transitions
from selfloop.analysis.runs import GENERATOR_ARCH, Run, metric_names
from selfloop.analysis.seed_stats import fmt
from selfloop.analysis.tables import html_table, markdown_table, write_csv

EQ6_METHOD = (
    "Five models of B_t+1 = A B_t predict every transition of each seed from a fit on the other seeds "
    "(leave-one-seed-out): no change (A = 1), a constant factor per arch (A = c_M), generation effects "
    "(A = c_M g_t, a factor per transition shared by seeds and archs), eq. 6 (A = c_M (1 + kappa_Q (1 - q_t) "
    "+ kappa_U u_t)) and eq. 6 plus generation effects. Per seed, the log of one model's held-out mean "
    "squared error minus another's; their mean over seeds gets a 95% Student t-interval, shown as the "
    "reduction of the MSE. q_t / u_t are credited only when eq. 6 beats generation effects and q_t / u_t "
    "added to generation effects also predict better (both intervals above 0), so a bias that changes with "
    "the generation while q_t / u_t trend along is not credited to them (0-1.5% false credit in 200 "
    "simulated experiments per scenario without an effect of q_t / u_t). Needs at least "
    f"{MIN_SEEDS} seeds and {MIN_TRANSITIONS} transitions (generations 0 to {MIN_TRANSITIONS}) per run. "
    f"q_t is {Q_METRIC}, u_t is {U_METRIC}."
)
"""The method in one paragraph, for the report's verdict section."""

NOISE_TEXT = (
    "Measurement noise: B is measured on a finite test split, and binomial noise in B_t shrinks every fitted "
    "factor (c_M, g_t) toward 0 by the reliability mean(B^2) / (mean(B^2) + sigma^2): a true factor of 1 is "
    "fitted as 0.80 when the noise sd is half the RMS of B. The noise is independent of q_t and u_t, so it "
    "cannot make them look predictive."
)
MODEL_FORMS = (
    ("no change", "1"),
    ("constant factor", "c_M"),
    ("generation effects", "c_M g_t"),
    ("eq. 6", "c_M (1 + kappa_Q (1 - q_t) + kappa_U u_t)"),
    ("eq. 6 + generation effects", "c_M g_t (1 + kappa_Q (qbar_t - q_t) + kappa_U (u_t - ubar_t))"),
)
GAIN_LABELS = {name: f"{richer} vs {simpler}" for name, simpler, richer in GAINS}
"""Display name of each gain of ``ModelComparison``, e.g. ``eq. 6 vs generation effects``."""
VERDICT_COLUMNS = ("group", "B", "verdict", *GAIN_LABELS.values())
"""The columns of the report's verdict table; ``verdict_row`` also has ``sentence``."""

State = Literal["fitted", "not logged", "failed"]


@dataclass
class Eq6Section:
    """Eq. 6 for one experiment, as the report shows it.

    Args:
        group: the experiment's group key.
        metric: the bias metric B.
        state: ``fitted``; ``not logged`` (no q_t / u_t rows: nothing written); ``failed`` (the fit could
            not run; ``error`` says why).
        fit: the eq. 6 fit (``fitted`` only).
        comparison: the leave-one-seed-out comparison and its verdict (``fitted`` only).
        error: why the fit could not run.
        files: names of the files written into the report folder.
        q_text: how q_t was judged, printed under the markdown's heading.
    """

    group: str
    metric: str
    state: State
    fit: Eq6Fit | None = None
    comparison: ModelComparison | None = None
    error: str = ""
    files: list[str] = field(default_factory=list)
    q_text: str = ""

    @property
    def sentence(self) -> str:
        """The verdict in words (or why there is none)."""
        if self.state == "not logged":
            return f"Not fitted: it needs q_t ({Q_METRIC}) and u_t ({U_METRIC}) rows under arch '{GENERATOR_ARCH}'."
        if self.comparison is None:
            return f"The eq. 6 fit could not run: {self.error}"
        return self.comparison.verdict

    def verdict_row(self) -> dict[str, str]:
        """One row of the report's verdict table: ``VERDICT_COLUMNS`` and ``sentence``, as display strings."""
        row = {"group": self.group, "B": self.metric, "verdict": "not fitted"}
        c = self.comparison
        if c is not None:
            row["verdict"] = c.preferred or "cannot be judged"
        for name, label in GAIN_LABELS.items():
            interval = getattr(c, name) if c is not None else None
            row[label] = reduction(interval) if interval is not None else ""
        row["sentence"] = self.sentence
        return row

    def markdown(self) -> str:
        """``eq6_<group>.md``: verdict, comparison, parameters and A_t."""
        lines = [f"# Eq. 6 fit: {self.group} (B = {self.metric})", ""]
        lines += [self.q_text, ""] if self.q_text else []
        if self.fit is None or self.comparison is None:
            return "\n".join([*lines, self.sentence]) + "\n"
        c, fit = self.comparison, self.fit
        pct = f"{100 * fit.confidence:g}%"
        lines += [f"**Verdict:** {c.verdict}", "", EQ6_METHOD, ""]
        if c.rmse:
            lines += [
                f"Leave-one-seed-out: {c.n_transitions} held-out transitions of {len(c.seeds)} seeds "
                f"({', '.join(map(str, c.seeds))}).",
                "",
                *_markdown(_model_rows(c)),
                "",
                *_markdown(_gain_rows(c)),
                "",
            ]
        lines += [
            f"Parameters of eq. 6 fitted on every transition; {pct} percentile bootstrap intervals over seeds "
            f"({fit.n_bootstrap} resamples; descriptive: with few seeds they are too narrow, and the verdict does "
            "not use them). c_M = (1 - gamma_M)(1 + delta_D) and kappa = delta / (1 + delta_D): gamma_M and "
            "delta_D are identifiable only through c_M.",
            "",
            *_markdown([asdict(p) for p in fit.parameters]),
            "",
            f"In-sample one-step RMSE: {fmt(fit.rmse_in_sample)}. {NOISE_TEXT}",
            "",
            "A_t per arch and transition at the seeds' mean q_t, u_t (generation_effect: c_M g_t of the "
            "generation-effects model; observed_ratio: mean B_t+1 / B_t).",
            "",
            *_markdown([asdict(r) for r in fit.a_t]),
        ]
        if fit.notes:
            lines += ["", *(f"- {n}" for n in fit.notes)]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """The group's eq. 6 part of ``index.html`` (an HTML fragment, text escaped)."""
        esc = html.escape
        links = " · ".join(f'<a href="{esc(f)}">{esc(f)}</a>' for f in self.files)
        parts = [f"<h3>Eq. 6 fit (B = {esc(self.metric)})</h3>"]
        if self.fit is None or self.comparison is None:
            parts.append(f"<p>{esc(self.sentence)}</p>")
            return "\n".join(parts + ([f"<p>{links}</p>"] if links else []))
        c, fit = self.comparison, self.fit
        parts += [
            f'<p class="verdict">{esc(c.verdict)}</p>',
            f"<p>{esc(EQ6_METHOD)}</p>",
            html_table(_model_rows(c)),
            html_table(_gain_rows(c)),
            f"<p>Parameters and A_t: {100 * fit.confidence:g}% percentile bootstrap over seeds ({fit.n_bootstrap} "
            "resamples); descriptive only, too narrow with few seeds, and not used by the verdict. "
            f"{esc(NOISE_TEXT)}</p>",
            html_table([asdict(p) for p in fit.parameters]),
            html_table([asdict(r) for r in fit.a_t]),
        ]
        if fit.notes:
            parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in fit.notes) + "</ul>")
        parts.append(f"<p>{links}</p>")
        return "\n".join(parts)


def eq6_section(
    runs: Sequence[Run],
    group: str,
    out: Path,
    bias_metric: str = "md",
    n_bootstrap: int = 200,
    q_text: str = "",
    test_size: int | None = None,
) -> Eq6Section:
    """Fit eq. 6 to one experiment's runs, compare it with the simpler models, and write its files.

    Writes ``eq6_<group>.md`` (also when the fit fails) and, when fitted,
    ``eq6_<group>_parameters.csv``, ``eq6_<group>_A_t.csv`` and ``eq6_<group>_comparison.csv`` into ``out``.

    Args:
        runs: the runs of the experiment.
        group: its group key (in the file names).
        out: the report folder (must exist).
        bias_metric: the bias metric B (fairness scores such as ``meo`` are used as ``1 - value``).
        n_bootstrap: bootstrap resamples of the parameters' intervals.
        q_text: how q_t was judged, for the markdown.
        test_size: samples in the test split B is measured on; with MD it gives the attenuation of the
            fitted factors by measurement noise (a note of the fit).
    """
    logged = metric_names(runs, GENERATOR_ARCH)
    section = Eq6Section(group, bias_metric, "not logged", q_text=q_text)
    if Q_METRIC not in logged or U_METRIC not in logged:
        return section
    try:
        obs = transitions(runs, bias_metric, test_size=test_size)
        section.fit = fit_eq6(obs, n_bootstrap)
    except ValueError as err:
        section.state, section.error = "failed", str(err)
    else:
        section.state, section.comparison = "fitted", compare_models(obs)
        fit, comparison = section.fit, section.comparison
        for suffix, rows in (
            ("parameters", fit.parameters),
            ("A_t", fit.a_t),
            ("comparison", [comparison.row()]),
        ):
            section.files.append(write_csv(out / f"eq6_{group}_{suffix}.csv", [asdict(r) for r in rows]).name)
    markdown = out / f"eq6_{group}.md"
    markdown.write_text(section.markdown())
    section.files.insert(0, markdown.name)
    return section


def _model_rows(c: ModelComparison) -> list[dict[str, str]]:
    return [{"model": m, "A": form, "held-out RMSE": fmt(c.rmse.get(m, math.nan))} for m, form in MODEL_FORMS]


def _gain_rows(c: ModelComparison) -> list[dict[str, str]]:
    rows = []
    for name, label in GAIN_LABELS.items():
        interval = getattr(c, name)
        if interval is not None:
            rows.append(
                {"comparison": label, "mean log-MSE gain": fmt(interval.estimate),
                 "reduction of the held-out MSE": reduction(interval)}
            )  # fmt: skip
    return rows


def _markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    return markdown_table(rows, list(rows[0])) if rows else []

"""The one list of metrics that verdicts are given on: name, who logs it, which way is better, a margin.

Every reader of a run's metrics that judges them (the report's verdicts, ``selfloop validate``'s
known answers, the console's end-of-run table, the eq. 6 fit's bias B) takes its metric names, their
directions and their equivalence margins from here, so a metric is spelled once.

The equivalence margin is the change that a researcher would call negligible, on the metric's own scale:
a per-generation slope within ``±margin`` (trend), or a generation-0 -> 1 change within ``±margin``
(shift), can be reported as "unchanged" by an equivalence test. Metrics without a natural scale (FID,
whose size depends on the feature extractor) have no margin: for them "no detectable change" is always
stated with the smallest change the design detects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["classifier", "generator"]
Better = Literal["higher", "lower"]

GENERATOR_ARCH = "generator"
"""The arch name under which a run logs the generator's metrics (``metrics.csv``)."""


@dataclass(frozen=True)
class MetricSpec:
    """One metric that verdicts are given on.

    Args:
        name: the metric's name in ``metrics.csv``.
        source: ``classifier`` (one row per arch and generation, from generation 0) or ``generator``
            (arch ``generator``, from generation 1 on: it has a trend but no shift).
        better: ``higher`` when a larger value is fairer / more accurate / more faithful, else ``lower``.
        margin: equivalence margin on the metric's scale (see the module's docstring); None when the metric
            has no natural scale.
        fairness_score: True for scores where 1 means fair (MEO, DI): their bias is ``1 - value``.
        console: shown in the console's end-of-run table.
        description: what it measures, in a few words.
    """

    name: str
    source: Source
    better: Better
    margin: float | None
    fairness_score: bool = False
    console: bool = False
    description: str = ""

    def bias(self, value: float) -> float:
        """The value as a bias (larger = more biased) for a fairness score or disparity."""
        return 1.0 - value if self.fairness_score else value


CATALOGUE: tuple[MetricSpec, ...] = (
    MetricSpec("acc", "classifier", "higher", 0.01, console=True, description="overall accuracy"),
    MetricSpec("md", "classifier", "lower", 0.01, console=True, description="max subgroup accuracy gap"),
    MetricSpec("meo", "classifier", "higher", 0.01, True, description="1 - mean subgroup accuracy gap"),
    MetricSpec("di", "classifier", "higher", 0.01, True, description="1 - mean subgroup accuracy ratio gap"),
    MetricSpec(
        "worst_group_acc",
        "classifier",
        "higher",
        0.02,
        console=True,
        description="accuracy of the worst (class, subgroup) cell",
    ),  # fmt: skip
    MetricSpec("md_within_class", "classifier", "lower", 0.01, description="MD inside each class, mean"),
    MetricSpec(
        "meo_within_class", "classifier", "higher", 0.01, True, description="MEO inside each class, mean"
    ),
    MetricSpec(
        "di_within_class", "classifier", "higher", 0.01, True, description="DI inside each class, mean"
    ),
    MetricSpec("worst_class_md", "classifier", "lower", 0.02, description="MD of the worst class"),
    MetricSpec("worst_class_meo", "classifier", "higher", 0.02, True, description="MEO of the worst class"),
    MetricSpec("worst_class_di", "classifier", "higher", 0.02, True, description="DI of the worst class"),
    MetricSpec(
        "gen_label_acc",
        "generator",
        "higher",
        0.01,
        console=True,
        description="class fidelity of all generated samples (judge)",
    ),  # fmt: skip
    MetricSpec(
        "gen_label_acc_kept", "generator", "higher", 0.01, description="q_t: class fidelity of kept samples"
    ),
    MetricSpec("u_t", "generator", "lower", 0.01, description="subgroup imbalance of kept samples vs real"),
    MetricSpec(
        "fid_raw", "generator", "lower", None, console=True, description="FID of all generated samples"
    ),
    MetricSpec("fid_kept", "generator", "lower", None, description="FID of the kept samples"),
    MetricSpec(
        "precision_kept", "generator", "higher", 0.01, description="kept samples inside the real manifold"
    ),
    MetricSpec(
        "recall_kept", "generator", "higher", 0.01, description="real samples covered by the kept ones"
    ),
    MetricSpec("kid_kept", "generator", "lower", None, description="KID of the kept samples"),
    MetricSpec(
        "cell_missing_total",
        "generator",
        "lower",
        None,
        description="survivors a pool-level selection could not find in their (class, subgroup) cell",
    ),  # fmt: skip
)

_BY_NAME = {spec.name: spec for spec in CATALOGUE}


def spec(name: str) -> MetricSpec:
    """The catalogue entry of ``name``.

    Raises:
        KeyError: naming the metric and the catalogue's names, when it is not in the catalogue.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the metric catalogue ({', '.join(_BY_NAME)})") from None


def metrics_of(source: Source) -> tuple[str, ...]:
    """Names of the catalogue's metrics logged by ``source``, in catalogue order."""
    return tuple(s.name for s in CATALOGUE if s.source == source)


def console_metrics(source: Source) -> tuple[str, ...]:
    """Names of the metrics of ``source`` that the console's end-of-run table shows."""
    return tuple(s.name for s in CATALOGUE if s.source == source and s.console)


def is_fairness_score(name: str) -> bool:
    """Whether ``name`` is a score where 1 means fair (False for names outside the catalogue)."""
    entry = _BY_NAME.get(name)
    return bool(entry and entry.fairness_score)

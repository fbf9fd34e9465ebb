"""The evaluation callback a data set names: subgroup fairness, or accuracy under object ablations.

A data module names its evaluation (``SelfLoopDataModule.evaluation``; data sits below the callbacks, so
it names the callback rather than importing it), and each evaluation callback builds itself from a data
module (``for_datamodule``). A new evaluation is a callback with that hook and one entry in
``EVALUATIONS``.
"""

from __future__ import annotations

from collections.abc import Callable

from lightning.pytorch.callbacks import Callback

from selfloop.callbacks.ablation_metrics import AblationMetrics
from selfloop.callbacks.fairness_metrics import FairnessMetrics
from selfloop.data.base import SelfLoopDataModule

EVALUATIONS: dict[str, Callable[[SelfLoopDataModule, Callable[[dict], None]], Callback]] = {
    "subgroups": FairnessMetrics.for_datamodule,
    "ablations": AblationMetrics.for_datamodule,
}
"""The evaluation callbacks by the name a data module gives its evaluation."""


def evaluation_callback(datamodule: SelfLoopDataModule, record: Callable[[dict], None]) -> Callback:
    """The callback that evaluates every trained classifier of ``datamodule`` and hands ``record`` its metrics:
    ``subgroups`` (``FairnessMetrics`` on the subgroup-labelled test split) or ``ablations``
    (``AblationMetrics``: clean accuracy and accuracy under the three object ablations, for data sets with
    masks such as Hard ImageNet)."""
    return EVALUATIONS[datamodule.evaluation](datamodule, record)

"""The evaluation callback a data set asks for: subgroup fairness, or accuracy under object ablations."""

from __future__ import annotations

from collections.abc import Callable

from lightning.pytorch.callbacks import Callback

from selfloop.callbacks.ablation_metrics import AblationMetrics
from selfloop.callbacks.fairness_metrics import FairnessMetrics
from selfloop.data.base import SelfLoopDataModule


def evaluation_callback(datamodule: SelfLoopDataModule, record: Callable[[dict], None]) -> Callback:
    """The callback that evaluates every trained classifier of ``datamodule`` and hands ``record`` its metrics.

    ``datamodule.evaluation`` says which: ``subgroups`` (``FairnessMetrics`` on the subgroup-labelled test
    split) or ``ablations`` (``AblationMetrics``: clean accuracy and accuracy under the three object
    ablations, for data sets with masks such as Hard ImageNet).
    """
    if datamodule.evaluation == "ablations":
        segmented = datamodule.segmented_test_set  # type: ignore[attr-defined]
        return AblationMetrics(segmented, record, batch_size=max(datamodule.batch_size, 64))
    return FairnessMetrics(datamodule.test_set, datamodule.num_classes, datamodule.num_subgroups, record)

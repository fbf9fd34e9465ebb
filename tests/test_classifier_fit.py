"""ClassifierFit in process: one classifier phase's fit and evaluation, reproducible from its seed."""

from __future__ import annotations

import pickle

import pytest
import torch

from selfloop.classifiers.image_classifier import ImageClassifier
from selfloop.data.digits import ColoredDigitsDataModule
from selfloop.training.classifier_fit import ClassifierFit
from selfloop.training.module_spec import ModuleSpec

SIZE = 16
TRAINER = {
    "accelerator": "cpu",
    "max_epochs": 1,
    "limit_train_batches": 3,
    "limit_val_batches": 1,
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "callbacks": [],
}


@pytest.fixture(scope="module")
def fit() -> ClassifierFit:
    spec = ModuleSpec(ImageClassifier, {"arch": "lenet", "image_size": SIZE})
    return ClassifierFit(spec, "lenet", 11, ColoredDigitsDataModule(image_size=SIZE), TRAINER)


def test_the_metrics_are_the_fitted_models_on_the_whole_test_split(fit):
    model, metrics, _ = fit.run()
    test = fit.datamodule.test_set
    with torch.no_grad():
        correct = model.eval()(test.images).argmax(1) == test.labels
    assert metrics["num_evaluated"] == len(test)
    assert metrics["acc"] == pytest.approx(correct.double().mean().item(), abs=1e-12)
    assert len(metrics["subgroup_acc"]) == 3


def test_a_fit_is_its_seeds_bit_for_bit_also_after_a_pickle_round_trip(fit):
    first, metrics, _ = fit.run()
    again, metrics_again, _ = pickle.loads(pickle.dumps(fit)).run()
    assert metrics == metrics_again
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in first.state_dict().items())


def test_before_fit_runs_before_training_and_may_stop_it(fit):
    class Stop(Exception):
        pass

    def stop() -> None:
        raise Stop

    with pytest.raises(Stop):
        fit.run(before_fit=stop)

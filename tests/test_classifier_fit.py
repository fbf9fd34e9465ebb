"""ClassifierFit in process: one classifier phase's fit and evaluation, reproducible from its seed."""

from __future__ import annotations

import multiprocessing
import pickle

import pytest
import torch

from selfloop.classifiers.image_classifier import ImageClassifier
from selfloop.data.digits import ColoredDigitsDataModule
from selfloop.training.classifier_fit import ClassifierFit, fit_concurrently
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


def test_a_stop_during_concurrent_fits_ends_every_worker_and_returns(fit):
    # Two workers, four fits; the caller stops while the first ones run. Pool.terminate() holds the task
    # queue's lock while it signals the workers: a worker waiting for that lock must still end.
    class Stop(Exception):
        pass

    finished = []

    def stop() -> None:
        raise Stop

    with pytest.raises(Stop):
        fit_concurrently([fit] * 4, workers=2, finish=lambda *done: finished.append(done), check_stop=stop)
    assert finished == [] and multiprocessing.active_children() == []


def test_concurrent_fits_end_with_their_workers_gone_and_give_the_serial_results(fit):
    done = []
    fit_concurrently(
        [fit] * 3, workers=2, finish=lambda f, state, metrics: done.append(metrics), check_stop=lambda: None
    )
    _, serial, _ = fit.run()
    assert done == [serial] * 3 and multiprocessing.active_children() == []

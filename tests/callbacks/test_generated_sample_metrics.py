"""The measurements of generated samples, each against a value worked out independently."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from selfloop.callbacks.generated_sample_metrics import (
    ClassFidelity,
    FrechetDistance,
    GeneratedSampleMetrics,
    GeneratedSamples,
    SampleCounts,
    SubgroupBalance,
)
from selfloop.classifiers.image_classifier import ImageClassifier
from selfloop.data.image_set import ImageSet
from selfloop.metrics.fid import FidTracker


def _samples(keep: list[bool]) -> GeneratedSamples:
    n = len(keep)
    images = torch.randint(
        0, 256, (n, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    return GeneratedSamples(images, torch.arange(n) % 2, torch.tensor(keep))


def test_class_fidelity_is_the_judges_accuracy_on_the_candidates_and_on_the_kept():
    samples = _samples([True, False, True, True, False, True])
    torch.manual_seed(0)
    judge = ImageClassifier(arch="lenet", num_classes=2, image_size=16).eval()
    with torch.no_grad():
        predicted = judge(samples.images).argmax(1)
    correct = (predicted == samples.labels).float()
    values = ClassFidelity(judge)(samples)
    assert values["gen_label_acc"] == pytest.approx(correct.mean().item(), abs=1e-7)
    assert values["gen_label_acc_kept"] == pytest.approx(correct[samples.keep].mean().item(), abs=1e-7)


def test_counts_are_the_candidates_and_the_survivors():
    assert SampleCounts()(_samples([True, False, True])) == {"num_candidates": 3.0, "num_kept": 2.0}


def test_subgroup_balance_against_a_hand_worked_total_variation():
    # Real: class 0 half subgroup 0, half 1; class 1 all subgroup 1. The oracle reads the first pixel.
    real = ImageSet(
        torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1])
    )
    images = torch.zeros(5, 1, 2, 2, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.tensor([0, 0, 0, 1, 255])  # 255: a subgroup the oracle cannot read
    samples = GeneratedSamples(
        images, torch.tensor([0, 0, 0, 1, 1]), torch.tensor([True, True, True, True, True])
    )

    def oracle(x: torch.Tensor) -> torch.Tensor:
        g = x[:, 0, 0, 0].long()
        return torch.where(g == 255, torch.full_like(g, -1), g)

    values = SubgroupBalance(oracle, real, num_classes=2, num_subgroups=2)(samples)
    # Class 0: generated all subgroup 0 vs real 1/2 each: TV 1/2. Class 1: subgroup 1 vs 1: TV 0. Mean 1/4.
    assert values["u_t"] == pytest.approx(0.25, abs=1e-12)
    assert values["subgroup_ambiguous_frac"] == pytest.approx(1 / 5, abs=1e-12)


class _Flat(nn.Module):
    """Features = the pixels themselves (4 of them)."""

    num_features = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).double()


def test_fid_of_the_kept_is_nan_when_fewer_than_n_survived_and_the_table_labels_its_setting():
    images = torch.randint(
        0, 256, (12, 1, 2, 2), generator=torch.Generator().manual_seed(1), dtype=torch.uint8
    )
    tracker = FidTracker(_Flat(), num_samples=6, seed=0, extractor_name="domain", resize="native")
    tracker.set_real(images)
    fid = FrechetDistance(tracker)
    few = fid(GeneratedSamples(images, torch.zeros(12, dtype=torch.long), torch.arange(12) < 5))
    assert few["fid_raw"] == pytest.approx(tracker.score(images)) and math.isnan(few["fid_kept"])
    rows = [
        {"generation": "3", "arch": "generator", "metric": "fid_raw", "value": "1.5"},
        {"generation": "3", "arch": "generator", "metric": "gen_label_acc", "value": "0.5"},
        {"generation": "3", "arch": "lenet", "metric": "fid_raw", "value": "9.0"},
    ]
    assert fid.table_rows(rows) == [{"setting": "raw (domain, N=6, native)", "generation": 3, "fid": 1.5}]


def test_measurements_join_in_list_order_and_none_may_measure_a_value_twice():
    samples = _samples([True, False])
    joined = GeneratedSampleMetrics([SampleCounts(), lambda s: {"extra": 1.0}])(samples)
    assert list(joined) == ["num_candidates", "num_kept", "extra"]
    with pytest.raises(ValueError, match=r"SampleCounts measures \['num_candidates', 'num_kept'\] again"):
        GeneratedSampleMetrics([SampleCounts(), SampleCounts()])(samples)

"""Tests for selfloop.metrics.fairness against fairlearn and hand-computed references."""

from __future__ import annotations

import math
import pickle
import socket
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from selfloop.metrics.fairness import (
    SUMMARY_KEYS,
    WITHIN_CLASS_KEYS,
    GroupFairness,
    count_matrices,
    fairness_summary,
    summary_from_counts,
)

NAN = float("nan")


# --------------------------------------------------------------------------------------- helpers


def _same(a: float, b: float, tol: float = 1e-12) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def assert_summary_equal(got: dict, expected: dict, tol: float = 1e-12) -> None:
    assert set(got) == set(expected)
    for key, exp in expected.items():
        val = got[key]
        if isinstance(exp, list):
            assert isinstance(val, list) and len(val) == len(exp), key
            assert all(isinstance(v, float) for v in val), key
            assert all(_same(v, e, tol) for v, e in zip(val, exp, strict=True)), (key, val, exp)
        else:
            assert isinstance(val, float), key
            assert _same(val, exp, tol), (key, val, exp)


def reference_summary(preds, targets, subgroups, num_classes: int, num_subgroups: int) -> dict:
    """Independent plain-python implementation of the documented contract."""
    preds, targets, subgroups = (list(map(int, x)) for x in (preds, targets, subgroups))
    cells: dict[tuple[int, int], list[int]] = {}
    for p, t, g in zip(preds, targets, subgroups, strict=True):
        cells.setdefault((t, g), []).append(int(p == t))

    def mean(xs):
        return sum(xs) / len(xs) if xs else NAN

    acc = mean([int(p == t) for p, t in zip(preds, targets, strict=True)])
    sub = []
    for g in range(num_subgroups):
        hits = [h for (_, gg), hs in cells.items() if gg == g for h in hs]
        sub.append(mean(hits))
    present = [a for a in sub if not math.isnan(a)]
    if len(present) >= 2:
        md, meo, di = pair_disparities(present)
    else:
        meo, di, md = 1.0, 1.0, 0.0
    per_class = []
    for c in range(num_classes):
        per_class.append(sorted(mean(cells[(c, g)]) for g in range(num_subgroups) if (c, g) in cells))
    ranked = [mean([accs[k] for accs in per_class if len(accs) > k]) for k in range(num_subgroups)]
    worst = min((mean(h) for h in cells.values()), default=NAN)
    return {
        "acc": acc,
        "subgroup_acc": sub,
        "meo": meo,
        "di": di,
        "md": md,
        "ranked_subgroup_acc": ranked,
        "worst_group_acc": worst,
        **within_class_from_accuracies([accs for accs in per_class if len(accs) >= 2]),
    }


def pair_disparities(accs: list[float]) -> tuple[float, float, float]:
    """``(md, meo, di)`` over the unordered pairs of ``accs`` (at least two values), per the contract."""
    pairs = list(combinations(accs, 2))
    gaps = [abs(a - b) for a, b in pairs]
    ratios = [1.0 if max(a, b) == 0 else min(a, b) / max(a, b) for a, b in pairs]
    return max(gaps), 1 - sum(gaps) / len(gaps), 1 - sum(abs(r - 1) for r in ratios) / len(ratios)


def within_class_from_accuracies(per_class: list[list[float]]) -> dict[str, float]:
    """The within-class keys from the non-empty cell accuracies of each eligible class."""
    if not per_class:
        return dict.fromkeys(WITHIN_CLASS_KEYS, NAN)
    mds, meos, dis = zip(*(pair_disparities(accs) for accs in per_class), strict=True)
    return {
        "md_within_class": sum(mds) / len(mds),
        "meo_within_class": sum(meos) / len(meos),
        "di_within_class": sum(dis) / len(dis),
        "worst_class_md": max(mds),
        "worst_class_meo": min(meos),
        "worst_class_di": min(dis),
    }


def make_data(seed: int, n: int, num_classes: int, num_subgroups: int):
    """Random labels with a different per-subgroup probability of a correct prediction."""
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, num_classes, (n,), generator=gen)
    subgroups = torch.randint(0, num_subgroups, (n,), generator=gen)
    p_correct = torch.linspace(0.9, 0.3, num_subgroups)[subgroups]
    keep = torch.rand(n, generator=gen) < p_correct
    noise = torch.randint(0, num_classes, (n,), generator=gen)
    preds = torch.where(keep, targets, noise)
    return preds, targets, subgroups


# ------------------------------------------------------------------------- 1. fairlearn agreement


@pytest.mark.parametrize(
    ("seed", "num_classes", "num_subgroups", "n"),
    [(0, 10, 3, 600), (1, 10, 3, 97), (2, 20, 5, 1500), (3, 20, 5, 250), (4, 2, 2, 50)],
)
def test_matches_fairlearn_metricframe(seed, num_classes, num_subgroups, n):
    # Imported here, not at module scope, because the DDP test's spawned children re-import this module
    # and fairlearn/sklearn/pandas would add seconds to their start-up.
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import accuracy_score

    preds, targets, subgroups = make_data(seed, n, num_classes, num_subgroups)
    summary = fairness_summary(preds, targets, subgroups, num_classes, num_subgroups)
    frame = MetricFrame(
        metrics=accuracy_score,
        y_true=targets.numpy(),
        y_pred=preds.numpy(),
        sensitive_features=subgroups.numpy(),
    )
    by_group = frame.by_group
    assert len(by_group) == num_subgroups  # every subgroup is populated in this data
    expected_sub = [float(by_group.loc[g]) for g in range(num_subgroups)]
    assert summary["subgroup_acc"] == pytest.approx(expected_sub, abs=1e-12)
    assert summary["md"] == pytest.approx(float(frame.difference()), abs=1e-12)
    assert summary["acc"] == pytest.approx(float(frame.overall), abs=1e-12)
    # Uneven accuracies: the data really does exercise a non-trivial disparity.
    assert summary["md"] > 0.05
    assert_summary_equal(summary, reference_summary(preds, targets, subgroups, num_classes, num_subgroups))


@pytest.mark.parametrize(
    ("seed", "num_classes", "num_subgroups", "n"),
    [(0, 10, 3, 600), (1, 10, 3, 40), (2, 20, 5, 1500), (3, 20, 5, 120), (4, 2, 2, 50), (5, 6, 4, 15)],
)
def test_within_class_matches_fairlearn_per_class(seed, num_classes, num_subgroups, n):
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import accuracy_score

    preds, targets, subgroups = make_data(seed, n, num_classes, num_subgroups)
    # Per-cell accuracies instead of per-subgroup ones, so each class has its own disparity pattern.
    gen = torch.Generator().manual_seed(1000 + seed)
    p_cell = torch.rand(num_classes, num_subgroups, generator=gen)
    keep = torch.rand(n, generator=gen) < p_cell[targets, subgroups]
    preds = torch.where(keep, targets, (targets + 1) % num_classes)
    summary = fairness_summary(preds, targets, subgroups, num_classes, num_subgroups)

    # fairlearn: accuracy by subgroup within each class (the control feature); empty cells are NaN.
    frame = MetricFrame(
        metrics=accuracy_score,
        y_true=targets.numpy(),
        y_pred=preds.numpy(),
        sensitive_features=subgroups.numpy(),
        control_features=targets.numpy(),
    )
    by_group, difference = frame.by_group, frame.difference()
    per_class, fairlearn_md = [], []
    for c in sorted(set(targets.tolist())):
        accs = [float(a) for a in by_group.xs(c, level=0).dropna()]
        if len(accs) >= 2:
            per_class.append(accs)
            fairlearn_md.append(float(difference.loc[c]))  # max - min = the largest pairwise gap
    expected = within_class_from_accuracies(per_class)
    assert expected["md_within_class"] == pytest.approx(sum(fairlearn_md) / len(fairlearn_md), abs=1e-12)
    assert expected["worst_class_md"] == pytest.approx(max(fairlearn_md), abs=1e-12)
    for key in WITHIN_CLASS_KEYS:
        assert summary[key] == pytest.approx(expected[key], abs=1e-12), key
    assert summary["md_within_class"] > 0.05  # a real disparity is being measured

    metric = GroupFairness(num_classes, num_subgroups)
    metric.update(preds, targets, subgroups)
    assert_summary_equal(metric.compute(), summary)
    assert_summary_equal(summary, reference_summary(preds, targets, subgroups, num_classes, num_subgroups))


def test_within_class_exceeds_pooled_on_unrelated_cells():
    # CIFAR-20-like: 20 classes x 5 subgroups, each cell with its own random accuracy. Pooling position g
    # over classes averages the disparities away; within each class they stay.
    gen = torch.Generator().manual_seed(0)
    total = torch.full((20, 5), 1000)
    correct = (torch.rand(20, 5, generator=gen) * 1000).long()
    summary = summary_from_counts(correct, total)
    assert summary["md"] < 0.3
    assert summary["md_within_class"] > 0.5
    assert summary["worst_class_md"] >= summary["md_within_class"] > summary["md"]
    assert summary["worst_class_meo"] <= summary["meo_within_class"] < summary["meo"]
    assert summary["worst_class_di"] <= summary["di_within_class"] < summary["di"]


# ------------------------------------------------------------------- 2. hand-computed examples


def test_hand_example_with_empty_subgroup():
    # C=2, G=4. Subgroup accuracies 1.0, 0.5, 0.0 and subgroup 3 empty.
    #   class 0: g0 2/2, g1 1/2, g2 0/1       class 1: g0 1/1, g1 1/2, g2 empty
    targets = [0, 0, 0, 0, 0, 1, 1, 1]
    subgroups = [0, 0, 1, 1, 2, 0, 1, 1]
    preds = [0, 0, 0, 1, 1, 1, 1, 0]
    summary = fairness_summary(preds, targets, subgroups, num_classes=2, num_subgroups=4)

    assert summary["acc"] == pytest.approx(5 / 8)
    assert summary["subgroup_acc"][:3] == pytest.approx([1.0, 0.5, 0.0])
    assert math.isnan(summary["subgroup_acc"][3])
    # pairs (1.0, 0.5), (1.0, 0.0), (0.5, 0.0); the empty subgroup is in none of them
    assert summary["meo"] == pytest.approx(1 - (0.5 + 1.0 + 0.5) / 3)
    # ratios min/max: 0.5, 0.0, 0.0 -> |r - 1| = 0.5, 1, 1
    assert summary["di"] == pytest.approx(1 - (0.5 + 1.0 + 1.0) / 3)
    assert summary["md"] == pytest.approx(1.0)
    # class 0 sorted [0.0, 0.5, 1.0], class 1 sorted [0.5, 1.0]
    ranked = summary["ranked_subgroup_acc"]
    assert ranked[:3] == pytest.approx([(0.0 + 0.5) / 2, (0.5 + 1.0) / 2, 1.0])
    assert math.isnan(ranked[3])
    assert summary["worst_group_acc"] == 0.0
    # Within class 0: cells 1.0, 0.5, 0.0 -> gaps 0.5, 1.0, 0.5; ratios 0.5, 0, 0
    #   MD 1, MEO 1 - 2/3 = 1/3, DI 1 - 2.5/3 = 1/6.
    # Within class 1: cells 1.0, 0.5 (g2 empty) -> MD 0.5, MEO 0.5, DI 0.5.
    assert summary["md_within_class"] == pytest.approx((1.0 + 0.5) / 2)
    assert summary["meo_within_class"] == pytest.approx((1 / 3 + 0.5) / 2)
    assert summary["di_within_class"] == pytest.approx((1 / 6 + 0.5) / 2)
    assert summary["worst_class_md"] == pytest.approx(1.0)
    assert summary["worst_class_meo"] == pytest.approx(1 / 3)
    assert summary["worst_class_di"] == pytest.approx(1 / 6)
    assert_summary_equal(summary, reference_summary(preds, targets, subgroups, 2, 4))


def test_hand_example_pooled_hides_within_class_disparity():
    # Class 0: subgroup 0 always right, subgroup 1 always wrong; class 1 the other way round. Pooled, both
    # subgroups are at 0.5 (no disparity); within each class the gap is total. Class 2 has one cell only
    # and is left out of the within-class averages.
    targets = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    subgroups = [0, 0, 1, 1, 0, 0, 1, 1, 0, 0]
    preds = [0, 0, 2, 2, 0, 0, 1, 1, 2, 2]
    summary = fairness_summary(preds, targets, subgroups, num_classes=3, num_subgroups=2)
    assert summary["subgroup_acc"] == pytest.approx([4 / 6, 0.5])
    assert summary["md"] == pytest.approx(1 / 6)
    for key in ("md_within_class", "worst_class_md"):
        assert summary[key] == pytest.approx(1.0)
    for key in ("meo_within_class", "worst_class_meo", "di_within_class", "worst_class_di"):
        assert summary[key] == pytest.approx(0.0)


def test_within_class_both_zero_pair_and_single_cell_classes():
    # Class 0: cells 0.0, 0.0 -> max = 0 counts as ratio 1: MD 0, MEO 1, DI 1.
    # Class 1: cells 1.0, 0.25 -> MD 0.75, MEO 0.25, DI 0.25. Class 2: one cell, not eligible.
    targets = [0, 0] + [1] * 5 + [2]
    subgroups = [0, 1] + [0, 1, 1, 1, 1] + [1]
    preds = [1, 1] + [1, 1, 0, 0, 0] + [2]
    summary = fairness_summary(preds, targets, subgroups, num_classes=3, num_subgroups=2)
    assert summary["md_within_class"] == pytest.approx(0.75 / 2)
    assert summary["meo_within_class"] == pytest.approx((1.0 + 0.25) / 2)
    assert summary["di_within_class"] == pytest.approx((1.0 + 0.25) / 2)
    assert summary["worst_class_md"] == pytest.approx(0.75)
    assert summary["worst_class_meo"] == pytest.approx(0.25)
    assert summary["worst_class_di"] == pytest.approx(0.25)


def test_di_both_zero_pair_counts_as_ratio_one():
    # Subgroup accuracies 0.0, 0.0, 0.5: the (0, 0) pair has max = 0 -> ratio 1 -> no disparity.
    targets = [0, 0, 0, 0]
    subgroups = [0, 1, 2, 2]
    preds = [1, 1, 0, 1]
    summary = fairness_summary(preds, targets, subgroups, num_classes=2, num_subgroups=3)
    assert summary["subgroup_acc"] == pytest.approx([0.0, 0.0, 0.5])
    assert summary["di"] == pytest.approx(1 - (0.0 + 1.0 + 1.0) / 3)
    assert summary["meo"] == pytest.approx(1 - (0.0 + 0.5 + 0.5) / 3)
    assert summary["md"] == pytest.approx(0.5)
    assert summary["worst_group_acc"] == 0.0
    # Only class 0 has cells: sorted [0.0, 0.0, 0.5]
    assert summary["ranked_subgroup_acc"] == pytest.approx([0.0, 0.0, 0.5])


def test_di_fractional_ratio():
    # Accuracies 0.8 and 0.4 -> ratio 0.5, so di = 0.5 while meo = 0.6.
    targets = [0] * 10
    subgroups = [0] * 5 + [1] * 5
    preds = [0, 0, 0, 0, 1] + [0, 0, 1, 1, 1]
    summary = fairness_summary(preds, targets, subgroups, num_classes=1, num_subgroups=2)
    assert summary["subgroup_acc"] == pytest.approx([0.8, 0.4])
    assert summary["di"] == pytest.approx(0.5)
    assert summary["meo"] == pytest.approx(0.6)
    assert summary["md"] == pytest.approx(0.4)


def test_fewer_than_two_subgroups_means_no_disparity():
    summary = fairness_summary([0, 1, 1], [0, 1, 0], [2, 2, 2], num_classes=2, num_subgroups=3)
    assert summary["meo"] == 1.0 and summary["di"] == 1.0 and summary["md"] == 0.0
    assert math.isnan(summary["subgroup_acc"][0]) and math.isnan(summary["subgroup_acc"][1])
    assert summary["subgroup_acc"][2] == pytest.approx(2 / 3)
    # No class has two non-empty cells either: the within-class averages are unknown, not "fair".
    assert all(math.isnan(summary[key]) for key in WITHIN_CLASS_KEYS)


def test_within_class_nan_when_each_class_has_one_subgroup():
    # Pooled there are two subgroups (a pair exists), but class 0 only has subgroup 0 and class 1 only 1.
    summary = fairness_summary([0, 1, 0], [0, 1, 1], [0, 1, 1], num_classes=2, num_subgroups=2)
    assert summary["md"] == pytest.approx(0.5)
    assert all(math.isnan(summary[key]) for key in WITHIN_CLASS_KEYS)


def test_no_samples_gives_nan_accuracies():
    empty = torch.zeros(0, dtype=torch.long)
    summary = fairness_summary(empty, empty, empty, num_classes=3, num_subgroups=2)
    assert math.isnan(summary["acc"]) and math.isnan(summary["worst_group_acc"])
    assert all(math.isnan(x) for x in summary["subgroup_acc"] + summary["ranked_subgroup_acc"])
    assert (summary["meo"], summary["di"], summary["md"]) == (1.0, 1.0, 0.0)
    assert all(math.isnan(summary[key]) for key in WITHIN_CLASS_KEYS)


@pytest.mark.parametrize("seed", range(6))
def test_random_against_plain_python_reference(seed):
    gen = torch.Generator().manual_seed(100 + seed)
    num_classes, num_subgroups = 4, 5
    n = int(torch.randint(1, 40, (1,), generator=gen))  # small n -> many empty cells / subgroups
    preds, targets, subgroups = make_data(seed, n, num_classes, num_subgroups)
    subgroups = subgroups.clamp(max=3)  # subgroup 4 is always empty
    summary = fairness_summary(preds, targets, subgroups, num_classes, num_subgroups)
    assert math.isnan(summary["subgroup_acc"][4])
    assert_summary_equal(summary, reference_summary(preds, targets, subgroups, num_classes, num_subgroups))


def test_summary_keys_and_types():
    preds, targets, subgroups = make_data(7, 100, 5, 3)
    summary = fairness_summary(preds, targets, subgroups, 5, 3)
    assert tuple(summary) == SUMMARY_KEYS
    assert SUMMARY_KEYS[-len(WITHIN_CLASS_KEYS) :] == WITHIN_CLASS_KEYS
    assert len(summary["subgroup_acc"]) == 3 and len(summary["ranked_subgroup_acc"]) == 3


def test_accepts_numpy_lists_and_logits():
    preds, targets, subgroups = make_data(8, 200, 6, 3)
    expected = fairness_summary(preds, targets, subgroups, 6, 3)
    assert_summary_equal(fairness_summary(preds.numpy(), targets.numpy(), subgroups.numpy(), 6, 3), expected)
    assert_summary_equal(
        fairness_summary(preds.tolist(), targets.tolist(), subgroups.tolist(), 6, 3), expected
    )
    logits = torch.nn.functional.one_hot(preds, 6).float() * 3.0 + 0.1 * torch.rand(200, 6)
    assert_summary_equal(fairness_summary(logits, targets, subgroups, 6, 3), expected)
    assert_summary_equal(fairness_summary(logits.softmax(-1).numpy(), targets, subgroups, 6, 3), expected)


def test_count_matrices_layout():
    correct, total = count_matrices([0, 1, 2, 2], [0, 1, 2, 1], [1, 0, 1, 1], 3, 2)
    assert total.tolist() == [[0, 1], [1, 1], [0, 1]]
    assert correct.tolist() == [[0, 1], [1, 0], [0, 1]]
    assert_summary_equal(
        summary_from_counts(correct, total), fairness_summary([0, 1, 2, 2], [0, 1, 2, 1], [1, 0, 1, 1], 3, 2)
    )


# ------------------------------------------------------------------------------ 3. invariances


def test_batch_splitting_invariance():
    preds, targets, subgroups = make_data(11, 777, 10, 4)
    single = GroupFairness(10, 4)
    single.update(preds, targets, subgroups)
    expected = single.compute()

    split = GroupFairness(10, 4)
    bounds = [0, 1, 1, 50, 333, 500, 777]  # includes an empty batch and a single-sample batch
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        split.update(preds[lo:hi], targets[lo:hi], subgroups[lo:hi])
    assert_summary_equal(split.compute(), expected)
    assert all(not math.isnan(expected[key]) for key in WITHIN_CLASS_KEYS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_within_class_batch_splitting_invariance(seed):
    # Few samples per class: some classes have a single non-empty cell in some batches but two overall,
    # so per-batch within-class values cannot simply be averaged; only the summed counts give the answer.
    preds, targets, subgroups = make_data(50 + seed, 60, 8, 3)
    expected = fairness_summary(preds, targets, subgroups, 8, 3)
    split = GroupFairness(8, 3)
    cuts = torch.randperm(59, generator=torch.Generator().manual_seed(seed))[:5].add(1).sort().values
    bounds = [0, *cuts.tolist(), 60]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        split.update(preds[lo:hi], targets[lo:hi], subgroups[lo:hi])
    assert_summary_equal(split.compute(), expected)
    assert all(not math.isnan(expected[key]) for key in WITHIN_CLASS_KEYS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subgroup_relabelling_permutes_subgroup_acc(seed):
    num_classes, num_subgroups = 7, 5
    preds, targets, subgroups = make_data(20 + seed, 400, num_classes, num_subgroups)
    subgroups[subgroups == 1] = 3  # leave subgroup 1 empty so NaNs move with the permutation too
    perm = torch.randperm(num_subgroups, generator=torch.Generator().manual_seed(seed))
    base = fairness_summary(preds, targets, subgroups, num_classes, num_subgroups)
    relabelled = fairness_summary(preds, targets, perm[subgroups], num_classes, num_subgroups)

    moved = [NAN] * num_subgroups
    for g in range(num_subgroups):
        moved[int(perm[g])] = base["subgroup_acc"][g]
    assert_summary_equal({"subgroup_acc": relabelled["subgroup_acc"]}, {"subgroup_acc": moved}, tol=1e-12)
    for key in ("acc", "meo", "di", "md", "worst_group_acc", "ranked_subgroup_acc", *WITHIN_CLASS_KEYS):
        assert_summary_equal({key: relabelled[key]}, {key: base[key]}, tol=1e-12)


# --------------------------------------------------------------------------- 4. metric == function


@pytest.mark.parametrize(("num_classes", "num_subgroups"), [(10, 3), (20, 5), (3, 1)])
def test_metric_compute_equals_function(num_classes, num_subgroups):
    preds, targets, subgroups = make_data(30, 500, num_classes, num_subgroups)
    metric = GroupFairness(num_classes, num_subgroups)
    assert metric.update(preds, targets, subgroups) is None
    assert_summary_equal(
        metric.compute(), fairness_summary(preds, targets, subgroups, num_classes, num_subgroups)
    )


def test_metric_states_and_flags():
    metric = GroupFairness(num_classes=4, num_subgroups=3)
    assert set(metric._defaults) == {"correct", "total"}
    assert metric.correct.shape == (4, 3) and metric.total.shape == (4, 3)
    assert metric._reductions["correct"] is not None and metric._reductions["total"] is not None
    assert metric.full_state_update is False
    assert metric.higher_is_better is None
    assert metric.is_differentiable is False
    preds, targets, subgroups = make_data(31, 60, 4, 3)
    metric.update(torch.nn.functional.one_hot(preds, 4).float(), targets, subgroups)
    assert int(metric.total.sum()) == 60
    assert int(metric.correct.sum()) == int((preds == targets).sum())
    metric.reset()
    assert int(metric.total.sum()) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_metric_on_cuda_matches_cpu():
    preds, targets, subgroups = make_data(32, 1000, 10, 3)
    metric = GroupFairness(10, 3).to("cuda")
    metric.update(preds.cuda(), targets.cuda(), subgroups.cuda())
    assert metric.total.device.type == "cuda"
    assert_summary_equal(metric.compute(), fairness_summary(preds, targets, subgroups, 10, 3))


# ----------------------------------------------------------------------------------------- 5. DDP

_DDP_C, _DDP_G, _DDP_N, _DDP_SPLIT = 10, 4, 301, 113  # uneven: 113 vs 188 samples


def _ddp_data():
    preds, targets, subgroups = make_data(40, _DDP_N, _DDP_C, _DDP_G)
    # Subgroup 3 only appears on rank 1, so a missing sync would show up as NaN on rank 0.
    subgroups[:_DDP_SPLIT] = subgroups[:_DDP_SPLIT].clamp(max=2)
    return preds, targets, subgroups


def _ddp_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        preds, targets, subgroups = _ddp_data()
        part = slice(0, _DDP_SPLIT) if rank == 0 else slice(_DDP_SPLIT, None)
        metric = GroupFairness(_DDP_C, _DDP_G)
        metric.update(preds[part], targets[part], subgroups[part])
        result = metric.compute()
        with open(Path(out_dir) / f"rank{rank}.pkl", "wb") as fh:
            pickle.dump(result, fh)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(60)
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_ddp_two_processes_gloo(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    preds, targets, subgroups = _ddp_data()
    expected = fairness_summary(preds, targets, subgroups, _DDP_C, _DDP_G)
    assert not math.isnan(expected["subgroup_acc"][3])
    for rank in range(2):
        with open(tmp_path / f"rank{rank}.pkl", "rb") as fh:
            assert_summary_equal(pickle.load(fh), expected)


# ----------------------------------------------------------------------------------- 6. bad input


def test_subgroup_out_of_range_raises():
    with pytest.raises(ValueError, match=r"subgroups must lie in \[0, 3\), got values in \[0, 3\]"):
        fairness_summary([0, 1], [0, 1], [0, 3], num_classes=2, num_subgroups=3)
    metric = GroupFairness(2, 3)
    with pytest.raises(ValueError, match=r"subgroups must lie in \[0, 3\), got values in \[-1, 1\]"):
        metric.update(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([-1, 1]))
    assert int(metric.total.sum()) == 0  # a rejected batch leaves the state untouched


def test_target_out_of_range_raises():
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 2\), got values in \[0, 5\]"):
        GroupFairness(2, 3).update(torch.tensor([0, 1]), torch.tensor([0, 5]), torch.tensor([0, 1]))


@pytest.mark.parametrize(
    ("preds", "targets", "subgroups", "match"),
    [
        ([0, 1, 1], [0, 1], [0, 1], "same length"),
        ([0.0, 1.0], [0, 1], [0, 1], "integer class labels"),
        ([0, 1], [0.0, 1.0], [0, 1], "targets must be integer"),
        (np.zeros((2, 3)), [0, 1], [0, 1], r"shape \(N, num_classes=2\)"),
        ([0, 1], [[0, 1]], [0, 1], "targets must be 1-D"),
    ],
)
def test_malformed_inputs_raise(preds, targets, subgroups, match):
    with pytest.raises(ValueError, match=match):
        fairness_summary(preds, targets, subgroups, num_classes=2, num_subgroups=2)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match=">= 1"):
        GroupFairness(num_classes=0, num_subgroups=2)
    with pytest.raises(ValueError, match=r"shape \(C, G\)"):
        summary_from_counts(torch.zeros(2, 3), torch.zeros(3, 2))

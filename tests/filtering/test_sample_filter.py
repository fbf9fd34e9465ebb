"""SampleFilter: both selection rules and the rank-mean combination on hand-made scores."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from selfloop.filtering.sample_filter import FilterResult, SampleFilter
from selfloop.filtering.scorers import Scorer, ScoringContext


class FixedScorer(Scorer):
    """A real Scorer returning given values (the filter's plug-in interface, no model)."""

    def __init__(self, name: str, values: list[float]) -> None:
        self.name = name
        self.values = torch.tensor(values)

    def score(self, images: Tensor, labels: Tensor, context: ScoringContext) -> Tensor:
        return self.values.clone()


def run(sample_filter: SampleFilter, labels: Tensor, kept_per_class: int, num_classes: int) -> FilterResult:
    images = torch.zeros(len(labels), 1, 4, 4, dtype=torch.uint8)
    context = ScoringContext([str(c) for c in range(num_classes)])
    return sample_filter(images, labels, context, kept_per_class)


def test_quantile_keeps_the_best_k_per_class_and_records_the_weakest_survivor():
    # class 0 ids 0..4, class 1 ids 5..9; k = 4 of ceil(4 / 0.8) = 5 per class.
    scores = [0.9, 0.1, 0.5, 0.7, 0.3, 0.2, 0.8, 0.6, 0.4, 0.05]
    labels = torch.tensor([0] * 5 + [1] * 5)
    f = SampleFilter(0.2, [FixedScorer("s", scores)])
    assert f.candidates_per_class(4) == 5
    result = run(f, labels, 4, 3)
    assert result.keep.nonzero().flatten().tolist() == [0, 2, 3, 4, 5, 6, 7, 8]
    assert result.keep[labels == 0].sum() == result.keep[labels == 1].sum() == 4  # balanced
    assert result.mode == "quantile"
    assert result.threshold.shape == (3,)
    assert result.threshold[0].item() == pytest.approx(0.3)
    assert result.threshold[1].item() == pytest.approx(0.2)
    assert math.isnan(result.threshold[2].item())  # class without candidates


def test_quantile_overgeneration_rounds_exact_quotients_down():
    f = SampleFilter(0.1)
    assert f.candidates_per_class(9) == 10  # 9 / 0.9 is 10.000000000000002 in floating point
    assert SampleFilter(0.3).candidates_per_class(10) == 15
    assert SampleFilter(0.0).candidates_per_class(7) == 7


def test_score_range_keeps_scores_in_the_top_of_each_class_range():
    # class 0: scores 0..9 -> range [0, 9], r = 0.1 -> threshold 0.9: ids 1..9 survive (the top 9 bins).
    # class 1: scores 10, 10.5, 11, 20 -> range [10, 20], threshold 11 (a score on the threshold survives);
    # with r = 0.3 the threshold is 13 and only id 13 survives.
    class0 = [float(i) for i in range(10)]
    class1 = [10.0, 10.5, 11.0, 20.0]
    labels = torch.tensor([0] * 10 + [1] * 4)
    f = SampleFilter(0.1, [FixedScorer("s", class0 + class1)], mode="score_range")
    assert f.candidates_per_class(10) == 10  # no over-generation
    result = run(f, labels, 10, 2)
    assert result.keep.nonzero().flatten().tolist() == list(range(1, 10)) + [12, 13]
    assert result.threshold[0].item() == pytest.approx(0.9)
    assert result.threshold[1].item() == pytest.approx(10.0 + 0.1 * 10.0)

    f30 = SampleFilter(0.3, [FixedScorer("s", class0 + class1)], mode="score_range")
    result = run(f30, labels, 10, 2)
    assert result.keep.nonzero().flatten().tolist() == list(range(3, 10)) + [13]  # 2.7 -> 3..9; 13 -> 20 only
    assert result.threshold.tolist() == pytest.approx([2.7, 13.0])
    assert result.mode == "score_range"


def test_score_range_keeps_ties_and_constant_classes_and_caps_at_k():
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    f = SampleFilter(0.5, [FixedScorer("s", [1.0, 1.0, 1.0, 0.0, 1.0, 1.0])], mode="score_range")
    assert run(f, labels, 3, 2).keep.tolist() == [True] * 3 + [False, True, True]
    # With more candidates than k, the best k of those above the threshold survive.
    assert run(f, labels, 1, 2).keep.tolist() == [True, False, False, False, True, False]


def test_rank_mean_combination_on_hand_values():
    # One class, three candidates. Scorer a ranks them 0, 1, 2 -> 0, .5, 1; scorer b (a tie) ranks
    # 30, 10, 10 -> 1, .25, .25 (tied mean rank 1.5 of 1..3 -> (1.5-1)/2). Means: .5, .375, .625.
    labels = torch.tensor([0, 0, 0])
    f = SampleFilter(0.0, [FixedScorer("a", [0.1, 0.2, 0.3]), FixedScorer("b", [30.0, 10.0, 10.0])])
    result = run(f, labels, 3, 1)
    assert result.scores.tolist() == pytest.approx([0.5, 0.375, 0.625])
    assert set(result.per_scorer) == {"a", "b"}
    assert result.per_scorer["b"].tolist() == [30.0, 10.0, 10.0]


def test_rank_mean_ranks_within_each_class():
    # Class 1's raw scores are all above class 0's; within-class ranks ignore that offset.
    labels = torch.tensor([0, 0, 1, 1])
    f = SampleFilter(
        0.0, [FixedScorer("a", [1.0, 2.0, 11.0, 12.0]), FixedScorer("b", [5.0, 4.0, 50.0, 60.0])]
    )
    assert run(f, labels, 2, 2).scores.tolist() == pytest.approx([0.5, 0.5, 0.0, 1.0])


def test_range_mean_combination_on_hand_values():
    # One class, four candidates. Scorer a (range [0.2, 0.6]) places them at 0, .25, .5, 1; scorer b
    # (range [10, 30]) at 1, 0, .5, .25 -> means .5, .125, .5, .625. Class 1 is constant under a (1
    # each) and placed 0, 1 by b -> .5, 1.
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    a = FixedScorer("a", [0.2, 0.3, 0.4, 0.6, 5.0, 5.0])
    b = FixedScorer("b", [30.0, 10.0, 20.0, 15.0, 1.0, 2.0])
    f = SampleFilter(0.0, [a, b], combine="range_mean")
    assert run(f, labels, 4, 2).scores.tolist() == pytest.approx([0.5, 0.125, 0.5, 0.625, 0.5, 1.0])


def test_range_mean_keeps_the_score_range_meaning_where_rank_mean_does_not():
    # Scorer a has one outlier far below the rest; b agrees with a on the order. In a's range the
    # outlier sits at 0 and the other nine between 0.9 and 1, and b spreads the same way, so the range
    # rule with r = 0.3 drops only the outlier, as on either raw score. Rank-mean spreads the ten
    # candidates evenly over [0, 1] and drops the bottom 30% instead: the range rule became a quantile.
    raw = [0.0] + [0.9 + 0.01 * i for i in range(9)]
    labels = torch.zeros(10, dtype=torch.long)
    scorers = [FixedScorer("a", raw), FixedScorer("b", [10 * v for v in raw])]
    by_range = run(SampleFilter(0.3, scorers, mode="score_range", combine="range_mean"), labels, 10, 1)
    by_rank = run(SampleFilter(0.3, scorers, mode="score_range", combine="rank_mean"), labels, 10, 1)
    assert by_range.keep.tolist() == [False] + [True] * 9
    assert by_rank.keep.tolist() == [False] * 3 + [True] * 7


def test_single_scorer_scores_pass_unchanged():
    f = SampleFilter(0.5, [FixedScorer("s", [3.0, -1.0])])
    assert run(f, torch.tensor([0, 0]), 1, 1).scores.tolist() == [3.0, -1.0]


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_bad_drop_fraction_names_the_option(bad):
    with pytest.raises(ValueError, match=r"--filter\.drop_fraction must be in \[0, 1\)"):
        SampleFilter(bad)


def test_bad_mode_and_non_finite_scores_are_reported():
    with pytest.raises(ValueError, match=r"--filter\.mode must be one of quantile, score_range"):
        SampleFilter(0.1, mode="bins")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"--filter\.combine must be one of range_mean, rank_mean"):
        SampleFilter(0.1, combine="max")  # type: ignore[arg-type]
    f = SampleFilter(0.1, [FixedScorer("s", [1.0, float("nan")])])
    with pytest.raises(ValueError, match="scorer 's' returned 1 non-finite"):
        run(f, torch.tensor([0, 0]), 1, 1)

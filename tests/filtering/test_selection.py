"""Pool-level selection rules: subgroup-balanced (reparation) and diversity (k-center) on hand-made pools."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor

from selfloop.data.colour_oracle import colour_oracle
from selfloop.filtering.sample_filter import FilterResult, SampleFilter
from selfloop.filtering.scorers import Scorer, ScoringContext
from selfloop.filtering.selection import cell_counts, cell_targets, k_center, subgroup_mix
from selfloop.metrics.unbalance import unbalanced_generation


class FixedScorer(Scorer):
    """A real Scorer returning given values (the filter's plug-in interface, no model)."""

    def __init__(self, values: list[float]) -> None:
        self.name = "s"
        self.values = torch.tensor(values)

    def score(self, images: Tensor, labels: Tensor, context: ScoringContext) -> Tensor:
        return self.values.clone()


def run(
    sample_filter: SampleFilter, labels: list[int], kept_per_class: int, num_classes: int, **pool
) -> FilterResult:
    labels_t = torch.tensor(labels)
    images = torch.zeros(len(labels), 1, 4, 4, dtype=torch.uint8)
    context = ScoringContext([str(c) for c in range(num_classes)])
    return sample_filter(images, labels_t, context, kept_per_class, **pool)


def kept_ids(result: FilterResult) -> list[int]:
    return result.keep.nonzero().flatten().tolist()


# --- subgroup_balanced ---------------------------------------------------------------------------------


def test_uniform_balance_takes_the_best_per_subgroup_and_reports_short_cells():
    # Class 0 (ids 0..5), k = 4 -> targets 2 + 2. Subgroup 0: ids 0, 1 (best two of 0, 1, 2); subgroup 1:
    # ids 3, 5. The ambiguous id 4 scores above id 5 but is never kept under balancing.
    # Class 1 (ids 6..11): five candidates of subgroup 0, one of subgroup 1 -> 2 + 1 kept, one missing,
    # and the missing one is not taken from subgroup 0.
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4] * 2
    subgroups = [0, 0, 0, 1, -1, 1] + [0, 0, 0, 0, 0, 1]
    f = SampleFilter(0.2, [FixedScorer(scores)], selection="subgroup_balanced")
    assert f.candidates_per_class(4) == 5
    result = run(f, [0] * 6 + [1] * 6, 4, 2, subgroups=torch.tensor(subgroups), num_subgroups=2)
    assert kept_ids(result) == [0, 1, 3, 5, 6, 7, 11]
    assert result.selection == "subgroup_balanced"
    assert result.cell_kept.tolist() == [[2, 2], [2, 1]]
    assert result.cell_missing.tolist() == [[0, 0], [0, 1]]
    assert result.ambiguous_kept.tolist() == [0, 0]
    assert result.threshold.tolist() == pytest.approx([0.4, 0.4])  # weakest survivor of each class
    assert result.subgroups.tolist() == subgroups
    # The score rule on the same pool keeps the best four, whatever their subgroup.
    plain = run(SampleFilter(0.2, [FixedScorer(scores)]), [0] * 6 + [1] * 6, 4, 2)
    assert kept_ids(plain) == [0, 1, 2, 3, 6, 7, 8, 9]


def test_real_balance_splits_the_score_range_budget_by_largest_remainder_inside_the_range():
    # One class, candidate i scores i. score_range with r = 0.5: threshold 4.5, pool ids 5..9, budget 5.
    # Real mix (0.5, 0.25, 0.25) -> quotas 2.5, 1.25, 1.25 -> targets 3, 1, 1. In the pool subgroup 0 has
    # ids 7, 5 (one short: ids 0, 1 lie below the threshold and stay out), subgroup 1 ids 9, 6 (9 kept),
    # subgroup 2 id 8.
    subgroups = torch.tensor([0, 0, 1, 2, 1, 0, 1, 0, 2, 1])
    real_mix = torch.tensor([[0.5, 0.25, 0.25]])
    f = SampleFilter(
        0.5,
        [FixedScorer([float(i) for i in range(10)])],
        mode="score_range",
        selection="subgroup_balanced",
        balance_target="real",
    )
    result = run(f, [0] * 10, 10, 1, subgroups=subgroups, real_mix=real_mix)
    assert kept_ids(result) == [5, 7, 8, 9]
    assert result.cell_kept.tolist() == [[2, 1, 1]]
    assert result.cell_missing.tolist() == [[1, 0, 0]]
    assert result.threshold.tolist() == pytest.approx([4.5])  # the range threshold, as under `score`


def test_subgroup_mix_gives_each_class_its_known_subgroup_shares():
    labels = torch.tensor([0, 0, 0, 1, 1])
    subgroups = torch.tensor([0, 0, 1, 2, -1])
    mix = subgroup_mix(labels, subgroups, 3, 3)
    assert mix.flatten().tolist() == pytest.approx([2 / 3, 1 / 3, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    assert cell_counts(labels, subgroups, 3, 3).tolist() == [[2, 1, 0], [0, 0, 1], [0, 0, 0]]


@pytest.mark.parametrize(
    ("budget", "shares", "expected"),
    [(10, [1, 1, 1], [4, 3, 3]), (7, [0.5, 0.3, 0.2], [4, 2, 1]), (5, [0.5, 0.25, 0.25], [3, 1, 1])],
)
def test_cell_targets_on_hand_values(budget, shares, expected):
    assert cell_targets(budget, torch.tensor(shares)).tolist() == expected


def test_cell_targets_are_the_integer_split_closest_to_the_quotas():
    # Independent reference: among all splits of B into G non-negative integers, the one with the least
    # squared distance to the quotas B * p (unique for these random shares).
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        shares = torch.rand(3, generator=generator, dtype=torch.float64)
        budget = int(torch.randint(0, 12, (1,), generator=generator))
        quotas = budget * shares / shares.sum()
        splits = [s for s in itertools.product(range(budget + 1), repeat=3) if sum(s) == budget]
        best = min(splits, key=lambda s: float(((torch.tensor(s, dtype=torch.float64) - quotas) ** 2).sum()))
        assert tuple(cell_targets(budget, shares).tolist()) == best


def test_real_target_without_known_subgroups_in_a_class_is_refused():
    f = SampleFilter(0.0, [FixedScorer([1.0, 2.0])], selection="subgroup_balanced", balance_target="real")
    with pytest.raises(ValueError, match="no sample of known subgroup in class 1"):
        run(f, [0, 1], 1, 2, subgroups=torch.tensor([0, 1]), real_mix=torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


# --- diversity -----------------------------------------------------------------------------------------


def test_diversity_spreads_from_the_best_scored_and_breaks_ties_by_score():
    # 1-d features 0, 1, 2, 10, 11; k = 3 of 5. Start at id 1 (best score, x = 1); farthest is id 4
    # (x = 11); then ids 0, 2, 3 are all at distance 1 from {1, 11}: the best-scored of them, id 2, wins.
    scores = [0.2, 0.9, 0.5, 0.3, 0.1]
    features = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]])
    f = SampleFilter(0.4, [FixedScorer(scores)], selection="diversity")
    result = run(f, [0] * 5, 3, 1, features=features)
    assert kept_ids(result) == [1, 2, 4]
    assert result.selection == "diversity"
    assert result.threshold.tolist() == pytest.approx([0.1])  # weakest survivor
    assert kept_ids(run(SampleFilter(0.4, [FixedScorer(scores)]), [0] * 5, 3, 1)) == [1, 2, 3]


def test_diversity_pool_above_threshold_keeps_the_score_range_floor_and_all_lifts_it():
    # score_range r = 0.5 on scores 0..4: threshold 2, pool ids 2, 3, 4, budget min(3, k = 2) = 2.
    # Above the threshold: start at id 4 (x = 0), farthest in the pool is id 2 (x = 1). With `all`, the
    # far-away id 0 (x = 50, below the threshold) is chosen instead.
    features = torch.tensor([[50.0], [49.0], [1.0], [0.5], [0.0]])
    scorer = FixedScorer([0.0, 1.0, 2.0, 3.0, 4.0])
    above = SampleFilter(0.5, [scorer], mode="score_range", selection="diversity")
    assert kept_ids(run(above, [0] * 5, 2, 1, features=features)) == [2, 4]
    everything = SampleFilter(0.5, [scorer], mode="score_range", selection="diversity", diversity_pool="all")
    result = run(everything, [0] * 5, 2, 1, features=features)
    assert kept_ids(result) == [0, 4]
    assert result.threshold.tolist() == pytest.approx([0.0])  # no range floor used: weakest survivor


def covering_radius(distances: Tensor, centers) -> float:
    """The largest distance from a point to its nearest center."""
    return float(distances[:, list(centers)].min(1).values.max())


def test_k_center_covers_within_twice_the_optimal_radius():
    # Gonzalez's bound against brute force over every k-subset of random 2-d points.
    generator = torch.Generator().manual_seed(1)
    for _ in range(10):
        points = torch.rand(9, 2, generator=generator, dtype=torch.float64)
        distances = torch.cdist(points, points)
        chosen = k_center(points, 3).tolist()
        assert chosen[0] == 0 and len(set(chosen)) == 3
        optimum = min(covering_radius(distances, c) for c in itertools.combinations(range(9), 3))
        assert covering_radius(distances, chosen) <= 2 * optimum + 1e-12


def test_k_center_never_repeats_a_point_among_duplicates():
    assert k_center(torch.zeros(4, 3), 3).tolist() == [0, 1, 2]
    assert k_center(torch.zeros(2, 3), 5).tolist() == [0, 1]


# --- counts, defaults, errors --------------------------------------------------------------------------


def test_score_selection_with_subgroups_keeps_the_same_survivors_and_counts_cells():
    scores = [0.9, 0.1, 0.5, 0.7, 0.3, 0.2, 0.8, 0.6, 0.4, 0.05]
    labels = [0] * 5 + [1] * 5
    subgroups = torch.tensor([0, 1, -1, 1, 2, 2, 2, -1, 0, 1])
    f = SampleFilter(0.2, [FixedScorer(scores)])
    plain = run(f, labels, 4, 3)
    assert plain.subgroups is None and plain.cell_kept is None and plain.cell_metrics() == {}
    counted = run(f, labels, 4, 3, subgroups=subgroups, num_subgroups=3)
    assert counted.keep.tolist() == plain.keep.tolist()
    assert torch.allclose(counted.threshold, plain.threshold, equal_nan=True)
    expected = [[0] * 3 for _ in range(3)]
    ambiguous = [0, 0, 0]
    for i in kept_ids(plain):
        if int(subgroups[i]) < 0:
            ambiguous[labels[i]] += 1
        else:
            expected[labels[i]][int(subgroups[i])] += 1
    assert counted.cell_kept.tolist() == expected
    assert counted.cell_missing.tolist() == [[0] * 3] * 3
    assert counted.ambiguous_kept.tolist() == ambiguous
    metrics = counted.cell_metrics()
    assert metrics["kept_c0_g1"] == expected[0][1] and metrics["missing_c1_g2"] == 0.0
    assert metrics["cell_missing_total"] == 0.0 and metrics["ambiguous_kept"] == float(sum(ambiguous))
    assert len(metrics) == 2 * 3 * 3 + 2


@pytest.mark.parametrize(
    ("option", "value"),
    [("selection", "likelihood"), ("balance_target", "equal"), ("diversity_pool", "eligible")],
)
def test_bad_option_values_name_the_flag(option, value):
    with pytest.raises(ValueError, match=rf"--filter\.{option} must be one of .*got '{value}'"):
        SampleFilter(0.1, **{option: value})


def test_missing_pool_inputs_are_refused_naming_what_is_needed():
    scorer = FixedScorer([1.0, 2.0])
    with pytest.raises(ValueError, match="subgroup_balanced needs the candidates' subgroup ids"):
        run(SampleFilter(0.0, [scorer], selection="subgroup_balanced"), [0, 0], 1, 1)
    with pytest.raises(ValueError, match="balance_target real needs the real training set's"):
        f = SampleFilter(0.0, [scorer], selection="subgroup_balanced", balance_target="real")
        run(f, [0, 0], 1, 1, subgroups=torch.tensor([0, 1]), num_subgroups=2)
    with pytest.raises(ValueError, match="diversity needs the candidates' features"):
        run(SampleFilter(0.0, [scorer], selection="diversity"), [0, 0], 1, 1)
    with pytest.raises(ValueError, match=r"subgroup ids must lie in \[0, 2\) or be -1.*got 2"):
        run(SampleFilter(0.0, [scorer]), [0, 0], 1, 1, subgroups=torch.tensor([0, 2]), num_subgroups=2)
    with pytest.raises(ValueError, match="without num_subgroups"):
        run(SampleFilter(0.0, [scorer]), [0, 0], 1, 1, subgroups=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"features of shape \(3, 2\) for 2 candidates"):
        run(SampleFilter(0.0, [scorer], selection="diversity"), [0, 0], 1, 1, features=torch.zeros(3, 2))


def test_with_keep_recounts_the_cells_after_a_review():
    # k = 4 over 3 subgroups -> targets 2, 1, 1 (the leftover to the lowest id): subgroup 0 has one
    # candidate (one missing), subgroup 1 keeps its best (id 1), subgroup 2 has none (one missing).
    # Then a person drops survivor 0 and adds ids 2 (ambiguous) and 3: the counts follow the mask, the
    # filter's own shortfall stays.
    scores = [0.9, 0.8, 0.7, 0.6]
    subgroups = torch.tensor([0, 1, -1, 1])
    f = SampleFilter(0.0, [FixedScorer(scores)], selection="subgroup_balanced")
    result = run(f, [0] * 4, 4, 1, subgroups=subgroups, num_subgroups=3)
    assert kept_ids(result) == [0, 1]
    assert result.cell_missing.tolist() == [[1, 0, 1]]
    reviewed = result.with_keep(torch.tensor([False, True, True, True]), torch.tensor([0] * 4))
    assert reviewed.cell_kept.tolist() == [[0, 2, 0]]
    assert reviewed.ambiguous_kept.tolist() == [1]
    assert reviewed.cell_missing.tolist() == [[1, 0, 1]]
    assert result.cell_kept.tolist() == [[1, 1, 0]]  # the original is untouched


def test_balancing_by_the_colour_oracle_repairs_a_red_heavy_pool():
    # A generator that over-produces red digits: one class, 8 red, 2 green, 2 blue and 1 yellow (mixed:
    # the oracle abstains) candidates, red and yellow scoring best. The real set is colour-balanced, so
    # u_t (total variation to the real mix) measures the damage: the score rule keeps 5 red and the yellow
    # one (u_t = 2/3 over the readable ones), the balanced rule 2 of each colour (u_t = 0), as read by
    # the colour digits' own subgroup oracle.
    images = torch.zeros(13, 3, 8, 8, dtype=torch.uint8)
    colours = [0] * 8 + [1, 1, 2, 2]
    for i, channel in enumerate(colours):
        images[i, channel, 2:6, 3:5] = 200
    images[12, :2, 2:6, 3:5] = 200  # yellow
    subgroups = colour_oracle(images)
    assert subgroups.tolist() == colours + [-1]
    scores = [1.0 - 0.01 * i for i in range(8)] + [0.5, 0.4, 0.3, 0.2, 0.995]
    real_labels, real_subgroups = torch.zeros(6, dtype=torch.long), torch.tensor([0, 1, 2, 0, 1, 2])
    kept_mix = {}
    for selection in ("score", "subgroup_balanced"):
        f = SampleFilter(0.5, [FixedScorer(scores)], selection=selection)
        result = run(f, [0] * 13, 6, 1, subgroups=subgroups, num_subgroups=3)
        kept_mix[selection] = result.cell_kept.tolist()
        u_t = unbalanced_generation(subgroups[result.keep], torch.zeros(6), real_subgroups, real_labels, 1, 3)
        assert u_t == pytest.approx({"score": 2 / 3, "subgroup_balanced": 0.0}[selection])
        assert result.ambiguous_kept.tolist() == [{"score": 1, "subgroup_balanced": 0}[selection]]
    assert kept_mix == {"score": [[5, 0, 0]], "subgroup_balanced": [[2, 2, 2]]}

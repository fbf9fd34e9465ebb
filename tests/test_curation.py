"""Curation rules in the loop: the filter's pool-level selections get the candidates' subgroups and
features from the loop, record what they kept and missed per (class, subgroup) cell, and the generation's
diversity (precision, recall, KID) is logged next to FID."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from helpers.tiny_loop import SIZE, tiny_loop

from selfloop.data.digits import ColoredDigitsDataModule
from selfloop.filtering.sample_filter import SampleFilter
from selfloop.generators.reference import DensitySeekingGenerator
from selfloop.metrics.diversity import features_of, precision_recall
from selfloop.metrics.fid import penultimate_extractor


def rows(run: Path) -> dict[tuple[int, str, str], float]:
    with open(run / "metrics.csv") as handle:
        return {
            (int(r["generation"]), r["arch"], r["metric"]): float(r["value"]) for r in csv.DictReader(handle)
        }


def biased() -> ColoredDigitsDataModule:
    return ColoredDigitsDataModule(image_size=SIZE, bias="biased", majority=0.6)


def test_subgroup_balancing_to_the_real_mix_undoes_a_density_seeking_tilt(tmp_path: Path) -> None:
    common = {"generator": DensitySeekingGenerator, "generator_args": {"tilt": 3.0}, "generations": 1,
              "samples_per_generation": 90, "fid_extractor": "none"}  # fmt: skip
    plain = tmp_path / "plain"
    tiny_loop(plain, biased(), sample_filter=SampleFilter(drop_fraction=0.75), **common).run()
    balanced = tmp_path / "balanced"
    rule = SampleFilter(drop_fraction=0.75, selection="subgroup_balanced", balance_target="real")
    tiny_loop(balanced, biased(), sample_filter=rule, **common).run()
    plain_rows, balanced_rows = rows(plain), rows(balanced)
    # The tilt makes each class's majority colour 0.82 of the samples (u_t about 0.2); balancing to the real
    # mix (0.6 / 0.2 / 0.2) from four times as many candidates as survive leaves only the rounding of 9
    # survivors per class to those shares.
    assert plain_rows[1, "generator", "u_t"] > 0.15
    assert balanced_rows[1, "generator", "u_t"] < 0.1
    # What the rule did is logged per cell, and the kept cells add up to the kept samples.
    kept = {(c, g): balanced_rows[1, "generator", f"kept_c{c}_g{g}"] for c in range(10) for g in range(3)}
    assert sum(kept.values()) == balanced_rows[1, "generator", "num_kept"]
    missing = sum(balanced_rows[1, "generator", f"missing_c{c}_g{g}"] for c in range(10) for g in range(3))
    assert balanced_rows[1, "generator", "cell_missing_total"] == missing
    # u_t recomputed from the logged cells: total variation between the kept mix and the real mix per class.
    dm = biased()
    real = dm.real.train
    total = 0.0
    for c in range(10):
        cells = torch.tensor([kept[c, g] for g in range(3)], dtype=torch.float64)
        real_mix = torch.bincount(real.subgroups[real.labels == c], minlength=3).double()
        total += 0.5 * (cells / cells.sum() - real_mix / real_mix.sum()).abs().sum().item()
    assert abs(balanced_rows[1, "generator", "u_t"] - total / 10) < 1e-9
    # The default selection logs no cells: configs that do not ask for curation keep their metrics.
    assert not any(m.startswith("kept_c") for _, _, m in plain_rows)


def test_diversity_metrics_are_logged_next_to_fid_and_recomputed_from_the_saved_candidates(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    loop = tiny_loop(run, biased(), generations=1, samples_per_generation=60)
    loop.run()
    logged = rows(run)
    for name in ("precision", "recall", "kid"):
        for which in ("raw", "kept"):
            assert (1, "generator", f"{name}_{which}") in logged
    assert 0.0 <= logged[1, "generator", "recall_kept"] <= 1.0
    # Recompute precision and recall of all candidates against the same real subset in the judge's space.
    candidates = torch.load(loop.runner.run.candidates_file(1), weights_only=True)
    diversity = next(m for m in loop._sample_metrics.metrics if type(m).__name__ == "Diversity")
    extractor = penultimate_extractor(loop._judge)
    expected = precision_recall(diversity.real_features, features_of(extractor, candidates["images"]))
    assert abs(logged[1, "generator", "precision_raw"] - expected["precision"]) < 1e-6
    assert abs(logged[1, "generator", "recall_raw"] - expected["recall"]) < 1e-6

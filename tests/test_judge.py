"""Class fidelity is judged by an independent classifier that never scores the filter."""

from __future__ import annotations

import csv

import pytest
import torch

from selfloop.classifiers.image_classifier import ImageClassifier


def test_gen_label_acc_is_the_independent_judges_accuracy_on_the_candidates(tiny_cli_run):
    run = tiny_cli_run
    judge_state = torch.load(run / "classifiers" / "judge.pt", weights_only=True)
    f0_state = torch.load(run / "classifiers" / "gen_000" / "lenet.pt", weights_only=True)
    # Its own model (another seed), not the generation-0 classifier that scores the filter.
    assert judge_state.keys() == f0_state.keys()
    assert any(not torch.equal(judge_state[k], f0_state[k]) for k in judge_state)

    judge = ImageClassifier(arch="lenet", num_classes=10, in_channels=3, image_size=16)
    judge.load_state_dict(judge_state)
    judge.eval()
    candidates = torch.load(run / "generations" / "gen_001" / "candidates.pt", weights_only=True)
    expected = (judge.predict_labels(candidates["images"]) == candidates["labels"]).float().mean().item()
    with open(run / "metrics.csv", newline="") as handle:
        rows = csv.DictReader(handle)
        logged = {
            r["metric"]: float(r["value"])
            for r in rows
            if r["arch"] == "generator" and r["generation"] == "1"
        }
    assert logged["gen_label_acc"] == pytest.approx(expected, abs=1e-6)

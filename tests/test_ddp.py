"""The whole loop under Lightning DDP with 2 CPU processes (gloo)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from selfloop.data.digits import ColoredDigitsDataModule

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


# A data policy with a share of the real data: (flags, queued generations at the end, real images per
# training set after generation 1's generator as a fraction of the real training set). One run in two
# processes; every policy and share is checked in one process by tests/test_resume.py::
# test_every_data_policy_resumes_exactly (train set sizes phase after phase), which a rank's share follows.
POLICIES = {
    "accumulate-half-real": (
        ("--loop.data_policy", "accumulate", "--loop.real_fraction", "0.5"),
        [1, 2],
        0.5,
    ),
}
# Generated images in each training set after the judge: g1 classifier, g2 generator, g2 classifier.
QUEUED_IMAGES = {"accumulate-half-real": [40, 40, 80]}


@pytest.mark.parametrize("policy", list(POLICIES))
def test_two_process_ddp_run(tiny_run_args, tmp_path, policy):
    flags, queued, share = POLICIES[policy]
    run = tmp_path / "run"
    ddp = ("--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.devices", "2")
    args = tiny_run_args(run, "--loop.generations", "2", *flags, *ddp)
    records = tmp_path / "train_sets"
    faults = ROOT / "tests" / "helpers" / "faults.py"
    result = subprocess.run(
        [sys.executable, str(faults), "--record-train-sets", str(records), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    # One copy of each shard, FIFO eviction done once.
    assert sorted(p.name for p in (run / "queue").glob("*.pt")) == [f"gen_{g:03d}.pt" for g in queued]
    manifest = json.loads((run / "manifest.json").read_text())
    assert [s["generation"] for s in manifest["queue"]] == queued
    assert {s["count"] for s in manifest["queue"]} == {40}

    # One metrics.csv row per (generation, arch, metric), written by rank 0 alone.
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    counts = Counter((r["generation"], r["arch"], r["metric"]) for r in rows)
    assert set(counts.values()) == {1}
    # Evaluation counted every test image exactly once across the two ranks.
    real = ColoredDigitsDataModule(image_size=16).real
    test_size = len(real.test)
    evaluated = [float(r["value"]) for r in rows if r["metric"] == "num_evaluated"]
    assert evaluated == [test_size] * 3

    # Both ranks trained every phase on the same data (rank 0's filter decisions, read from its shards).
    rank0 = (records / "rank0.txt").read_text().splitlines()
    rank1 = (records / "rank1.txt").read_text().splitlines()
    assert len(rank0) == 6 and rank0 == rank1  # 3 classifier fits, the judge's and 2 generator fits
    assert len({line.split()[1] for line in rank0}) >= 3  # the train set changes as the queue fills
    # g0 classifier, the judge and g1 generator: all real data; then the real share plus the queue.
    labels = real.train.labels
    kept_real = sum(round(int((labels == c).sum()) * share) for c in labels.unique())
    queue_sizes = QUEUED_IMAGES[policy]
    full = len(labels)
    assert [int(line.split()[0]) for line in rank0] == [
        full,
        full,
        full,
        *(kept_real + q for q in queue_sizes),
    ]

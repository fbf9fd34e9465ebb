"""The known-answer scenarios at tiny scale through the real CLI, judged by the report's trend statistics.

The reference-generator scenarios run on 3 seeds (the fewest that give a verdict) and the answer
guaranteed by construction holds even at this size; one seed of them, reused, must be called "cannot be
judged". The collapse scenarios' configs are parsed with the other shipped configs (tests/test_configs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selfloop.data.digits import ColoredDigitsDataModule
from selfloop.validation import HEADER, SCENARIOS, main

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
VERDICTS = ("increases", "decreases", "no detectable change")


def _table(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    assert lines[0] == "| " + " | ".join(HEADER) + " |"
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


def test_tiny_known_answer_tables(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(ROOT)
    runs, judged, single = tmp_path / "runs", tmp_path / "judged.md", tmp_path / "single.md"
    common = ["--scale", "tiny", "--runs", str(runs)]
    reference = ["--scenario", "perfect-generator", "density-seeking", "--seeds", "0", "1", "2"]
    status = main([*common, *reference, "--out", str(judged)])
    console = "".join(capfd.readouterr())
    # The loop's progress lines, without Lightning's per-phase banners (silenced by the CLI itself).
    assert "[validate] density-seeking · seed 2" in console and "g3/3 classifier lenet · done" in console
    assert "GPU available:" not in console and "💡 Tip" not in console
    rows = _table(judged)
    wanted = [s for s in SCENARIOS if s.name in ("perfect-generator", "density-seeking")]
    assert [(r[0], r[1]) for r in rows] == [
        (s.name, f"{e.metric} ({e.arch})") for s in wanted for e in s.expectations
    ]
    assert all(r[4] in VERDICTS and "over 3 seeds" in r[3] for r in rows)
    # Guaranteed by construction: the density-seeking generator's tilt compounds through the queue.
    assert ["density-seeking", "u_t (generator)", "increases"] in [r[:3] for r in rows]
    u_t = next(r for r in rows if r[:2] == ["density-seeking", "u_t (generator)"])
    assert u_t[4:] == ["increases", "yes"]
    assert status == (0 if all(r[5] == "yes" for r in rows) else 1)

    # The perfect generator's queued samples are real training images, byte for byte.
    real = ColoredDigitsDataModule(bias="biased", majority=0.6, image_size=32).real.train.images
    real_images = {image.numpy().tobytes() for image in real}
    shards = sorted((runs / "tiny" / "perfect-generator" / "seed_0" / "queue").glob("gen_*.pt"))
    assert len(shards) == 3
    for shard in shards:
        assert all(
            image.numpy().tobytes() in real_images for image in torch.load(shard, weights_only=True)["images"]
        )

    # A second call reuses the finished runs and gives the same table.
    assert main([*common, *reference, "--out", str(judged)]) == status
    assert _table(judged) == rows

    # One seed gives no verdict, and the command fails rather than claim agreement (seed 0's finished run
    # is reused: no new run).
    one_seed = ["--scenario", "perfect-generator", "--seeds", "0"]
    assert main([*common, *one_seed, "--out", str(single)]) == 1
    single_rows = _table(single)
    assert len(single_rows) == 3
    assert all(r[4] == "cannot be judged" and r[5] == "NO" and "over 1 seed" in r[3] for r in single_rows)

"""scripts/bench_quickstart.py end to end on a seconds-long run: per-seed lines, the table, the figures, the bars."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_RUN

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SHORT = (*TINY_RUN, "--loop.generations", "1")


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "scripts/bench_quickstart.py", "--config", "configs/digits.yaml", *args]
    command += ["--runs", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures"), "--", *SHORT]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_two_seeds_give_their_lines_a_table_over_both_and_the_readme_figures(tmp_path):
    result = _bench(tmp_path, "--seeds", "0", "1", "--min-fidelity", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "figures" / "quickstart_table.md").read_text().splitlines()
    assert table[0] == "| seed | wall time (s) | generation-1 `gen_label_acc` (raw) | bars met |"
    seeds = [line.split(" | ") for line in table[2:4]]
    assert [cells[0] for cells in seeds] == ["| 0", "| 1"] and all(c[3] == "yes |" for c in seeds)
    for cells, seed in zip(seeds, (0, 1), strict=True):  # the fidelity printed is the run's own row
        rows = (tmp_path / "runs" / f"seed_{seed}" / "metrics.csv").read_text().splitlines()
        (value,) = [r.split(",")[-1] for r in rows if r.startswith("1,generator,") and ",gen_label_acc," in r]
        assert cells[2] == f"{float(value):.3f}"
    generations = table[table.index("") + 1 :]
    assert generations[0].startswith("| generation | LeNet acc |")
    generation_1 = next(line for line in generations if line.startswith("| 1 |"))
    assert " [" in generation_1  # mean [min-max] over the two seeds
    for name in ("fairness.png", "generator.png", "samples_gen_001.png"):
        assert (tmp_path / "figures" / name).read_bytes().startswith(b"\x89PNG"), name
    assert (tmp_path / "runs" / "report" / "index.html").is_file()
    assert "figures and table:" in result.stdout


def test_a_missed_bar_fails_the_command_and_existing_runs_are_refused(tmp_path):
    missed = _bench(tmp_path, "--seeds", "0", "--min-fidelity", "1.01")
    assert missed.returncode == 1 and "| 0 |" in missed.stdout and "| NO |" in missed.stdout
    again = _bench(tmp_path, "--seeds", "0")
    assert again.returncode == 2 and "seed_0 already exist(s): pass another --runs" in again.stderr

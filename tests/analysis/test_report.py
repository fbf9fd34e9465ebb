"""The report command on run directories written by hand (and one by the CLI): every figure, table and the page."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from selfloop.analysis.eq6_fit import simulate_bias_dynamics
from selfloop.analysis.report import main
from selfloop.analysis.runs import load_runs
from selfloop.analysis.wording import Q_JUDGE
from selfloop.cli.app import SelfLoopCLI
from selfloop.metrics.fairness import WITHIN_CLASS_KEYS

ROOT = Path(__file__).resolve().parents[2]

ARCHS = ("lenet", "resnet50")
C = {"lenet": 1.1, "resnet50": 0.95}
GENERATIONS = 4
FID_RAW = {0: [30.0, 32.0, 34.0], 1: [40.0, 41.0, 45.0]}  # per seed, generations 1 and 2 (others absent)


def write_run(path: Path, data_class: str, seed: int, archs, generations: int, metrics: dict) -> Path:
    """config.yaml, manifest.json (finished) and metrics.csv as the loop writes them."""
    path.mkdir(parents=True)
    config = {
        "model": {"arch": archs[0]},
        "data": {"class_path": data_class, "init_args": {"batch_size": 64}},
        "loop": {"generations": generations, "seed": seed, "archs": list(archs), "run_dir": str(path)},
    }
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    completed = [f"g{n}/classifier/{a}" for n in range(generations + 1) for a in archs]
    (path / "manifest.json").write_text(json.dumps({"seed": seed, "completed": completed, "format": 1}))
    with open(path / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["generation", "arch", "seed", "metric", "value"])
        writer.writerows([g, a, seed, m, repr(float(v))] for (g, a, m), v in metrics.items())
    return path


def digits_metrics(seed: int) -> dict:
    """Fairness metrics of two archs, MD following eq. 6, and generator rows with q_t, u_t and FID."""
    rng = np.random.default_rng(seed)
    q, u = rng.uniform(0.6, 0.95, GENERATIONS), rng.uniform(0.0, 0.3, GENERATIONS)
    metrics: dict = {}
    for g in range(1, GENERATIONS + 1):
        metrics[g, "generator", "gen_label_acc"] = q[g - 1] - 0.1
        metrics[g, "generator", "gen_label_acc_kept"] = q[g - 1]
        metrics[g, "generator", "u_t"] = u[g - 1]
        metrics[g, "generator", "num_kept"] = 40
        if g <= 2:
            metrics[g, "generator", "fid_raw"] = FID_RAW[g - 1][seed]
            metrics[g, "generator", "fid_kept"] = FID_RAW[g - 1][seed] - 5
    for arch in ARCHS:
        md = simulate_bias_dynamics(C[arch], 0.1, q, u, 0.5, 1.0) * (
            1 + 0.01 * rng.standard_normal(GENERATIONS + 1)
        )
        for g in range(GENERATIONS + 1):
            metrics[g, arch, "acc"] = 0.95 - 0.02 * g
            metrics[g, arch, "md"] = md[g]
            metrics[g, arch, "meo"] = 1 - md[g] / 2
            metrics[g, arch, "di"] = 1 - md[g] / 3
            metrics[g, arch, "worst_group_acc"] = 0.8
            for k, name in enumerate(WITHIN_CLASS_KEYS):
                metrics[g, arch, name] = 0.5 + 0.05 * k + 0.01 * g + 1e-5 * rng.standard_normal()
            for k in range(3):
                metrics[g, arch, f"subgroup_acc_{k}"] = 0.9 - 0.05 * k
                metrics[g, arch, f"ranked_subgroup_acc_{k}"] = 0.8 + 0.05 * k - 0.01 * g
    return metrics


def hard_imagenet_metrics(seed: int) -> dict:
    metrics: dict = {}
    for g in range(3):
        metrics[g, "resnet50", "acc"] = 0.8 - 0.01 * g + 0.01 * seed
        for name, drop in (("object_gray", 0.3), ("box_gray", 0.2), ("box_tile", 0.1)):
            metrics[g, "resnet50", f"acc_{name}"] = 0.8 - drop
            metrics[g, "resnet50", f"drop_{name}"] = drop + 0.01 * g
    return metrics


@pytest.fixture
def run_dirs(tmp_path: Path) -> list[Path]:
    dirs = [
        write_run(
            tmp_path / "runs" / f"digits_{s}",
            "selfloop.data.digits.ColoredDigitsDataModule",
            s,
            ARCHS,
            GENERATIONS,
            digits_metrics(s),
        )
        for s in range(3)
    ]
    dirs += [
        write_run(
            tmp_path / "runs" / f"hin_{s}",
            "selfloop.data.hard_imagenet.HardImageNetDataModule",
            s,
            ["resnet50"],
            2,
            hard_imagenet_metrics(s),
        )
        for s in range(2)
    ]
    return dirs


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1024


def test_report_writes_every_figure_table_and_page(run_dirs: list[Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    main([*map(str, run_dirs), "--out", str(out), "--bootstrap", "20"])
    assert "index.html" in capsys.readouterr().out
    runs = load_runs(run_dirs)
    digits = next(r.group for r in runs if r.group.startswith("ColoredDigits-"))
    hin = next(r.group for r in runs if r.group.startswith("HardImageNet-"))

    figures = [
        f"fairness_{digits}.png",
        f"within_class_{digits}.png",
        f"ranked_{digits}.png",
        f"generator_{digits}.png",
        f"fairness_{hin}.png",  # accuracy only: Hard ImageNet logs no fairness metrics
        f"ablations_{hin}.png",
    ]
    for name in figures:
        assert is_png(out / name), name
    for absent in (
        f"ablations_{digits}.png",
        f"generator_{hin}.png",
        f"ranked_{hin}.png",
        f"within_class_{hin}.png",
    ):
        assert not (out / absent).exists(), absent

    # Table 1: FID per generation, mean +- sample std over the three seeds.
    with open(out / "table1_fid.csv") as handle:
        fid = {int(r["generation"]): r for r in csv.DictReader(handle)}
    assert sorted(fid) == [1, 2]
    assert float(fid[1]["fid_raw_mean"]) == pytest.approx(32.0)
    assert float(fid[1]["fid_raw_std"]) == pytest.approx(2.0)  # deviations -2, 0, 2 -> sqrt(8 / 2)
    assert float(fid[2]["fid_kept_mean"]) == pytest.approx(37.0)
    assert float(fid[2]["fid_raw_std"]) == pytest.approx(np.std([40, 41, 45], ddof=1))
    assert "| 32.00 ± 2.00 | 27.00 ± 2.00 | 3 |" in (out / "table1_fid.md").read_text()

    # Eq. 6 for the digits group only (Hard ImageNet has no q_t / u_t rows).
    assert (out / f"eq6_{digits}.md").stat().st_size > 0
    with open(out / f"eq6_{digits}_parameters.csv") as handle:
        params = {r["parameter"]: float(r["estimate"]) for r in csv.DictReader(handle)}
    assert params["c[lenet]"] == pytest.approx(C["lenet"], abs=0.05)
    assert params["c[resnet50]"] == pytest.approx(C["resnet50"], abs=0.05)
    with open(out / f"eq6_{digits}_A_t.csv") as handle:
        assert len(list(csv.DictReader(handle))) == len(ARCHS) * GENERATIONS
    with open(out / f"eq6_{digits}_comparison.csv") as handle:
        (comparison,) = list(csv.DictReader(handle))
    assert comparison["preferred"] == "cannot be judged" and comparison["n_seeds"] == "3"
    assert not (out / f"eq6_{hin}.md").exists()
    with open(out / f"metrics_{digits}.csv") as handle:
        md0 = [
            r
            for r in csv.DictReader(handle)
            if r["metric"] == "md" and r["arch"] == "lenet" and r["generation"] == "0"
        ]
    assert md0[0]["n"] == "3" and md0[0]["seeds"] == "0 1 2"

    page = (out / "index.html").read_text()
    sources = set(re.findall(r'<img src="([^"]+)"', page))
    assert sources == set(figures)
    assert all((out / s).is_file() for s in sources)
    for text in (digits, hin, "Table 1", "Eq. 6 fit", str(run_dirs[0].resolve()), "table1_fid.csv"):
        assert text in page, text
    assert "<th>seed</th>" in page and "data.class_path" in page  # the seeds and configs used

    # The verdicts come first, in the page and in verdicts.md, each with its evidence and the family named.
    tables = verdict_tables(page)
    verdicts = (out / "verdicts.md").read_text()
    assert "form one family, corrected by Holm's method" in verdicts and "Holm-adjusted p" in verdicts
    with open(out / f"trends_{digits}.csv") as handle:
        rows = {(r["arch"], r["metric"]): r for r in csv.DictReader(handle)}
    assert set(next(iter(rows.values()))) >= {
        "arch", "metric", "shift_verdict", "shift_estimate", "shift_low", "shift_high", "shift_p_adjusted",
        "trend_verdict", "trend_slope", "trend_low", "trend_high", "trend_p_adjusted", "n_seeds", "generations",
        "method",
    }  # fmt: skip
    allowed = {"increases", "decreases", "no detectable change", "cannot be judged"}
    for r in rows.values():
        assert r["trend_verdict"] in allowed or r["trend_verdict"].startswith("unchanged within ±"), r
        assert r["n_seeds"] == "3" and r["generations"].startswith("0 1" if r["arch"] != "generator" else "1")
    # The within-class disparities grow by 0.01 a generation after generation 1 and do not jump at it.
    for arch in ARCHS:
        for name in WITHIN_CLASS_KEYS:
            row = rows[arch, name]
            assert row["trend_verdict"] == "increases", (arch, name)
            assert float(row["trend_slope"]) == pytest.approx(0.01, abs=1e-4)
            assert float(row["shift_estimate"]) == pytest.approx(0.01, abs=1e-4)  # one step of the trend
            assert f"| {digits} | {arch} | {name} |" in verdicts, (arch, name)
            assert f"<td>{arch}</td><td>{name}</td>" in tables, (arch, name)
    # Generator metrics start at generation 1: a trend and no shift.
    assert (
        rows["generator", "u_t"]["shift_verdict"] == ""
        and rows["generator", "u_t"]["generations"] == "1 2 3 4"
    )
    with open(out / f"trends_{hin}.csv") as handle:
        assert {(r["arch"], r["metric"]) for r in csv.DictReader(handle)} == {("resnet50", "acc")}
    assert "Whether q_t / u_t explain the dynamics of md cannot be judged" in verdicts
    # Wherever q_t is described, the report says who judged it.
    assert Q_JUDGE in tables and Q_JUDGE in verdicts and Q_JUDGE in (out / f"eq6_{digits}.md").read_text()
    assert page.count(Q_JUDGE) >= 3  # the verdicts' method, the eq. 6 method and the generator figure


def test_missing_or_invalid_run_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as raised:
        main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    assert "nowhere" in str(raised.value.code) and "error" in str(raised.value.code)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="empty"):
        main([str(empty), "--out", str(tmp_path / "out")])
    # As a command: one line naming the path, no traceback.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfloop.analysis.report",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 1
    assert str(tmp_path / "nowhere") in done.stderr and "Traceback" not in done.stderr


def verdict_tables(page: str) -> str:
    """The page's verdict section: everything between its heading and the list of groups."""
    start, end = page.index('<h2 id="verdicts">'), page.index("<h2>Groups</h2>")
    assert start < end < page.index("<h3>Runs</h3>")  # the verdicts come first
    return page[start:end]


def test_one_seed_quick_start_gives_no_verdict(tmp_path: Path, capsys) -> None:
    """The quick start (configs/digits.yaml): one seed, lenet, generations 0-3."""
    metrics: dict = {}
    for g in range(4):
        metrics[g, "lenet", "acc"] = 0.95 - 0.03 * g
        metrics[g, "lenet", "md"] = 0.05 + 0.02 * g
        metrics[g, "lenet", "meo"] = 0.95 - 0.01 * g
        metrics[g, "lenet", "di"] = 0.9 - 0.01 * g
        metrics[g, "lenet", "worst_group_acc"] = 0.8 - 0.02 * g
        if g:
            metrics[g, "generator", "gen_label_acc"] = 0.7 + 0.05 * g
            metrics[g, "generator", "gen_label_acc_kept"] = 0.75 + 0.05 * g
            metrics[g, "generator", "u_t"] = 0.1 * g
            metrics[g, "generator", "fid_raw"] = 30.0 + g
    run = write_run(
        tmp_path / "run", "selfloop.data.digits.ColoredDigitsDataModule", 0, ["lenet"], 3, metrics
    )
    out = tmp_path / "report"
    main([str(run), "--out", str(out), "--bootstrap", "5"])
    printed = capsys.readouterr().out
    verdicts = (out / "verdicts.md").read_text()
    assert verdicts in printed
    page = verdict_tables((out / "index.html").read_text())
    for word in ("increases", "decreases", "no detectable change"):
        assert f"| {word} |" not in verdicts and f"<td>{word}</td>" not in page, word
    assert "explain the dynamics of md beyond" not in verdicts + page
    for metric in ("acc", "md", "meo", "di", "worst_group_acc"):
        assert re.search(
            rf"\| lenet \| {metric} \| cannot be judged \| 1 seed with a shift, and an interval over seeds "
            rf"needs at least 3 \| cannot be judged \| 1 seed with a trend",
            verdicts,
        ), metric
    for metric in ("gen_label_acc", "u_t", "fid_raw"):
        assert re.search(
            rf"\| generator \| {metric} \|  \| .* \| cannot be judged \| 1 seed with a trend", verdicts
        )
    assert "Whether q_t / u_t explain the dynamics of md cannot be judged" in verdicts
    with open(out / f"trends_{load_runs([run])[0].group}.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["trend_verdict"] for r in rows} == {"cannot be judged"} and {r["n_seeds"] for r in rows} == {
        "1"
    }
    assert {r["shift_verdict"] for r in rows} == {"cannot be judged", ""}


def test_equal_errors_give_no_positive_verdict(tmp_path: Path) -> None:
    """Five seeds whose MD does not change at all: every model predicts it exactly, so all errors are equal."""
    dirs = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        metrics: dict = {}
        for g in range(7):
            metrics[g, "lenet", "md"] = 0.1
            metrics[g, "lenet", "acc"] = 0.9 + 0.01 * rng.standard_normal()
            if g:
                metrics[g, "generator", "gen_label_acc_kept"] = rng.uniform(0.6, 0.9)
                metrics[g, "generator", "u_t"] = rng.uniform(0.0, 0.3)
        dirs.append(
            write_run(
                tmp_path / f"run{seed}",
                "selfloop.data.digits.ColoredDigitsDataModule",
                seed,
                ["lenet"],
                6,
                metrics,
            )
        )
    out = tmp_path / "report"
    main([*map(str, dirs), "--out", str(out), "--bootstrap", "5"])
    group = load_runs(dirs)[0].group
    with open(out / f"eq6_{group}_comparison.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["preferred"] == "no change" and row["n_seeds"] == "5"
    assert float(row["rmse_eq_6"]) == pytest.approx(float(row["rmse_no_change"]), abs=1e-9)
    assert float(row["eq6_vs_constant_low"]) == 0.0 == float(row["eq6_vs_constant_high"])
    verdicts = (out / "verdicts.md").read_text()
    assert f"- {group}: No model beats no change (A = 1) for md" in verdicts
    # MD never moves: every seed's contrasts are 0, a zero-width interval, which judges nothing.
    assert re.search(
        r"\| lenet \| md \| cannot be judged \| every seed gives the same shift \([-.e0-9]+\): a zero-width",
        verdicts,
    )
    page = verdict_tables((out / "index.html").read_text())
    assert "explain the dynamics of md beyond" not in page and "No model beats no change" in page


@pytest.mark.slow
def test_report_of_a_real_run_shows_within_class_disparities(tiny_run_args, tmp_path, monkeypatch, capsys):
    """A run directory written by the CLI: its within-class metrics reach the figure and the verdicts."""
    monkeypatch.chdir(ROOT)
    run = tmp_path / "run"
    SelfLoopCLI(args=tiny_run_args(run, "--loop.generations", "1", "--loop.fid_extractor", "none"))
    out = tmp_path / "report"
    main([str(run), "--out", str(out), "--bootstrap", "5"])
    (loaded,) = load_runs([run])
    group = loaded.group
    logged = {m for _, a, m in loaded.metrics if a == "lenet"}
    assert set(WITHIN_CLASS_KEYS) <= logged

    assert is_png(out / f"within_class_{group}.png")
    page = (out / "index.html").read_text()
    assert f'<img src="within_class_{group}.png"' in page and "Disparities within classes" in page
    verdicts = (out / "verdicts.md").read_text()
    for name in WITHIN_CLASS_KEYS:
        assert re.search(
            rf"\| {group} \| lenet \| {name} \| cannot be judged \| 1 seed with a shift", verdicts
        ), name
    with open(out / f"metrics_{group}.csv") as handle:
        rows = {(r["metric"], r["generation"]) for r in csv.DictReader(handle) if r["arch"] == "lenet"}
    assert {(name, g) for name in WITHIN_CLASS_KEYS for g in ("0", "1")} <= rows
    assert Q_JUDGE in page and Q_JUDGE in verdicts  # gen_label_acc is logged, so its judge is named

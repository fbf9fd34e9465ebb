"""The quick start on several seeds: wall time and class fidelity per seed, the README's table and figures.

    python scripts/bench_quickstart.py [--seeds 0 1 2 3 4] [--config configs/quickstart.yaml]
        [--runs lightning_logs/quickstart_bench] [--figures lightning_logs/quickstart_report] [-- EXTRA CLI ARGS]

Runs ``python main.py fit --config CONFIG --loop.seed S`` once per seed, each as its own process in a
fresh run directory ``RUNS/seed_<S>`` (an existing one is refused: its wall time would not be a run's),
and prints per seed its wall time and the raw class fidelity of generation 1 (``gen_label_acc``: the
share of all generated candidates, before the filter, that the independent judge labels as the class
they were generated for) against the bars of the quick start: at least ``--min-fidelity`` within
``--max-seconds``. Then the per-generation table over the seeds (mean, and min-max in brackets) and
the figures the README shows, all from these runs, into ``--figures``:

* ``quickstart_table.md``: the per-seed lines and the per-generation table;
* ``fairness.png``, ``generator.png``: the report's fairness and generator figures over the seeds
  (the whole report, ``index.html`` included, goes to ``RUNS/report``);
* ``samples_gen_001.png``: the kept samples of generation 1 of the first seed, a row per class.

Arguments after ``--`` go to every run (the tests use them for a seconds-long run). Each run's console
output is kept in ``RUNS/seed_<S>.log``. Exit status 1 when a seed misses a bar, so the command can gate
a release.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing the package

CLASSIFIER = "lenet"
# (column, arch, metric) of the per-generation table; "a → b" cells pair a raw and a kept metric.
COLUMNS: tuple[tuple[str, str, str | tuple[str, str]], ...] = (
    ("LeNet acc", CLASSIFIER, "acc"),
    ("MEO", CLASSIFIER, "meo"),
    ("DI", CLASSIFIER, "di"),
    ("MD", CLASSIFIER, "md"),
    ("worst (class, colour) acc", CLASSIFIER, "worst_group_acc"),
    ("`gen_label_acc` raw → kept", "generator", ("gen_label_acc", "gen_label_acc_kept")),
    ("u_t", "generator", "u_t"),
    ("FID raw → kept (domain)", "generator", ("fid_raw", "fid_kept")),
)


def _metrics(run: Path) -> dict[tuple[int, str, str], float]:
    with open(run / "metrics.csv", newline="") as handle:
        return {
            (int(r["generation"]), r["arch"], r["metric"]): float(r["value"]) for r in csv.DictReader(handle)
        }


def _summary(values: Sequence[float]) -> str:
    """Mean and [min-max] over seeds, 3 significant decimals (1 for values above 10, such as FID)."""
    digits = 1 if statistics.mean(values) > 10 else 3
    mean = f"{statistics.mean(values):.{digits}f}"
    return mean if len(values) == 1 else f"{mean} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def generation_table(runs: Sequence[dict[tuple[int, str, str], float]]) -> list[str]:
    """The per-generation markdown table over ``runs`` (one metrics mapping per seed)."""
    generations = sorted({g for metrics in runs for g, _, _ in metrics})
    lines = [
        "| generation | " + " | ".join(c[0] for c in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for generation in generations:
        cells = []
        for _, arch, metric in COLUMNS:
            names = metric if isinstance(metric, tuple) else (metric,)
            parts = []
            for name in names:
                values = [m[(generation, arch, name)] for m in runs if (generation, arch, name) in m]
                parts.append(_summary(values) if values else "")
            cells.append(" → ".join(parts) if all(parts) else "")
        lines.append(f"| {generation} | " + " | ".join(cells) + " |")
    return lines


def _run_seed(config: str, seed: int, run_dir: Path, extra: Sequence[str]) -> float:
    command = [sys.executable, str(REPO / "main.py"), "fit", "--config", config, "--loop.seed", str(seed)]
    command += ["--loop.run_dir", str(run_dir), "--trainer.enable_progress_bar", "false", *extra]
    print(f"[bench_quickstart] seed {seed} -> {run_dir}", file=sys.stderr, flush=True)
    log = run_dir.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as output:
        start = time.perf_counter()
        result = subprocess.run(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
        elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"bench_quickstart: the run of seed {seed} failed (exit {result.returncode}); see {log}")
    return elapsed


def _figures(runs: Path, run_dirs: Sequence[Path], folder: Path, lines: Sequence[str]) -> None:
    # Imported only now: the timed runs go by without this process holding the training stack in memory.
    from selfloop.analysis.report import main as report
    from selfloop.run.layout import RunDirectory

    report_dir = runs / "report"
    report([*(str(p) for p in run_dirs), "--out", str(report_dir)])
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("fairness", "generator"):
        (found,) = report_dir.glob(f"{name}_*.png")
        shutil.copyfile(found, folder / f"{name}.png")
    shutil.copyfile(RunDirectory(run_dirs[0]).sample_grid(1), folder / "samples_gen_001.png")
    (folder / "quickstart_table.md").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="--loop.seed of each run"
    )
    parser.add_argument("--config", default="configs/quickstart.yaml", help="the quick start's config")
    parser.add_argument(
        "--runs", type=Path, default=Path("lightning_logs/quickstart_bench"), help="runs go here"
    )
    parser.add_argument(
        "--figures", type=Path, default=Path("lightning_logs/quickstart_report"), help="the README's figures"
    )
    parser.add_argument(
        "--min-fidelity", type=float, default=0.90, help="bar of generation 1's gen_label_acc"
    )
    parser.add_argument("--max-seconds", type=float, default=300.0, help="bar of a run's wall time")
    argv = sys.argv[1:] if argv is None else list(argv)
    ours, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    options = parser.parse_args(ours)
    run_dirs = [options.runs / f"seed_{seed}" for seed in options.seeds]
    existing = [str(p) for p in run_dirs if p.exists()]
    if existing:
        parser.error(
            f"{', '.join(existing)} already exist(s): pass another --runs (the runs must be fresh to be timed)"
        )

    lines = ["| seed | wall time (s) | generation-1 `gen_label_acc` (raw) | bars met |", "|---|---|---|---|"]
    runs, passed = [], True
    for seed, run_dir in zip(options.seeds, run_dirs, strict=True):
        seconds = _run_seed(options.config, seed, run_dir, extra)
        metrics = _metrics(run_dir)
        fidelity = metrics[(1, "generator", "gen_label_acc")]
        ok = fidelity >= options.min_fidelity and seconds <= options.max_seconds
        passed &= ok
        runs.append(metrics)
        lines.append(f"| {seed} | {seconds:.0f} | {fidelity:.3f} | {'yes' if ok else 'NO'} |")
        print(lines[-1], flush=True)
    lines += ["", *generation_table(runs)]
    print("\n".join(lines))
    _figures(options.runs, run_dirs, options.figures, lines)
    print(f"figures and table: {options.figures}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

"""Wall time of one run with the panel fitted serially and with ``--loop.panel_workers``, as a ratio.

    python scripts/bench_panel.py [--workers 2] [--config configs/digits.yaml] [--keep DIR] [-- EXTRA CLI ARGS]

Runs the same ``selfloop fit`` twice in fresh run directories, as separate processes: with
``--loop.panel_workers 1`` (every classifier fit after the other) and with ``--workers``. Everything but
the classifier fits (the judge, generators, sampling, filtering) is the same in both, so the ratio
understates the speedup of the panel alone. ``identical`` says whether the two ``metrics.csv`` are
byte-identical, as they must be. Arguments after ``--`` go to both runs (default: a 1-generation run of
the quick-start config with a panel of LeNet, AlexNet and MobileNet-V3). Output is ``key: value`` lines.

On a CPU the workers share its cores (each keeps the serial run's thread count, which keeps the bits
the same), so expect little; on a node with several GPUs the fits go round-robin over them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RUN = (
    "--loop.generations", "1",
    "--loop.archs", "[lenet, alexnet, mobilenet_v3]",
    "--trainer.enable_progress_bar", "false",
)  # fmt: skip


def _timed_run(config: str, workers: int, run_dir: Path, extra: list[str]) -> float:
    command = [
        sys.executable, str(REPO / "main.py"), "fit", "--config", config, *extra,
        "--loop.panel_workers", str(workers), "--loop.run_dir", str(run_dir),
    ]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"bench_panel: the run with --loop.panel_workers {workers} failed:\n{result.stderr[-3000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ours, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="--loop.panel_workers of the concurrent run")
    parser.add_argument("--config", default="configs/digits.yaml", help="the config both runs use")
    parser.add_argument("--keep", type=Path, help="keep the two runs in KEEP/serial and KEEP/concurrent")
    options = parser.parse_args(ours)
    if options.workers < 2:
        parser.error(f"--workers must be >= 2 (the concurrent run), got {options.workers}")
    if options.keep is not None and options.keep.exists():
        parser.error(f"--keep {options.keep} already exists: pass a new folder")
    extra = extra or list(DEFAULT_RUN)
    with tempfile.TemporaryDirectory(prefix="bench_panel_") as scratch:
        folder = options.keep or Path(scratch)
        serial = _timed_run(options.config, 1, folder / "serial", extra)
        concurrent = _timed_run(options.config, options.workers, folder / "concurrent", extra)
        identical = (folder / "serial" / "metrics.csv").read_bytes() == (
            folder / "concurrent" / "metrics.csv"
        ).read_bytes()
    print(f"config: {options.config} {' '.join(extra)}")
    print(f"workers: {options.workers}")
    print(f"serial_s: {serial:.2f}")
    print(f"concurrent_s: {concurrent:.2f}")
    print(f"ratio: {serial / concurrent:.3f}")
    print(f"identical: {str(identical).lower()}")


if __name__ == "__main__":
    main()

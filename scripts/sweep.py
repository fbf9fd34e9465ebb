"""Run configs x seeds one after another, each in its own run directory; skip finished runs.

    python scripts/sweep.py --configs configs/a.yaml configs/b.yaml --seeds 0 1 2 \\
        --out lightning_logs/sweeps [--dry-run] [-- extra CLI args]

Each run is ``python main.py fit --config <config> --loop.run_dir <out>/<config stem>/seed_<s>
--loop.seed <s> <extra args>``. A run is finished when its manifest lists every
``g<n>/classifier/<arch>`` for n = 0..generations, with generations and archs read from the run's own
``config.yaml`` (the loop writes no DONE marker); finished runs are skipped and any other run is
started, or resumed, since rerunning the same command continues an interrupted run. The run's recorded
config is authoritative because the CLI keeps it on resume: extra arguments that change
``--loop.generations`` do not reopen a finished run.

A failed run does not stop the sweep; the exit status is 1 when any failed. On SIGTERM (e.g. SLURM's
``--signal=TERM@120`` before the time limit) the running child gets SIGTERM too (the CLI then stops at
the next safe point and exits 143); the sweep then stops with status 143 so a batch script can requeue
it. A child that exits 143 on its own was signalled too and stops the sweep the same way.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing the package

from selfloop.analysis.runs import run_finished  # noqa: E402

TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process killed by TERM


class Terminated(Exception):
    """The sweep received SIGTERM."""


def run_dir(out: str | Path, config: str | Path, seed: int) -> Path:
    """``<out>/<config stem>/seed_<seed>``.

    Args:
        out: the sweep's output folder.
        config: a config file.
        seed: the run's seed.
    """
    return Path(out) / Path(config).stem / f"seed_{seed}"


def command(
    config: str | Path, seed: int, out: str | Path, extra: Sequence[str] = (), python: str = sys.executable
) -> list[str]:
    """The CLI call of one run.

    Args:
        config: a config file.
        seed: the run's seed.
        out: the sweep's output folder.
        extra: further CLI arguments, appended last so they override the config.
        python: the interpreter.
    """
    return [
        python, str(REPO / "main.py"), "fit",
        "--config", str(config),
        "--loop.run_dir", str(run_dir(out, config, seed)),
        "--loop.seed", str(seed),
        *extra,
    ]  # fmt: skip


def plan(configs: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, int]]:
    """Every (config, seed) pair, configs outermost (``sweep_slurm.sh`` numbers its array tasks the same way).

    Args:
        configs: config files.
        seeds: seeds.
    """
    return [(c, s) for c in configs for s in seeds]


def _run(cmd: list[str]) -> int:
    """Run one child; forward SIGTERM to it and raise ``Terminated`` once it has stopped."""
    child = subprocess.Popen(cmd)
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        # The child stops at its own pace after TERM (SLURM kills both when its grace period ends).
        code = child.wait()
    except KeyboardInterrupt:
        child.wait()  # Ctrl-C reached the child too (same process group); let it stop before we do
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if received:
        raise Terminated
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, then run, print or skip every config x seed.

    Args:
        argv: arguments (default: ``sys.argv[1:]``); everything after ``--`` goes to every run.

    Returns:
        0 when every run finished or was skipped, 1 when one failed, 143 when terminated.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="python scripts/sweep.py",
        description="Run configs x seeds sequentially, each in <out>/<config stem>/seed_<s>; skip finished runs.",
        epilog="Arguments after -- are passed to every run (e.g. -- --trainer.max_epochs 5).",
    )
    parser.add_argument("--configs", nargs="+", required=True, help="config files")
    parser.add_argument("--seeds", nargs="+", type=int, required=True, help="seeds")
    parser.add_argument("--out", required=True, help="folder of the run directories")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the commands (and skipped runs); run nothing"
    )
    args = parser.parse_args(argv)
    missing = [c for c in args.configs if not Path(c).is_file()]
    if missing:
        parser.error(f"config file not found: {', '.join(missing)}")
    stems = [Path(c).stem for c in args.configs]
    if len(set(stems)) != len(stems):
        # Run directories are named by stem, so two configs with one stem would share (and corrupt) them.
        parser.error(f"two configs have the same file name stem: {stems}")

    failed: list[str] = []
    pairs = plan(args.configs, args.seeds)
    for i, (config, seed) in enumerate(pairs, start=1):
        target = run_dir(args.out, config, seed)
        if run_finished(target):
            print(f"[sweep {i}/{len(pairs)}] skip (finished): {target}", flush=True)
            continue
        cmd = command(config, seed, args.out, extra)
        if args.dry_run:
            print(shlex.join(cmd), flush=True)
            continue
        print(f"[sweep {i}/{len(pairs)}] {shlex.join(cmd)}", flush=True)
        try:
            code = _run(cmd)
        except Terminated:
            code = TERMINATED
        if code in (TERMINATED, -signal.SIGTERM):  # exit 143, or killed by TERM before it could exit
            # The run stopped on a signal (ours, forwarded, or its own from SLURM): stop the sweep too
            # rather than start the next run in the little time left.
            print(
                f"[sweep] terminated during {target}; rerun the sweep to resume it",
                file=sys.stderr,
                flush=True,
            )
            return TERMINATED
        if code != 0:
            print(f"[sweep {i}/{len(pairs)}] failed (exit {code}): {target}", file=sys.stderr, flush=True)
            failed.append(str(target))
    if failed:
        print(f"[sweep] {len(failed)} of {len(pairs)} runs failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

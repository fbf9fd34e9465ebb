"""scripts/study_mnist.py end to end on a seconds-long study: runs, resume, the README section, refusals."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
from conftest import TINY_RUN

from selfloop.analysis.runs import Run

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
# 32 px (the digits are padded, never cropped) and most digits in validation: a seconds-long run.
SHORT = (
    *TINY_RUN, "--data.init_args.image_size", "32", "--data.init_args.val_fraction", "0.75",
    "--data.init_args.test_fraction", "0.1", "--loop.generations", "1", "--loop.archs", "[lenet]",
)  # fmt: skip
README = "# selfloop\n\nbefore\n<!-- study_mnist:start -->\nold section\n<!-- study_mnist:end -->\nafter\n"


def _study():
    spec = importlib.util.spec_from_file_location("study_mnist", ROOT / "scripts" / "study_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(tmp_path: Path, readme: Path, *options: str) -> list[str]:
    return [
        "--arms", "unbiased", "--seeds", "0", "--out", str(tmp_path / "runs"), "--figures",
        str(tmp_path / "figures"), "--readme", str(readme), *options, "--", *SHORT,
    ]  # fmt: skip


def test_a_study_writes_its_readme_section_from_its_runs_and_a_rerun_skips_finished_runs(tmp_path):
    study = _study()
    readme = tmp_path / "README.md"
    readme.write_text(README)
    assert study.main(_args(tmp_path, readme, "--jobs", "2")) == 0
    log = tmp_path / "runs" / "unbiased" / "seed_0.log"
    console = log.read_text()
    text = readme.read_text()
    head, rest = text.split("<!-- study_mnist:start -->\n")
    section, tail = rest.split("\n<!-- study_mnist:end -->")
    assert head == "# selfloop\n\nbefore\n" and tail == "\nafter\n" and "old section" not in text
    assert (tmp_path / "figures" / "study_section.md").read_text().rstrip() == section
    assert "| paper's takeaway |" in section and "cannot be judged" in section  # one seed judges nothing
    # one arm, one arch: the FID, accuracy, single-bias and subgroup-variation rows, none decided on one seed
    assert "Of the 4 rows on the paper's takeaways: 4 cannot tell at this scale." in section
    assert "| 1 | 111.7 |" in section  # Table 1 next to the study's FID
    assert "| generation | unbiased: u_t |" in section and "under the biased colouring" not in section.lower()
    seconds = study.generation_seconds(console)
    assert set(seconds) == {0, 1} and all(s > 0 for s in seconds.values())
    assert "| unbiased | " in section and "Total: " in section
    (ledger,) = json.loads((tmp_path / "runs" / "wall_time.json").read_text())
    assert ledger["jobs"] == 2 and ledger["seconds"] >= sum(seconds.values())
    assert (
        f"the study's invocations took {ledger['seconds'] / 3600:.2f} h of wall time (1 invocation(s), --jobs 2)"
        in section
    )
    for name in ("fairness_unbiased.png", "generator_unbiased.png"):
        assert (tmp_path / "figures" / name).read_bytes().startswith(b"\x89PNG"), name

    # --status with a second seed not run: a progress report of the finished run, no verdicts, nothing run.
    status = _args(tmp_path, readme, "--status")
    status[status.index("--seeds") + 1 : status.index("--seeds") + 2] = ["0", "1"]
    assert study.main(status) == 0
    progress = (
        readme.read_text().split("<!-- study_mnist:start -->\n")[1].split("\n<!-- study_mnist:end -->")[0]
    )
    assert progress.startswith("Not finished: 1 of 2 runs. No replication verdicts exist yet")
    assert "| paper's takeaway |" not in progress and "| unbiased | " in progress
    per_run = sum(seconds.values())
    assert (
        f"({per_run / 60:.0f} min a run, measured at --jobs 2), the 1 runs left need about {per_run / 2 / 3600:.1f} h"
        in progress
    )
    assert not (tmp_path / "runs" / "unbiased" / "seed_1").exists()

    # Rerun: a finished run is skipped, its console untouched.
    run_dir = tmp_path / "runs" / "unbiased" / "seed_0"
    assert study._run("configs/study_mnist.yaml", "unbiased", 0, run_dir, SHORT) is True
    assert log.read_text() == console


def test_a_readme_without_the_markers_is_refused_before_any_run(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no section here\n")
    with pytest.raises(SystemExit) as exit_info:
        _study().main(_args(tmp_path, readme))
    assert exit_info.value.code == 2
    assert (
        f"--readme {readme}: the README needs one '<!-- study_mnist:start -->' line"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "runs").exists()


def test_jobs_below_one_are_refused_before_any_run(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    with pytest.raises(SystemExit) as exit_info:
        _study().main(_args(tmp_path, readme, "--jobs", "0"))
    assert exit_info.value.code == 2
    assert "--jobs 0: give 1 or more runs at a time" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_the_wall_time_ledger_keeps_earlier_invocations_and_is_on_disk_while_one_lasts(tmp_path):
    """A study killed mid-run (a session's end) keeps its time up to the last heartbeat."""
    ledger = tmp_path / "wall_time.json"
    ledger.write_text(json.dumps([{"jobs": 1, "seconds": 100.0}]))
    with _study().WallTime(ledger, jobs=2, every=0.05):
        for _ in range(100):  # up to 5 s for the first heartbeat
            entries = json.loads(ledger.read_text())
            if len(entries) == 2 and entries[1]["seconds"] > 0:
                break
            time.sleep(0.05)
        assert entries[0] == {"jobs": 1, "seconds": 100.0}
        assert entries[1]["jobs"] == 2 and entries[1]["seconds"] > 0
    assert len(json.loads(ledger.read_text())) == 2


def test_the_mix_note_says_what_u_t_means_under_the_biased_colouring():
    study = _study()

    def run(bias: str, majority: float) -> Run:
        config = {"data": {"init_args": {"bias": bias, "majority": majority}}}
        return Run(Path(f"/runs/{bias}"), config, 0, bias, {}, {}, [], True)

    note = study._mix_note({"unbiased": [run("unbiased", 0.8)], "biased": [run("biased", 0.7)]})
    assert note == (
        " Under the biased colouring (70% of a class in its colour, the rest split evenly) u_t = 0.3 is what a "
        "generator gives that draws every digit of a class in the class's colour."
    )
    assert study._mix_note({"unbiased": [run("unbiased", 0.8)]}) == ""

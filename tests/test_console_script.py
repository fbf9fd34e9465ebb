"""``selfloop`` as a command: the installed script, ``python main.py`` and ``python -m selfloop``."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from selfloop.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
SELFLOOP = Path(sys.executable).parent / "selfloop"
LAUNCHERS = {
    "selfloop": [str(SELFLOOP)],
    "main.py": [sys.executable, "main.py"],
    "python -m selfloop": [sys.executable, "-m", "selfloop"],
}
BANNERS = ("GPU available:", "TPU available:", "💡 Tip", "You passed in a `val_dataloader`")


def _run(*args: str, launcher: str = "selfloop", timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*LAUNCHERS[launcher], *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_the_selfloop_script_is_installed_from_pyproject():
    # The script exists after `pip install -e .` (reinstall after pulling: `pip install -e . --no-deps`).
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("selfloop") == "selfloop.__main__:main"
    assert SELFLOOP.is_file(), f"{SELFLOOP} is missing: run `pip install -e . --no-deps`"


def _status(capsys, *args: str) -> tuple[int, str, str]:
    """``selfloop ARGS`` in process (the launchers themselves are run below): exit status, stdout, stderr."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_help_lists_the_subcommands(capsys):
    status, out, _ = _status(capsys, "--help")
    assert status == 0
    commands = [m.group(1) for line in out.splitlines() if (m := re.match(r" {4}(\S+)", line))]
    assert commands == ["fit", "report", "validate"]


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_fit_print_config_prints_the_resolved_config(launcher):
    result = _run("fit", "--config", "configs/digits.yaml", "--print_config", launcher=launcher)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["data"]["class_path"] == "selfloop.data.digits.ColoredDigitsDataModule"
    assert config["loop"]["name"] == "digits"
    assert config["loop"]["generations"] == 3


def test_report_on_a_missing_run_directory_is_one_line_and_status_2(tmp_path, capsys):
    missing = tmp_path / "no_such_run"
    status, _, err = _status(capsys, "report", str(missing), "--out", str(tmp_path / "report"))
    assert status == 2
    (line,) = err.strip().splitlines()
    assert "error" in line and str(missing) in line
    assert not (tmp_path / "report").exists()


def test_an_unknown_subcommand_names_the_choices(capsys):
    status, _, err = _status(capsys, "fitt")
    assert status == 2
    assert "invalid choice: 'fitt' (choose from 'fit', 'report', 'validate')" in err


@pytest.mark.slow
def test_selfloop_fit_runs_without_lightning_banners_and_report_reads_the_run(
    tiny_run_args, tmp_path, capsys
):
    run = tmp_path / "runs" / "tiny"
    fit = _run(*tiny_run_args(run, "--loop.generations", "1"))
    assert fit.returncode == 0, fit.stderr
    console = fit.stdout + fit.stderr
    for banner in BANNERS:
        assert banner not in console
    assert "[selfloop] done: 1 generations" in console
    assert (run / "metrics.csv").is_file()

    status, out, err = _status(capsys, "report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"))
    assert status == 0, err
    assert (tmp_path / "report" / "index.html").is_file()
    assert "(1 runs in 1 groups)" in out

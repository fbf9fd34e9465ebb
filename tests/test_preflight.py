"""A plain value that cannot work is refused before the training stack is imported, in the words the typed
parser would use, and the preflight never refuses what the parser accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from selfloop.cli.preflight import early_problems

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")


def test_a_refused_lr_exits_in_one_line_before_torch_or_lightning_is_imported(tmp_path):
    run = tmp_path / "run"
    code = (
        "import sys\n"
        "from selfloop.__main__ import main\n"
        "try:\n"
        f"    main(['fit', '--config', {QUICKSTART!r}, '--model.lr', '-1', '--loop.run_dir', {str(run)!r}])\n"
        "except SystemExit as exited:\n"
        "    print(exited.code, sorted(m for m in ('torch', 'lightning') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "2 []", done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert lines[0] == "selfloop: error: --model.lr must be a finite number > 0, got -1"
    assert lines[1] == "(`-c fit --help` lists every option and its type)"
    assert not run.exists()


def test_config_values_and_overrides_merge_in_order_and_the_last_one_counts(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  lr: -0.5\ngenerator:\n  init_args:\n    width: 0\nloop:\n  seed: -1\n")
    assert early_problems(["--config", str(config)]) == [
        "--loop.seed must be an integer in [0, 4294967295], got -1",
        "--model.lr must be a finite number > 0, got -0.5",
        "--generator.init_args.width must be an integer >= 1, got 0",
    ]
    # A later override mends each, in both spellings (``--key value``, ``--key=value``) and jsonargparse's
    # shorthand for a subclass group's argument (``--generator.width``).
    fixed = ["--model.lr", "1e-3", "--generator.width=8", "--loop.seed", "3"]
    assert early_problems(["--config", str(config), *fixed]) == []
    # And an override before the config file is overridden by it, as in the parser.
    assert early_problems([*fixed, "--config", str(config)]) != []


def test_what_it_cannot_read_is_left_to_the_parser(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    assert early_problems(["--config", str(broken)]) == []
    assert early_problems(["--config", str(tmp_path / "missing.yaml")]) == []
    assert early_problems(["--trainer.max_epochs", "abc", "--model.lr", "fast"]) == []
    assert early_problems(["--model.lr", "-1", "--help"]) == []
    assert early_problems(["--model.lr", "-1", "--print_config"]) == []


@pytest.mark.parametrize(
    "flags",
    [["--model.lr", "-1"], ["--loop.seed", "100000000000000000000"], ["--trainer.max_epochs", "0"],
     ["--generator.init_args.beta1", "1", "--generator.init_args.width", "0"], ["--model.dropout", "1.5"]],
)  # fmt: skip
def test_the_preflight_names_the_same_flags_as_the_typed_parser(
    tiny_run_args, tmp_path, capsys, monkeypatch, flags
):
    from helpers.cli_errors import one_error_line

    typed = one_error_line(tiny_run_args(tmp_path / "run", *flags), capsys, monkeypatch)
    early = early_problems(tiny_run_args(tmp_path / "run", *flags)[1:])
    # The same problems (one " must " each), naming the same flags; numbers may be spelled otherwise (-1, -1.0).
    assert len(early) == typed.count(" must ") >= 1
    assert all(f"{message.split(' must ')[0]} must " in typed for message in early)

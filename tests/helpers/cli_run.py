"""``selfloop fit ...`` run in this process, as a test would read a subprocess's result: status and output.

A fresh interpreter costs seconds of imports (Lightning, torch, torchvision) per call; the run itself is the
same code. Tests that need a process of its own (a real SIGKILL, an entry point, signal handlers) still
start one.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

from selfloop.cli.app import main

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    """What ``main(args)`` ended with: its exit status, what it printed, and the warnings it raised."""

    returncode: int
    stdout: str
    stderr: str
    warnings: list[str] = field(default_factory=list)


def run_cli(args: list[str]) -> CliResult:
    """Run ``main(args)`` (``args`` starts with ``fit``) from the repository root and return its result; the
    log records it emits (``[selfloop] resuming ...``) are in ``stderr``, as a process would print them."""
    out, err = io.StringIO(), io.StringIO()
    log = logging.StreamHandler(err)
    log.setLevel(logging.INFO)
    logging.getLogger().addHandler(log)
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                main(args)
                code = 0
            except SystemExit as exited:
                code = exited.code if isinstance(exited.code, int) else 1
    finally:
        os.chdir(cwd)
        logging.getLogger().removeHandler(log)
    return CliResult(code, out.getvalue(), err.getvalue(), [str(w.message) for w in caught])

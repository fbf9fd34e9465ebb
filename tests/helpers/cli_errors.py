"""The one line ``selfloop fit`` prints for a refused command, read in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfloop.cli.app import main

ROOT = Path(__file__).resolve().parents[2]


def one_error_line(args: list[str], capsys, monkeypatch) -> str:
    """Run ``main(args)`` from the repository root; assert exit status 2, no traceback and no hub retries;
    return the single ``selfloop: error:`` line."""
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exited:
        main(args)
    err = capsys.readouterr().err
    assert exited.value.code == 2, err[-3000:]
    assert "Traceback" not in err and "Retrying" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("selfloop: error:")]
    return line

"""The command line parses before the generative and pretrained stacks are imported: a refusal or ``--help``
never waits for diffusers, open_clip, peft or timm (each phase that needs one imports it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("diffusers", "open_clip", "peft", "timm")


def test_a_refused_value_imports_no_generative_or_pretrained_stack(tmp_path):
    code = (
        "import sys\n"
        "from selfloop.cli.app import main\n"
        "try:\n"
        f"    main(['fit', '--config', 'configs/quickstart.yaml', '--model.lr', '-1', '--loop.run_dir', {str(tmp_path / 'run')!r}])\n"
        "except SystemExit as exited:\n"
        f"    print(exited.code, sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "2 []", done.stderr[-3000:]
    assert "selfloop: error: --model.lr must be a finite number > 0, got -1.0" in done.stderr
    assert not (tmp_path / "run").exists()

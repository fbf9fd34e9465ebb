"""The README's commands and figures point at what the repository holds."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)


def test_the_first_command_runs_the_quick_start_config_and_the_second_the_suite():
    first, second = _bash_blocks()[:2]
    words = shlex.split(first.split("&&")[-1])
    assert (
        words[:3] == ["python", "main.py", "fit"]
        and words[words.index("--config") + 1] == "configs/quickstart.yaml"
    )
    assert (ROOT / "configs" / "quickstart.yaml").is_file()
    assert second.strip().endswith("python -m pytest")


def test_every_figure_the_readme_shows_exists_and_is_a_png():
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert len(figures) >= 3
    for figure in figures:
        assert (ROOT / figure).read_bytes().startswith(b"\x89PNG"), figure

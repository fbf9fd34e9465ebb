"""The HTML report as a browser shows it: headless Chromium loads every figure, and no link is broken."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from test_report import ARCHS, GENERATIONS, digits_metrics, write_run  # tests/analysis is on sys.path

from selfloop.analysis.report import main

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium) to render the report"
)

# Appended to a copy of the page: after load, it writes each image's natural width into the DOM, which
# --dump-dom then prints (a file:// page cannot send results anywhere else).
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({src: i.getAttribute("src"), width: i.naturalWidth}));
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(images);
  document.body.appendChild(out);
});
</script>"""


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def report(tmp_path: Path) -> Path:
    runs = [
        write_run(tmp_path / f"run{s}", "selfloop.data.digits.ColoredDigitsDataModule", s, ARCHS, GENERATIONS,
                  digits_metrics(s))
        for s in range(3)
    ]  # fmt: skip
    out = tmp_path / "report"
    main([*map(str, runs), "--out", str(out), "--bootstrap", "5"])
    return out / "index.html"


def test_every_image_loads_and_every_link_resolves(report: Path) -> None:
    page = report.read_text()
    probe = report.with_name("probe.html")
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    done = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    match = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert match, f"chromium printed no probe result: {done.stderr[-2000:]}"
    images = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(images) == len(re.findall(r"<img ", page)) == 4  # fairness, within class, ranked, generator
    assert [i["src"] for i in images if i["width"] <= 0] == []

    ids = set(re.findall(r'id="([^"]+)"', page))
    for href in re.findall(r'href="([^"]+)"', page):
        if href.startswith("#"):
            assert href[1:] in ids, href
        else:
            assert not urlparse(href).scheme, href  # the report links only its own files
            assert (report.parent / unquote(href)).is_file(), href

    shot = report.with_name("screenshot.png")
    chromium("--window-size=1400,2000", f"--screenshot={shot}", report.as_uri())
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

"""The report's explorer in a real headless Chromium: two slider positions give two different pictures and
the page logs nothing to the console. Skips without Chromium on a developer machine, never under CI=true."""

import os
import shutil
import subprocess

import pytest

from conceptspace.train import train
from tests.helpers import fast_cfg

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(page, out, step):
    """The whole page (a window taller than the report): the explorer sits below the first screen's figures."""
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", f"--screenshot={out}", "--window-size=1280,10000", f"file://{page}#step={step}"],
                          capture_output=True, text=True, timeout=120)
    return [line for line in proc.stderr.splitlines() if "CONSOLE" in line]


def test_explorer_slider_changes_the_picture_without_console_errors(run_cli, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no chromium on PATH (.ci/run installs it)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    run = tmp_path / "run"
    train(fast_cfg(steps=6, snapshots=3, tracker=True), run)
    code, _, err = run_cli("elicit", str(run), "n_probes=2", "methods=[naive,overprompt]", "overprompt.offsets=[0.25]")
    assert code == 0, err
    assert list((run / "elicit" / "samples").glob("step_*/blue-small_overprompt_offset=0.25.png"))
    code, _, err = run_cli("report", str(run))
    assert code == 0, err
    html = (run / "report.html").read_text()
    assert 'id="ex-slider"' in html and "blue-small: overprompt (offset=0.25)" in html
    first, last = tmp_path / "first.png", tmp_path / "last.png"
    console = screenshot(run / "report.html", first, 0) + screenshot(run / "report.html", last, 2)
    assert console == [], console
    assert first.read_bytes() != last.read_bytes()

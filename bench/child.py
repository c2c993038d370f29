"""Run a bench measurement in a fresh Python process (no import state or thread pool leaks between settings)
and read back its one `RESULT {json}` line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_child(code: str, what: str, cwd: Path = ROOT, env: dict | None = None) -> dict:
    env = {**os.environ, "WANDB_MODE": "disabled", **(env or {})}
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{what} failed:\n{out.stderr[-2000:]}")
    return json.loads(line[len("RESULT "):])

"""What produced a run: code version, library versions, machine, precision and the command line, written to
RUN_DIR/provenance.json at every start (a resume appends a session), so two results can be told apart."""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path

FILE = "provenance.json"
SOURCE = Path(__file__).resolve().parents[1]


@functools.cache
def code_version() -> str:
    """`<commit>` of a clean checkout, `<commit>+dirty.<hash of the diff>` of an edited one, else the
    installed package's version. Read once per process: a multirun's later jobs run the code its process
    imported, not whatever the checkout holds by the time they start."""
    try:
        commit = _git("rev-parse", "--short=12", "HEAD")
        diff = _git("diff", "HEAD", "--", "conceptspace", "synthetic_shapes", "celeba", "configs", strip=False)
        return commit + (f"+dirty.{hashlib.sha1(diff.encode()).hexdigest()[:8]}" if diff else "")
    except (OSError, subprocess.CalledProcessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"conceptspace {version('conceptspace')}"
        except PackageNotFoundError:
            return "unknown"


def _git(*args: str, strip: bool = True) -> str:
    out = subprocess.run(["git", "-C", str(SOURCE), *args], check=True, capture_output=True, text=True,
                         timeout=20).stdout
    return out.strip() if strip else out


def session(device, bf16: bool, fp32_input: bool = False) -> dict:
    import diffusers
    import torch

    from .devices import native_bf16

    return {"code": code_version(), "python": platform.python_version(), "torch": torch.__version__,
            "diffusers": diffusers.__version__, "machine": f"{platform.node()} ({platform.machine()}, "
            f"{_cpu_name()}, {torch.get_num_threads()} threads)", "device": str(device),
            "precision": ("bf16 autocast" + (", fp32 input conv" if fp32_input else "")) if bf16 else "fp32",
            "native_bf16": native_bf16(torch.device(device)), "command": " ".join(sys.argv)}


def record(run_dir: Path, device, bf16: bool, fp32_input: bool = False) -> dict:
    """Append this start's session to RUN_DIR/provenance.json (atomically) and return it."""
    from .checkpoint import atomic_write_text

    path = Path(run_dir) / FILE
    sessions = read(run_dir)
    entry = session(device, bf16, fp32_input)
    atomic_write_text(path, json.dumps(sessions + [entry], indent=1), fault="run_files")
    return entry


def read(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / FILE
    try:
        sessions = json.loads(path.read_text()) if path.is_file() else []
    except json.JSONDecodeError:
        return []
    return sessions if isinstance(sessions, list) else []


def run_code_version(run_dir: Path) -> str:
    """The code version of a run: one version, or 'a | b' for a run resumed under another; 'unknown' for a
    run written before provenance existed."""
    versions = list(dict.fromkeys(s.get("code", "unknown") for s in read(run_dir)))
    return " | ".join(versions) if versions else "unknown"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"

"""Run-dir files that survive a kill at any moment.

- Full checkpoints for resume and every small file: written to a temporary name, fsync'd, renamed over the
  target, so a kill leaves the old file or the new one, never a torn one.
- Weight-only snapshots for tracking (diffusers save_pretrained: config JSON + safetensors, the ConceptSpec
  inside the config): written whole into `step_N.tmp<pid>/`, then renamed. Readers see complete ones only.
- Appended logs (JSONL): a kill may tear the last line; the next append cuts the torn tail first.
- `recover` removes what interrupted writes of dead processes left behind; every write that runs out of
  disk stops with one line naming the path, the previous file intact.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch

from . import faults
from .errors import UserError, first_line

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "diffusion_pytorch_model.safetensors"
SNAPSHOT_NAME = re.compile(r"^(ema_)?step_(\d+)$")
TEMPORARY = re.compile(r"\.tmp(\d*)(\.[A-Za-z0-9]+)?$")  # name.tmp<pid>[.suffix]: an unfinished write


def tmp_name(path: Path) -> Path:
    """A temporary sibling that keeps the suffix (PIL and matplotlib pick the format from it)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.tmp{os.getpid()}{path.suffix}" if path.suffix else
                          f"{path.name}.tmp{os.getpid()}")


def is_temporary(path: Path) -> bool:
    return TEMPORARY.search(Path(path).name) is not None


# ---- snapshots -------------------------------------------------------------------------------------------
def snapshot_dir(run_dir: Path, step: int, ema: bool = False) -> Path:
    return Path(run_dir) / "snapshots" / f"{'ema_' if ema else ''}step_{step:06d}"


def list_snapshots(run_dir: Path, ema: bool = False) -> list[tuple[int, Path]]:
    """Complete snapshots only (config and weights present): an interrupted write is never a step."""
    found = []
    folder = Path(run_dir) / "snapshots"
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        m = SNAPSHOT_NAME.match(p.name)
        if m and bool(m.group(1)) == ema and (p / "config.json").is_file() and (p / WEIGHTS).is_file():
            found.append((int(m.group(2)), p))
    return found


def save_snapshot(model, run_dir: Path, step: int, ema: bool = False, extra=None) -> Path:
    """save_pretrained into a temporary folder (plus `extra(folder)`, e.g. a learned noise schedule), then
    rename it into place."""
    path = snapshot_dir(run_dir, step, ema)
    tmp = tmp_name(path)
    with no_space_is_one_line(path, cleanup=tmp):
        model.save_pretrained(tmp)  # ConceptUNet.save_config marks snapshot.after_config
        faults.point("snapshot.after_weights")
        if extra is not None:
            extra(tmp)
        faults.point("snapshot.before_rename")
        if path.exists():  # a resumed run re-reaches a step it had passed before the kill: same weights
            shutil.rmtree(path)
        os.replace(tmp, path)
    return path


# ---- atomic files ----------------------------------------------------------------------------------------
def atomic_write_bytes(path: Path, write, fault: str = "output") -> None:
    """Write through a temporary file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    tmp = tmp_name(path)
    with no_space_is_one_line(path, cleanup=tmp):
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            if f"{fault}.before_fsync" in faults.POINTS:
                faults.point(f"{fault}.before_fsync")
            os.fsync(f.fileno())
        faults.point(f"{fault}.before_rename")
        os.replace(tmp, path)


def atomic_write_text(path: Path, text: str, fault: str = "output") -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()), fault)


@contextmanager
def atomic_output(path: Path, fault: str = "output"):
    """For writers that take a path (PIL, matplotlib, torchvision): yields a temporary path with the
    target's suffix and renames it into place when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    with no_space_is_one_line(path, cleanup=tmp):
        yield tmp
        faults.point(f"{fault}.before_rename")
        os.replace(tmp, path)


def append_text(path: Path, text: str, fault: str) -> None:
    """Append to a log, first cutting a tail torn by an earlier kill (it would swallow the next line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with no_space_is_one_line(path):
        with open(path, "ab") as f:
            cut_torn_tail(f)
            data = text.encode()
            if f"{fault}.mid_append" in faults.POINTS and os.environ.get(faults.VARIABLE):
                f.write(data[: len(data) // 2])
                f.flush()
                faults.point(f"{fault}.mid_append")
                data = data[len(data) // 2:]
            f.write(data)


def cut_torn_tail(f) -> None:
    """`f` open for appending: if the file does not end in a newline, drop everything after the last one."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return
    with open(f.name, "rb") as r:
        r.seek(size - 1)
        if r.read(1) == b"\n":
            return
        r.seek(0)
        keep = r.read().rfind(b"\n") + 1
    f.truncate(keep)


@contextmanager
def no_space_is_one_line(path: Path, cleanup: Path | None = None):
    """A full disk stops the run with one line naming the path; the temporary file goes, the target stays."""
    try:
        yield
    except BaseException as e:
        if cleanup is not None and isinstance(e, Exception):
            shutil.rmtree(cleanup, ignore_errors=True) if Path(cleanup).is_dir() else Path(cleanup).unlink(True)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise UserError(f"no space left on the device while writing {path}; the previous "
                            f"{Path(path).name} (if any) is intact: free space and rerun the same command to "
                            "resume") from None
        raise


def recover(run_dir: Path) -> list[Path]:
    """Remove the leftovers of interrupted writes (temporary files and snapshot folders) of processes that
    are no longer running; a live writer's files are left alone. Returns what was removed."""
    removed = []
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return removed
    for p in run_dir.rglob("*.tmp*"):
        m = TEMPORARY.search(p.name)
        if m is None or (m.group(1) and _alive(int(m.group(1)))):  # no pid: an older version's leftover
            continue
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftovers from before a fork or an exec cannot be in flight
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---- checkpoints -----------------------------------------------------------------------------------------
def save_checkpoint(run_dir: Path, state: dict) -> None:
    atomic_write_bytes(Path(run_dir) / CHECKPOINT, lambda f: torch.save(state, f), fault="checkpoint")


def load_checkpoint(run_dir: Path, device) -> dict | None:
    """The resume state, loaded with weights_only=True (tensors and plain containers, no pickled code)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"{path}: cannot be loaded safely (it holds objects beyond tensors and plain containers, "
                        "which weights_only loading refuses); remove it to restart the run from step 0") from None
    except Exception as e:  # noqa: BLE001 (a truncated or corrupted file)
        raise UserError(f"{path}: cannot be loaded safely ({type(e).__name__}: {first_line(e, 100)}); remove it "
                        "to restart the run from step 0") from None


def write_status(run_dir: Path, state: str, step: int, total: int, error: str | None = None) -> None:
    atomic_write_text(Path(run_dir) / "status.json",
                      json.dumps({"state": state, "step": step, "total_steps": total, "error": error}),
                      fault="status")

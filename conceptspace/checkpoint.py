"""Run-dir files: full checkpoints for resume (atomic: write, then rename) and weight-only snapshots for
tracking (diffusers save_pretrained: config JSON + safetensors + the ConceptSpec inside the config)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

CHECKPOINT = "checkpoint.pt"


def snapshot_dir(run_dir: Path, step: int, ema: bool = False) -> Path:
    return Path(run_dir) / "snapshots" / f"{'ema_' if ema else ''}step_{step:06d}"


def list_snapshots(run_dir: Path, ema: bool = False) -> list[tuple[int, Path]]:
    prefix = "ema_step_" if ema else "step_"
    found = []
    for p in sorted((Path(run_dir) / "snapshots").glob(f"{prefix}*")):
        if p.name.startswith(prefix) and (p / "config.json").exists():
            found.append((int(p.name[len(prefix):]), p))
    return found


def save_snapshot(model, run_dir: Path, step: int, ema: bool = False) -> Path:
    path = snapshot_dir(run_dir, step, ema)
    tmp = path.with_name(path.name + ".tmp")
    model.save_pretrained(tmp)
    if path.exists():  # a resumed run re-reaches a step it had passed before the kill: same weights
        for f in tmp.iterdir():
            os.replace(f, path / f.name)
        tmp.rmdir()
    else:
        os.replace(tmp, path)
    return path


def atomic_write_bytes(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename over the target: a kill leaves
    either the old file or the new one, never a torn one."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def save_checkpoint(run_dir: Path, state: dict) -> None:
    atomic_write_bytes(Path(run_dir) / CHECKPOINT, lambda f: torch.save(state, f))


def load_checkpoint(run_dir: Path, device) -> dict | None:
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    return torch.load(path, map_location=device, weights_only=False)


def write_status(run_dir: Path, state: str, step: int, total: int, error: str | None = None) -> None:
    atomic_write_text(Path(run_dir) / "status.json",
                      json.dumps({"state": state, "step": step, "total_steps": total, "error": error}))

"""Reading a finished (or running) run dir back: its config, spec, process, snapshots and tracker."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from .checkpoint import list_snapshots
from .errors import UserError, first_line


def load_run_config(run_dir: Path):
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise UserError(f"RUN_DIR: {run_dir} has no config.yaml; allowed: a run dir written by `conceptspace train`")
    return OmegaConf.load(path)


def snapshots_or_error(run_dir: Path, ema: bool = False) -> list[tuple[int, Path]]:
    found = list_snapshots(run_dir, ema)
    if not found:
        kind = "EMA snapshots (train.ema.enabled)" if ema else "snapshots"
        raise UserError(f"RUN_DIR: {run_dir} has no {kind} under snapshots/ (complete ones; a run trained with "
                        "train.snapshots.keep=none keeps only train.snapshots.keep_steps)")
    return found


def load_snapshot(path: Path, device):
    """A snapshot's network; a truncated or corrupted one is named in one line."""
    from .model import ConceptUNet

    try:
        return ConceptUNet.from_pretrained(path, low_cpu_mem_usage=False).to(device)
    except Exception as e:  # noqa: BLE001: unparsable config.json, truncated safetensors, missing keys
        raise UserError(f"snapshot {path}: cannot be read ({type(e).__name__}: {first_line(e, 100)}); remove "
                        "that folder (the run's other snapshots stay usable)") from None


def device_from(name: str | None) -> torch.device:
    from .devices import resolve_device

    return resolve_device(name or "auto")

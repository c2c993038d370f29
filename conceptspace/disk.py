"""How much disk a run will take (printed before training) and which snapshots keep their weights.

`train.snapshots.keep`: all (every snapshot's weights) | tracked (every `keep_every`-th snapshot, the last,
and `keep_steps`) | none (only `keep_steps`; tracker rows and probe grids for every snapshot, like the
paper's sweeps, which saved samples and no weights)."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import UserError
from .schedule import snapshot_steps_of

KEEP = ("all", "tracked", "none")
ROW_BYTES = 420  # one tracker row of JSON (3 concepts)


def kept_steps(tc) -> set[int]:
    snap = tc.snapshots
    steps = snapshot_steps_of(tc)
    keep, every, extra = snap.get("keep", "all"), snap.get("keep_every", 1), list(snap.get("keep_steps") or [])
    if keep not in KEEP:
        raise UserError(f"train.snapshots.keep: got {keep!r}; allowed: {list(KEEP)}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise UserError(f"train.snapshots.keep_every: got {every!r}; allowed: an integer >= 1")
    bad = [s for s in extra if s not in steps]
    if bad:
        raise UserError(f"train.snapshots.keep_steps: {bad} are not snapshot steps; allowed: steps of the "
                        f"schedule (add them to train.snapshots.steps), e.g. {steps[:6]}")
    if keep == "all":
        return set(steps)
    if keep == "tracked":
        return {s for i, s in enumerate(steps) if i % every == 0} | {steps[-1]} | set(extra)
    return set(extra)


def estimate(cfg, n_params: int, n_cells: int) -> dict:
    """Bytes a finished run occupies: kept snapshots (fp32 safetensors, x2 with EMA), the checkpoint (model,
    AdamW's two moments, EMA), tracker rows and probe grids."""
    tc = cfg.train
    weights = 4 * n_params
    copies = 2 if tc.ema.enabled else 1
    n_snap = len(snapshot_steps_of(tc))
    n_kept = len(kept_steps(tc))
    tracked = cfg.tracker.enabled
    rows = n_snap * n_cells * cfg.tracker.n_probes * len(cfg.tracker.readouts) * ROW_BYTES if tracked else 0
    side = cfg.data.image_size + 1
    grids = n_snap * n_cells * side * min(cfg.tracker.n_probes, 16) * side * 3 // 2 if tracked else 0
    parts = {"snapshots": n_kept * copies * (weights + 16_000), "checkpoint": weights * (3 + copies - 1),
             "rows": rows, "grids": grids}
    return {"bytes": sum(parts.values()), "parts": parts, "kept": n_kept, "snapshots": n_snap}


def estimate_cfg(cfg) -> dict:
    """`estimate` for a composed config (builds its model once to count parameters)."""
    from .dryrun import spec_of_config
    from .model import build_model, count_parameters

    spec = spec_of_config(cfg)
    return estimate(cfg, count_parameters(build_model(cfg.model, spec, cfg.data.image_size)), len(spec.cells))


def describe(est: dict, folder: Path, jobs: int = 1) -> str:
    """One line: the run's (or jobs x run's) expected disk use, and a warning when the folder's file
    system has less free space."""
    total = est["bytes"] * jobs
    line = (f"disk: about {human(est['bytes'])} per run ({est['kept']} of {est['snapshots']} snapshots keep "
            f"weights, train.snapshots.keep; checkpoint {human(est['parts']['checkpoint'])})")
    if jobs > 1:
        line += f"; {jobs} jobs: about {human(total)}"
    free = free_bytes(folder)
    if free is not None and total > free:
        line += f" -- WARNING: more than the {human(free)} free under {folder}"
    return line


def free_bytes(folder: Path) -> int | None:
    folder = Path(folder).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"

"""When to snapshot: √-spaced steps (dense early, where the dynamics are fast), as the paper's
`linspace(sqrt(start), sqrt(end), n) ** 2`, plus the final step.

`train.snapshots` is either {count, start} (one √-spaced segment from start to the last step) or
{segments: [{count, start, end}, ...]} (several, e.g. the paper's mirun_1: 10 from 50 to 2,400, then 200
from 2,500 to 15,000), optionally with `steps: [...]` (explicit extra steps)."""

from __future__ import annotations

import numpy as np

from .errors import UserError


def sqrt_spaced(count: int, start: int, end: int, where: str) -> list[int]:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UserError(f"{where}.count: got {count!r}; allowed: an integer >= 1")
    if isinstance(start, bool) or not isinstance(start, int) or not 1 <= start <= end:
        raise UserError(f"{where}.start: got {start!r}; allowed: an integer in [1, {end}]")
    # truncated like the paper's `(...) ** 2).astype(int)` (500, 594, 696, ...), not rounded
    return [int(s) for s in np.floor(np.linspace(np.sqrt(start), np.sqrt(end), count) ** 2 + 1e-6)]


def snapshot_steps(total: int, count: int | None = None, start: int | None = None, segments=None,
                   steps=None) -> list[int]:
    out = set()
    if segments:
        for i, seg in enumerate(segments):
            seg = dict(seg)
            unknown = set(seg) - {"count", "start", "end"}
            if unknown:
                raise UserError(f"train.snapshots.segments[{i}]: unknown keys {sorted(unknown)}; allowed: "
                                "['count', 'start', 'end']")
            end = seg.get("end", total)
            if isinstance(end, bool) or not isinstance(end, int) or not 1 <= end <= total:
                raise UserError(f"train.snapshots.segments[{i}].end: got {end!r}; allowed: an integer in "
                                f"[1, train.steps={total}]")
            out |= set(sqrt_spaced(seg.get("count"), seg.get("start"), end, f"train.snapshots.segments[{i}]"))
    else:
        out |= set(sqrt_spaced(count, start, total, "train.snapshots"))
    for s in steps or []:
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= total:
            raise UserError(f"train.snapshots.steps: got {s!r}; allowed: integers in [1, train.steps={total}]")
        out.add(s)
    return sorted(out | {total})


def snapshot_steps_of(tc) -> list[int]:
    """The snapshot steps of a train config (`cfg.train`)."""
    snap = tc.snapshots
    return snapshot_steps(tc.steps, snap.get("count"), snap.get("start"), snap.get("segments"), snap.get("steps"))

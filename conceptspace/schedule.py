"""When to snapshot: √-spaced steps (dense early, where the dynamics are fast), as the paper's
`linspace(sqrt(start), sqrt(end), n) ** 2`, plus the final step."""

from __future__ import annotations

import numpy as np

from .errors import UserError


def snapshot_steps(total: int, count: int, start: int) -> list[int]:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UserError(f"train.snapshots.count: got {count!r}; allowed: an integer >= 1")
    if isinstance(start, bool) or not isinstance(start, int) or not 1 <= start <= total:
        raise UserError(f"train.snapshots.start: got {start!r}; allowed: an integer in [1, train.steps={total}]")
    steps = np.round(np.linspace(np.sqrt(start), np.sqrt(total), count) ** 2).astype(int)
    return sorted(set(int(s) for s in steps) | {total})

"""When things happen in a run: learning times (two rules), training convergence (two rules), the turn of
a trajectory. All take snapshot series; none reads files.

Learning-time rules (clarifications.md):
    paper     the paper's text: first snapshot where the smoothed accuracy reaches 0.8 (the headline);
    notebook  the authors' notebook: 0.9, the centre of the first 3-snapshot run above it (binary erosion).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .curves import SIGMA, Curve, gaussian_smooth
from .stats import NAIVE, select

RULES = {"paper": (0.8, 1), "notebook": (0.9, 3)}  # rule -> (threshold, erosion width in snapshots)
HEADLINE = "paper"


@dataclass(frozen=True)
class LearningTime:
    """step: when the rule is met (the last snapshot when censored: the true time is later).
    lo / hi: the same rule applied to the upper / lower Wilson bound of the smoothed counts, so the data
    are consistent with any time in [lo, hi]; hi None = the lower bound never clears the threshold."""

    step: int
    censored: bool
    lo: int | None
    hi: int | None
    rule: str

    @property
    def certain(self) -> bool:
        return not self.censored and self.hi is not None

    def to_dict(self) -> dict:
        return {"step": self.step, "censored": self.censored, "lo": self.lo, "hi": self.hi, "rule": self.rule,
                "certain": self.certain}


def first_run(steps, above, width: int) -> int | None:
    """The step at the centre of the first run of `width` consecutive True snapshots (None: no such run)."""
    streak = 0
    for i, ok in enumerate(above):
        streak = streak + 1 if ok else 0
        if streak == width:
            return int(steps[i - width // 2])
    return None


def learning_time(c: Curve, rule: str = HEADLINE, sigma: float = SIGMA) -> LearningTime:
    if rule not in RULES:
        raise ValueError(f"learning_time: rule {rule!r}; allowed: {list(RULES)}")
    if len(c) == 0:
        raise ValueError("learning_time: empty curve")
    threshold, width = RULES[rule]
    acc, lo, hi = c.smoothed(sigma)
    step = first_run(c.steps, acc >= threshold, width)
    return LearningTime(int(c.steps[-1]) if step is None else step, step is None,
                        first_run(c.steps, hi >= threshold, width), first_run(c.steps, lo >= threshold, width), rule)


def convergence_step(stats, spec, *, readout, rule: str = "corners", method=NAIVE, setting="",
                     tol: float = 0.01, acc: float = 0.95) -> tuple[int, bool]:
    """First snapshot at which the training cells have converged to their corners (paper §3.4, the star):
    corners  every training cell scores > 0.95 on every concept (the authors' 2x2x2 notebook; the default);
    msd      their mean squared distance to the corners is < 0.01 (the 2x2 notebook).
    (last step, True) when never reached."""
    train = {spec.cell_name(c) for c in spec.train_cells}
    by_step = defaultdict(list)
    for s in select(stats, readout=readout, method=method, setting=setting):
        if s.cell in train:
            by_step[s.step].append(s)
    if not by_step:
        raise ValueError(f"convergence_step: no training-cell stats for readout {readout!r}")
    for step in sorted(by_step):
        cells = by_step[step]
        if len(cells) < len(train):
            continue
        if rule == "corners":
            ok = all(a > acc for s in cells for a in s.accuracy.values())
        elif rule == "msd":
            ok = np.mean([sum((s.coords[c] - s.target[c]) ** 2 for c in spec.names) for s in cells]) < tol
        else:
            raise ValueError(f"convergence_step: rule {rule!r}; allowed: ['corners', 'msd']")
        if ok:
            return step, False
    return max(by_step), True


def turn_step(steps, coords: dict, sigma: float = 1.0, min_move_frac: float = 0.1,
              min_turn_deg: float = 30.0) -> int | None:
    """Step of the sharpest change of direction of a trajectory: smooth each coordinate (σ in snapshots),
    take successive displacement vectors, drop those shorter than min_move_frac × the longest (a pause
    has no direction), and return the snapshot where the later of the two consecutive kept moves with the
    largest angle between them starts. None when fewer than two moves remain, or when the net path before
    and after that snapshot bends by less than min_turn_deg (a straight path has no turn, only noise)."""
    steps = np.asarray(steps)
    order = np.argsort(steps, kind="stable")
    steps = steps[order]
    path = np.stack([gaussian_smooth(np.asarray(v, dtype=float)[order], sigma) for v in coords.values()], 1)
    moves = np.diff(path, axis=0)
    lengths = np.linalg.norm(moves, axis=1)
    if lengths.size < 2 or lengths.max() == 0:
        return None
    kept = np.flatnonzero(lengths >= min_move_frac * lengths.max())
    angles = [(angle(moves[a], moves[b]), b) for a, b in zip(kept[:-1], kept[1:])]
    if not angles:
        return None
    vertex = max(angles)[1]
    if angle(path[vertex] - path[0], path[-1] - path[vertex]) < np.radians(min_turn_deg):
        return None
    return int(steps[vertex])


def angle(u, v) -> float:
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    return 0.0 if nu == 0 or nv == 0 else float(np.arccos(np.clip(u @ v / (nu * nv), -1.0, 1.0)))

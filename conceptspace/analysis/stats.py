"""Tracker rows -> per-(readout, method, setting, step, cell) counts: the one table every metric reads.

A sample is correct on a concept when the readout found an object and (p > 0.5) == target; a sample without
an object (row field `found` false) is wrong on every concept and counted in its own `no_object` column.
Probes split into two halves by index parity (`half=0`: even, `half=1`: odd) for the split-half lead.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..concepts import ConceptSpec
from ..errors import UserError

JOINT = "joint"  # the accuracy series "every concept correct"
NAIVE = "naive"
NULL = "null"  # the control method: K settings that are all the naive prompt, on fresh seeds


@dataclass(frozen=True)
class CellStat:
    """The probe samples of one (readout, method, setting, step, cell)."""

    readout: str
    method: str
    setting: str
    step: int
    cell: str
    held_out: bool
    n: int
    coords: dict  # concept -> mean p over the samples with an object (the cell's concept-space coordinate,
                  # paper §3.2); 0.5 when no sample has one (a sample without an object is not a position)
    correct: dict  # concept or JOINT -> number of correct samples
    no_object: int  # samples in which the readout found no object
    target: dict  # concept -> the cell's value index (its corner)

    @property
    def accuracy(self) -> dict:
        return {k: v / self.n for k, v in self.correct.items() if k != JOINT}

    @property
    def joint(self) -> float:
        return self.correct[JOINT] / self.n

    def successes(self, series: str) -> int:
        return self.correct[series]


def cell_stats(rows: list[dict], spec: ConceptSpec, half: int | None = None) -> list[CellStat]:
    """Group rows by (readout, method, setting, step, cell), sorted by those keys (so by step within a cell).
    half: only probes whose index % 2 == half."""
    groups = defaultdict(list)
    for r in rows:
        if half is None or int(r["probe"]) % 2 == half:
            groups[(r["readout"], r["method"], r["setting"], int(r["step"]), r["cell"])].append(r)
    names = spec.names
    stats = []
    for (readout, method, setting, step, cell), group in sorted(groups.items()):
        if set(group[0]["p"]) != set(names):
            raise UserError(f"rows of cell {cell!r} have concepts {sorted(group[0]['p'])}; the spec has {names}")
        p = np.array([[r["p"][c] for c in names] for r in group], dtype=float)
        target = np.array([[r["target"][c] for c in names] for r in group], dtype=int)
        found = np.array([r.get("found", True) for r in group], dtype=bool)  # rows before the field: found
        correct = ((p > 0.5) == (target == 1)) & found[:, None]
        counts = dict(zip(names, correct.sum(0).tolist()))
        counts[JOINT] = int(correct.all(1).sum())
        coords = p[found].mean(0) if found.any() else np.full(len(names), 0.5)
        stats.append(CellStat(readout, method, setting, step, cell, bool(group[0]["held_out"]), len(group),
                              dict(zip(names, coords.tolist())), counts, int((~found).sum()),
                              dict(zip(names, target[0].tolist()))))
    return stats


def select(stats, *, readout, method=NAIVE, setting="", cell=None) -> list[CellStat]:
    return [s for s in stats if s.readout == readout and s.method == method and s.setting == setting
            and (cell is None or s.cell == cell)]


def settings_of(stats, *, readout, method, cell) -> list[str]:
    return sorted({s.setting for s in stats if s.readout == readout and s.method == method and s.cell == cell})


def methods_of(stats, *, readout, cells) -> list[str]:
    """Methods other than naive with rows for any of these cells, in a stable order."""
    return sorted({s.method for s in stats if s.readout == readout and s.cell in cells and s.method != NAIVE})


def pick_readout(stats) -> str | None:
    readouts = {s.readout for s in stats}
    return "analytic" if "analytic" in readouts else ("learned" if "learned" in readouts else None)


def trajectory(stats, cell, *, readout, method=NAIVE, setting=""):
    """(steps, {concept: mean p per step}) of one cell: its path through concept space."""
    chosen = select(stats, readout=readout, method=method, setting=setting, cell=cell)
    names = list(chosen[0].coords) if chosen else []
    return np.array([s.step for s in chosen]), {c: np.array([s.coords[c] for s in chosen]) for c in names}


def readout_agreement(rows, spec) -> dict | None:
    """Where two readouts read the same generated samples (same step, cell, probe, method, setting): the
    fraction of samples on which their per-concept decisions (p > 0.5) agree, per concept and jointly.
    None when the rows hold fewer than two readouts."""
    by_key = {}
    for r in rows:
        key = (r["step"], r["cell"], r["probe"], r["method"], r["setting"])
        by_key.setdefault(key, {})[r["readout"]] = r
    pairs = [v for v in by_key.values() if len(v) >= 2]
    if not pairs:
        return None
    names = sorted(pairs[0])[:2]
    agree = {c: 0 for c in spec.names}
    joint = 0
    for v in pairs:
        a, b = v[names[0]], v[names[1]]
        same = {c: (a["p"][c] > 0.5) == (b["p"][c] > 0.5) for c in spec.names}
        for c, ok in same.items():
            agree[c] += ok
        joint += all(same.values())
    n = len(pairs)
    return {"readouts": names, "samples": n, **{c: agree[c] / n for c in spec.names}, JOINT: joint / n}

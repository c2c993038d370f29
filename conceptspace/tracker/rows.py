"""The tracker's raw table: one JSON line per (snapshot step, cell, probe sample, readout, method, setting)
in `RUN_DIR/tracker/rows.jsonl`. Every aggregate, plot and report is derived from these rows.

Fields:
    step: int            training step of the snapshot
    cell: str            cell name from the ConceptSpec, e.g. "blue-small"
    held_out: bool       the cell was not in the training data
    probe: int           probe index within the cell (0..N-1); with `seed` it fixes the sampling noise
    seed: int            the probe's noise seed (the same at every snapshot)
    readout: str         "analytic" (pixels -> factors, synthetic shapes) or "learned" (CNN probe)
    method: str          "naive" (the cell's class-mean prompt) or an elicitation method
    setting: str         the method's setting, e.g. "strength=0.5" ("" for naive)
    p: {concept: float}  probability that the concept takes its value index 1 (blue, small, ...)
    coords: {concept: float}  continuous concept coordinate (0 at value 0's class mean, 1 at value 1's)
    target: {concept: int}    the cell's value index per concept
    found: bool          the readout found an object (analytic: a disc explains the image; learned: always
                         true). p and coords of a sample without one are chance (0.5), not evidence.
A sample is correct on a concept when it has an object and (p > 0.5) == target.
Rows written before `found` existed lack it; `read_rows` (and `append_rows`) fill it in as true.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

FIELDS = ("step", "cell", "held_out", "probe", "seed", "readout", "method", "setting", "p", "coords", "target",
          "found")
DEFAULTS = {"found": True}  # for rows from before a field existed


def append_rows(path: Path, rows: list[dict]) -> None:
    from ..checkpoint import append_text

    if rows:
        append_text(path, "".join(json.dumps({k: r[k] if k in r else DEFAULTS[k] for k in FIELDS}) + "\n"
                                  for r in rows), fault="rows")


def read_rows(path: Path) -> list[dict]:
    """The rows at `path`, or at `path`.gz (archived runs, e.g. docs/results/laptop/) when only that exists."""
    path = Path(path)
    packed = path.with_name(path.name + ".gz")
    if not path.exists() and not packed.exists():
        return []
    rows = []
    with (open(path) if path.exists() else gzip.open(packed, "rt")) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill mid-write: ignore the torn tail
                    continue
                for k, v in DEFAULTS.items():
                    row.setdefault(k, v)
                rows.append(row)
    return rows

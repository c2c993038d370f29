"""Fault injection, the way trusted storage is tested: end the process at a named point of a write.

    CONCEPTSPACE_FAULT=snapshot.after_config        exit the first time that point is reached
    CONCEPTSPACE_FAULT=rows.mid_append@3            ... the third time

The process ends with `os._exit(EXIT_CODE)`: no cleanup, no `finally`, no flush — as close to `kill -9` as
a test can aim. Unset (the default), `point()` costs one environment lookup.
"""

from __future__ import annotations

import os

VARIABLE = "CONCEPTSPACE_FAULT"
EXIT_CODE = 75
POINTS = (  # every write of a run dir, in the order a training run first reaches them
    "run_files.before_rename",   # config.yaml, concept_spec.json, provenance.json
    "status.before_rename",
    "metrics.mid_append",        # half of a metrics.jsonl line written
    "snapshot.after_config",     # save_pretrained has written config.json, not the weights
    "snapshot.after_weights",    # weights written, the VDM schedule not yet
    "snapshot.before_rename",    # complete in its temporary folder
    "rows.mid_append",           # half of the tracker's (or elicit's) rows written
    "grid.before_rename",        # the tracker's probe grid PNG
    "checkpoint.before_fsync",
    "checkpoint.before_rename",
    "truncate.before_rename",    # resume drops log lines written after the checkpoint
    "output.before_rename",      # every file written by elicit, report, sample and aggregate
)
_counts: dict[str, int] = {}


def point(name: str) -> None:
    spec = os.environ.get(VARIABLE)
    if not spec:
        return
    target, _, nth = spec.partition("@")
    if target not in POINTS:
        raise ValueError(f"{VARIABLE}: unknown point {target!r}; allowed: {list(POINTS)}")
    if name != target:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == int(nth or 1):
        os._exit(EXIT_CODE)

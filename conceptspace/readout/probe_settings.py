"""Checks of the `probe` config group (configs/probe/default.yaml), run before anything is written."""

from __future__ import annotations

import dataclasses
from pathlib import PurePath

from conceptspace.concepts import ConceptError
from conceptspace.errors import UserError

from .probe_data import SEPARATION_KNOBS

_MISSING = object()


def check_probe(cfg) -> None:
    probe = cfg.get("probe") if hasattr(cfg, "get") else None
    if probe is None:
        raise UserError("probe: config group missing; add '- probe: default' to the defaults of configs/config.yaml")
    _integer(probe, "steps", 1)
    _integer(probe, "batch_size", 1)
    _integer(probe, "log_every", 0)
    _number(probe, "lr", "a number > 0", lambda v: v > 0)
    _number(probe, "weight_decay", "a number >= 0", lambda v: v >= 0)
    clip = _get(probe, "grad_clip")
    if clip is not None:
        _number(probe, "grad_clip", "null (off) or a number > 0", lambda v: v > 0)
    groups = _integer(probe, "norm_groups", 1)
    channels = _get(probe, "channels")
    if not _is_list(channels) or not 1 <= len(channels) <= 6 or \
            any(not _is_int(c) or c < 1 or c % groups for c in channels):
        raise UserError(f"probe.channels: got {_show(channels)}; allowed: 1 to 6 positive integers, each a multiple "
                        f"of probe.norm_groups={groups}")
    subdir = _get(probe, "subdir")
    if not isinstance(subdir, str) or not subdir or PurePath(subdir).is_absolute() or ".." in PurePath(subdir).parts:
        raise UserError(f"probe.subdir: got {subdir!r}; allowed: a folder name inside the run dir (e.g. 'probe')")
    evaluation = _get(probe, "eval")
    _integer(evaluation, "per_cell", 1, "probe.eval")
    _number(evaluation, "min_accuracy", "a number in [0, 1]", lambda v: 0 <= v <= 1, "probe.eval")
    for knob in SEPARATION_KNOBS.values():
        _separations(_get(probe, "ranges"), knob, "probe.ranges", pair=True)
        _separations(evaluation, knob, "probe.eval", pair=False)


def _separations(node, knob: str, prefix: str, pair: bool) -> None:
    values = _get(node, knob, prefix)
    allowed = "[low, high] with low <= high" if pair else "a non-empty list"
    if not _is_list(values) or (len(values) != 2 if pair else not values) or \
            any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values) or \
            (pair and values[0] > values[1]):
        raise UserError(f"{prefix}.{knob}: got {_show(values)}; allowed: {allowed} of generator values")
    from synthetic_shapes import ShapesConfig

    for v in values:  # the generator's own range check, e.g. sep_col in (0, 0.8]
        try:
            dataclasses.replace(ShapesConfig(), **{knob: v})
        except ConceptError as e:
            allowed_values = str(e).split("allowed: ", 1)[-1]
            raise UserError(f"{prefix}.{knob}: got {v!r}; allowed: {allowed_values}") from None


def _get(node, key: str, prefix: str = "probe"):
    value = node.get(key, _MISSING) if hasattr(node, "get") else _MISSING
    if value is _MISSING:
        raise UserError(f"{prefix}.{key}: missing; see configs/probe/default.yaml for the allowed settings")
    return value


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_list(v) -> bool:
    return hasattr(v, "__len__") and not isinstance(v, (str, dict)) and not hasattr(v, "keys")


def _show(v):
    return list(v) if _is_list(v) else repr(v)


def _integer(node, key: str, minimum: int, prefix: str = "probe") -> int:
    value = _get(node, key, prefix)
    if not _is_int(value) or value < minimum:
        raise UserError(f"{prefix}.{key}: got {value!r}; allowed: an integer >= {minimum}")
    return value


def _number(node, key: str, allowed: str, ok, prefix: str = "probe") -> float:
    value = _get(node, key, prefix)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
        raise UserError(f"{prefix}.{key}: got {value!r}; allowed: {allowed}")
    return value

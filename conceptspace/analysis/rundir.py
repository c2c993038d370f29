"""One run directory -> its summary: every metric of the run, from `RUN_DIR/tracker/rows.jsonl` and its
config. The only module of the analysis package that reads a run's files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from ..concepts import ConceptSpec
from ..errors import UserError
from ..tracker.rows import read_rows
from . import claims, lead
from .curves import curve
from .stats import JOINT, NAIVE, cell_stats, methods_of, pick_readout, select, trajectory
from .times import RULES, convergence_step, learning_time, turn_step

DELTA_KEYS = {"color": "sep_col", "size": "sep_size", "bg": "sep_bg"}  # concept -> its signal knob (data.*)
SIGNAL_PAIRS, SIGNAL_SEED = 256, 0  # one seed for every run: runs of one Δ setting share one signal value


def read_config(run_dir: Path) -> dict:
    path = Path(run_dir) / "config.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def read_status(run_dir: Path) -> dict:
    path = Path(run_dir) / "status.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):  # absent, or cut mid-write by a kill
        return {"state": "unknown", "step": None, "total_steps": None, "error": None}


def load_spec(run_dir: Path, config: dict | None = None) -> ConceptSpec:
    """The run's saved ConceptSpec, else (a run killed before saving it) the one its shapes config defines."""
    path = Path(run_dir) / "concept_spec.json"
    if path.exists():
        return ConceptSpec.from_dict(json.loads(path.read_text()))
    data = (config if config is not None else read_config(run_dir)).get("data") or {}
    if data.get("source") == "shapes":
        from synthetic_shapes import ShapesConfig

        return ShapesConfig.from_cfg(data).spec
    raise UserError(f"{run_dir}: no concept_spec.json and no shapes data config to rebuild it from")


_SIGNALS: dict = {}


def concept_signal_of(data: dict) -> dict | None:
    """synthetic_shapes.signal.concept_signal of a shapes run's training data (None for other sources)."""
    if data.get("source") != "shapes":
        return None
    key = json.dumps(data, sort_keys=True, default=str)
    if key not in _SIGNALS:
        from synthetic_shapes import ShapesConfig, ShapesWorld
        from synthetic_shapes.signal import concept_signal

        _SIGNALS[key] = concept_signal(ShapesWorld(ShapesConfig.from_cfg(data)), n=SIGNAL_PAIRS, seed=SIGNAL_SEED)
    return _SIGNALS[key]


def train_accuracy(stats, spec, readout) -> tuple[np.ndarray, np.ndarray]:
    """(steps, mean over training cells of their joint accuracy): the training curve of the paper's panel."""
    names = [spec.cell_name(c) for c in spec.train_cells]
    curves = [curve(stats, c, JOINT, readout=readout) for c in names]
    curves = [c for c in curves if len(c)]
    if not curves:
        return np.array([]), np.array([])
    steps = curves[0].steps
    same = [c for c in curves if np.array_equal(c.steps, steps)]
    return steps, np.mean([c.accuracy for c in same], axis=0)


def summarise_run(run_dir, rows_file: str = "rows.jsonl") -> dict:
    """Every metric of one run (readout 'analytic' if present, else 'learned'). A run without rows (just
    started, or failed early) gets empty results, so sweeps can still list it. `rows_file`: another file under
    RUN_DIR/tracker/, e.g. one `conceptspace track --rows` wrote with other tracker settings."""
    run_dir = Path(run_dir)
    config, status = read_config(run_dir), read_status(run_dir)
    spec = load_spec(run_dir, config)
    rows = read_rows(run_dir / "tracker" / rows_file)
    by_half = {None: cell_stats(rows, spec), 0: cell_stats(rows, spec, half=0), 1: cell_stats(rows, spec, half=1)}
    stats = by_half[None]
    readout = pick_readout(stats)
    data = config.get("data") or {}
    summary = {"run_dir": str(run_dir), "name": config.get("name"), "seed": config.get("seed"),
               "state": status.get("state", "unknown"), "status": status, "spec": spec, "readout": readout,
               "config": config, "deltas": {c: data.get(k) for c, k in DELTA_KEYS.items() if c in spec.names},
               "signal": concept_signal_of(data), "last_step": None, "learning_times": {}, "convergence": {},
               "turn": {}, "trajectories": {}, "memorisation": {}, "leads": {}, "no_object": {}, "panel": {},
               "stats": stats}
    naive = select(stats, readout=readout) if readout else []
    if not naive:
        return summary
    summary["last_step"] = max(s.step for s in naive)
    for rule in ("corners", "msd"):
        try:
            summary["convergence"][rule] = convergence_step(naive, spec, readout=readout, rule=rule)
        except ValueError:  # no training-cell rows in this run
            pass
    held_names = [spec.cell_name(c) for c in spec.held_out]
    methods = methods_of(stats, readout=readout, cells=held_names)
    train_steps, train_acc = train_accuracy(stats, spec, readout)
    for cell in spec.held_out:
        name = spec.cell_name(cell)
        mine = select(naive, readout=readout, cell=name)
        if not mine:
            continue
        summary["learning_times"][name] = {
            series: {rule: learning_time(curve(naive, name, series, readout=readout), rule) for rule in RULES}
            for series in [*spec.names, JOINT]}
        steps, coords = trajectory(naive, name, readout=readout)
        summary["trajectories"][name] = (steps, coords)
        summary["turn"][name] = turn_step(steps, coords)
        summary["no_object"][name] = float(sum(s.no_object for s in mine) / sum(s.n for s in mine))
        target = dict(zip(spec.names, (float(v) for v in cell)))
        corner = claims.memorised_cell(spec, cell, summary["signal"]["normalised"]) if summary["signal"] else None
        if corner is not None:
            summary["memorisation"][name] = {"corner": spec.cell_name(corner), **claims.memorisation(
                steps, coords, dict(zip(spec.names, (float(v) for v in corner))), target)}
        summary["leads"][name] = lead.leads(by_half, name, methods, readout=readout)
        score = by_half[lead.SCORE_HALF]
        elicited = {m: (ls["split"].setting, curve(score, name, JOINT, readout=readout, method=m,
                                                   setting=ls["split"].setting))
                    for m, ls in summary["leads"][name].items() if "split" in ls}
        summary["panel"][name] = {"train": (train_steps, train_acc),
                                  "naive": curve(score, name, JOINT, readout=readout, method=NAIVE),
                                  "elicited": elicited}
    return summary


def headline(summary: dict, threshold_rule: str = "paper") -> list[str]:
    """The run in words, one line per held-out cell (the report's first screen)."""
    lines = []
    for cell, times in summary["learning_times"].items():
        t = times[JOINT][threshold_rule]
        naive = f"naive prompting reaches {RULES[threshold_rule][0]} at step {t.step:,}" if not t.censored else \
            f"naive prompting does not reach {RULES[threshold_rule][0]} by step {t.step:,}"
        parts = [f"{cell}: {naive}"]
        mem = summary["memorisation"].get(cell)
        if mem:
            parts.append(f"trajectory: {mem['verdict']} (closest to {mem['corner']} at step {mem['approach_step']:,}"
                         + (f", turn at {mem['turn_step']:,}" if mem["turn_step"] is not None else "") + ")")
        null = summary["leads"].get(cell, {}).get("null", {}).get("split")
        for method, ls in summary["leads"].get(cell, {}).items():
            s = ls.get("split")
            if method == "null" or s is None:
                continue
            when = (f"reaches it at step {s.elicited.step:,}" if not s.elicited.censored else "never reaches it") + (
                f" (naive at {s.naive.step:,} on the same scoring half)" if not s.naive.censored else
                f" (naive not by {s.naive.step:,} on the same scoring half)")
            value = "n/a" if s.lead is None else \
                f"{s.lead:,} steps" + ("" if s.bound == "exact" else f" ({s.bound} bound)")
            parts.append(f"{method} ({s.setting}) {when}: lead {value}"
                         + (f" (null control {null.lead if null.lead is not None else 'n/a'})" if null else ""))
        lines.append("; ".join(parts))
    return lines

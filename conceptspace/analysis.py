"""Pure analysis of tracker rows (paper_setup.md §3.2-3.4): concept-space coordinates, accuracies, learning
times, training convergence, the turn of a held-out trajectory, the lead of elicitation over naive prompting.

Everything is derived from `RUN_DIR/tracker/rows.jsonl`; `summarise_run` is the only function that reads files.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from .concepts import ConceptSpec
from .errors import UserError
from .tracker.rows import read_rows

JOINT = "joint"  # the accuracy series "every concept correct"
THRESHOLDS = (0.8, 0.9)  # 0.8: the paper's text; 0.9: the paper's code (analysis_concept_space.ipynb)
NAIVE = "naive"


@dataclass(frozen=True)
class CellStat:
    """Aggregate of the probe samples of one (readout, method, setting, step, cell)."""

    readout: str
    method: str
    setting: str
    step: int
    cell: str
    held_out: bool
    n: int
    coords: dict  # concept -> mean p (the cell's concept-space coordinate, paper §3.2)
    accuracy: dict  # concept -> fraction of samples with (p > 0.5) == target
    joint: float  # fraction of samples correct on every concept
    target: dict  # concept -> the cell's value index (its corner)


def cell_stats(rows: list[dict], spec: ConceptSpec) -> list[CellStat]:
    """Group rows by (readout, method, setting, step, cell); sorted by those keys (so by step within a cell)."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["readout"], r["method"], r["setting"], int(r["step"]), r["cell"])].append(r)
    names = spec.names
    stats = []
    for (readout, method, setting, step, cell), group in sorted(groups.items()):
        if set(group[0]["p"]) != set(names):
            raise UserError(f"rows of cell {cell!r} have concepts {sorted(group[0]['p'])}; the spec has {names}")
        p = np.array([[r["p"][c] for c in names] for r in group], dtype=float)
        target = np.array([[r["target"][c] for c in names] for r in group], dtype=int)
        correct = (p > 0.5) == (target == 1)
        stats.append(CellStat(readout, method, setting, step, cell, bool(group[0]["held_out"]), len(group),
                              dict(zip(names, p.mean(0).tolist())), dict(zip(names, correct.mean(0).tolist())),
                              float(correct.all(1).mean()), dict(zip(names, target[0].tolist()))))
    return stats


def select(stats, *, readout, method=NAIVE, setting="", cell=None) -> list[CellStat]:
    return [s for s in stats if s.readout == readout and s.method == method and s.setting == setting
            and (cell is None or s.cell == cell)]


def accuracy_curve(stats, cell, series, *, readout, method=NAIVE, setting=""):
    """(steps, accuracy) of one cell; series is a concept name or JOINT."""
    chosen = select(stats, readout=readout, method=method, setting=setting, cell=cell)
    values = [s.joint if series == JOINT else s.accuracy[series] for s in chosen]
    return np.array([s.step for s in chosen]), np.array(values, dtype=float)


def best_setting_curve(stats, cell, series, *, readout, method):
    """Per step, the best accuracy over a method's settings (the paper's max over prompts / (α, β) grid)."""
    best = {}
    for s in stats:
        if s.readout == readout and s.method == method and s.cell == cell:
            value = s.joint if series == JOINT else s.accuracy[series]
            best[s.step] = max(best.get(s.step, -1.0), value)
    steps = sorted(best)
    return np.array(steps), np.array([best[t] for t in steps], dtype=float)


def trajectory(stats, cell, *, readout, method=NAIVE, setting=""):
    """(steps, {concept: mean p per step}) of one cell: its path through concept space."""
    chosen = select(stats, readout=readout, method=method, setting=setting, cell=cell)
    names = list(chosen[0].coords) if chosen else []
    return np.array([s.step for s in chosen]), {c: np.array([s.coords[c] for s in chosen]) for c in names}


def gaussian_smooth(values, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """1-D Gaussian filter with half-sample reflection at the ends: scipy.ndimage.gaussian_filter1d's default
    (mode='reflect'), so numbers match the paper's notebooks without a scipy dependency."""
    values = np.asarray(values, dtype=float)
    if sigma <= 0 or values.size == 0:
        return values.copy()
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, radius, mode="symmetric")  # numpy 'symmetric' == scipy 'reflect'
    return np.convolve(padded, kernel, mode="valid")


def learning_time(steps, acc, threshold: float, sigma: float = 1.5, run: int = 3) -> tuple[int, bool]:
    """First step at which the smoothed accuracy (σ in snapshots) is ≥ threshold for `run` consecutive
    snapshots; returns the FIRST step of that run (the paper's code takes the run's centre, one snapshot
    later for run=3). Never crossing -> (last step, censored=True): the true time is later than that step,
    not equal to it. A run still open at the last snapshot (< `run` snapshots long) does not count yet."""
    steps, acc = np.asarray(steps), np.asarray(acc, dtype=float)
    if steps.size == 0 or steps.shape != acc.shape:
        raise ValueError(f"learning_time: need equal-length non-empty steps/acc, got {steps.shape}, {acc.shape}")
    order = np.argsort(steps, kind="stable")
    steps, above = steps[order], gaussian_smooth(acc[order], sigma) >= threshold
    streak = 0
    for i, ok in enumerate(above):
        streak = streak + 1 if ok else 0
        if streak == run:
            return int(steps[i - run + 1]), False
    return int(steps[-1]), True


def training_convergence_step(stats, spec: ConceptSpec, *, readout, method=NAIVE, setting="",
                              tol: float = 0.01) -> tuple[int, bool]:
    """First step where the training cells' mean squared distance to their corners is < tol (paper §3.4,
    the star). (last step, True) when never reached."""
    train = {spec.cell_name(c) for c in spec.train_cells}
    by_step = defaultdict(list)
    for s in select(stats, readout=readout, method=method, setting=setting):
        if s.cell in train:
            by_step[s.step].append(sum((s.coords[c] - s.target[c]) ** 2 for c in spec.names))
    if not by_step:
        raise ValueError(f"training_convergence_step: no training-cell stats for readout {readout!r}")
    for step in sorted(by_step):
        if len(by_step[step]) == len(train) and np.mean(by_step[step]) < tol:
            return step, False
    return max(by_step), True


def turn_step(steps, coords: dict, sigma: float = 1.0, min_move_frac: float = 0.1,
              min_turn_deg: float = 30.0) -> int | None:
    """Step of the sharpest change of direction of a trajectory: smooth each coordinate (σ in snapshots),
    take successive displacement vectors, drop those shorter than min_move_frac × the longest (a pause
    has no direction), and return the snapshot where the later of the two consecutive kept moves with the
    largest angle between them starts (after a pause at a corner: where the new direction sets in).
    None when fewer than two moves remain, or when the net path before and after that snapshot bends by
    less than min_turn_deg (a straight path has no turn, only noise)."""
    steps = np.asarray(steps)
    order = np.argsort(steps, kind="stable")
    steps = steps[order]
    path = np.stack([gaussian_smooth(np.asarray(v, dtype=float)[order], sigma) for v in coords.values()], 1)
    moves = np.diff(path, axis=0)
    lengths = np.linalg.norm(moves, axis=1)
    if lengths.size < 2 or lengths.max() == 0:
        return None
    kept = np.flatnonzero(lengths >= min_move_frac * lengths.max())
    angles = [(_angle(moves[a], moves[b]), b) for a, b in zip(kept[:-1], kept[1:])]
    if not angles:
        return None
    vertex = max(angles)[1]
    if _angle(path[vertex] - path[0], path[-1] - path[vertex]) < np.radians(min_turn_deg):
        return None
    return int(steps[vertex])


def _angle(u, v) -> float:
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    return 0.0 if nu == 0 or nv == 0 else float(np.arccos(np.clip(u @ v / (nu * nv), -1.0, 1.0)))


def elicitation_lead(naive_curve, method_curve, threshold: float = 0.8, sigma: float = 1.5, run: int = 3) -> dict:
    """How many steps earlier a method reaches `threshold` than naive prompting. Curves are (steps, acc).
    bound says how to read `lead` under censoring: exact; lower (naive never crossed: lead ≥ value);
    upper (the method never crossed: lead ≤ value); unknown (neither crossed: lead is None)."""
    naive_step, naive_cens = learning_time(*naive_curve, threshold, sigma, run)
    method_step, method_cens = learning_time(*method_curve, threshold, sigma, run)
    bound = {(False, False): "exact", (True, False): "lower", (False, True): "upper", (True, True): "unknown"}
    return {"naive_step": naive_step, "naive_censored": naive_cens, "method_step": method_step,
            "method_censored": method_cens, "lead": None if naive_cens and method_cens else naive_step - method_step,
            "bound": bound[(naive_cens, method_cens)]}


# ---- run directories --------------------------------------------------------------------------------------
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


def pick_readout(stats) -> str | None:
    readouts = {s.readout for s in stats}
    return "analytic" if "analytic" in readouts else ("learned" if "learned" in readouts else None)


def summarise_run(run_dir) -> dict:
    """Learning times (per held-out cell, per concept + joint, both thresholds), training convergence and
    turn steps of a run, from readout 'analytic' if present else 'learned', method 'naive'. A run without
    rows (just started, or failed early) gets empty results, so sweeps can still list it."""
    run_dir = Path(run_dir)
    config, status = read_config(run_dir), read_status(run_dir)
    spec = load_spec(run_dir, config)
    stats = cell_stats(read_rows(run_dir / "tracker" / "rows.jsonl"), spec)
    readout = pick_readout(stats)
    summary = {"run_dir": str(run_dir), "name": config.get("name"), "seed": config.get("seed"),
               "state": status.get("state", "unknown"), "status": status, "spec": spec, "readout": readout,
               "last_step": None, "learning_times": {}, "convergence": None, "turn": {}, "trajectories": {}}
    naive = select(stats, readout=readout) if readout else []
    if not naive:
        return summary
    summary["last_step"] = max(s.step for s in naive)
    for cell in (spec.cell_name(c) for c in spec.held_out):
        if not select(naive, readout=readout, cell=cell):
            continue
        times = {}
        for series in [*spec.names, JOINT]:
            steps, acc = accuracy_curve(naive, cell, series, readout=readout)
            times[series] = {t: learning_time(steps, acc, t) for t in THRESHOLDS}
        summary["learning_times"][cell] = times
        steps, coords = trajectory(naive, cell, readout=readout)
        summary["turn"][cell] = turn_step(steps, coords)
        summary["trajectories"][cell] = (steps, coords)
    try:
        summary["convergence"] = training_convergence_step(naive, spec, readout=readout)
    except ValueError:  # no training-cell rows in this run
        pass
    return summary


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


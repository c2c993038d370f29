"""`conceptspace aggregate SWEEP_DIR [--out DIR]`: learning time vs concept signal across a sweep.

Every directory under SWEEP_DIR holding a config.yaml is a run. Writes (default SWEEP_DIR/aggregate/):
runs.csv (one row per run, unfinished and failed ones included with their state), learning_time_vs_signal.png,
trajectories.png and a self-contained sweep.html. Figures use finished runs only (a running run's censored
time says nothing yet); the page lists the others by name.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize

from . import analysis, plots
from .errors import UserError
from .report import Raw, esc, img_tag, page, table, time_cell

DELTA_KEYS = {"color": "sep_col", "size": "sep_size", "bg": "sep_bg"}  # concept -> its signal knob (data.*)
SIGNAL_PAIRS, SIGNAL_SEED = 256, 0  # one seed for every run: runs of one Δ setting share one signal value


def find_runs(sweep_dir: Path, skip: Path) -> list[Path]:
    """Directories with a config.yaml, except hidden ones (Hydra's .hydra/config.yaml) and the output dir."""
    runs = set()
    for path in sweep_dir.rglob("config.yaml"):
        rel = path.parent.relative_to(sweep_dir)
        if not any(part.startswith(".") for part in rel.parts) and skip not in [path.parent, *path.parents]:
            runs.add(path.parent)
    return sorted(runs)


def concept_signal_of(data: dict, cache: dict) -> dict | None:
    """synthetic_shapes.signal.concept_signal of a shapes run's data config (None for other sources)."""
    if data.get("source") != "shapes":
        return None
    key = json.dumps(data, sort_keys=True, default=str)
    if key not in cache:
        from synthetic_shapes import ShapesConfig, ShapesWorld
        from synthetic_shapes.signal import concept_signal

        cache[key] = concept_signal(ShapesWorld(ShapesConfig.from_cfg(data)), n=SIGNAL_PAIRS, seed=SIGNAL_SEED)
    return cache[key]


def run_record(run_dir: Path, sweep_dir: Path, cache: dict) -> dict:
    """One CSV row (flat) plus the summary it came from (under '_summary', not written)."""
    config, status = analysis.read_config(run_dir), analysis.read_status(run_dir)
    data = config.get("data") or {}
    record = {"run": str(run_dir.relative_to(sweep_dir)) or ".", "name": config.get("name"),
              "seed": config.get("seed"), "state": status.get("state", "unknown"), "step": status.get("step"),
              "total_steps": status.get("total_steps"), "error": status.get("error")}
    try:
        summary = analysis.summarise_run(run_dir)
    except UserError as e:  # e.g. no spec yet: still listed, with the reason
        record["error"] = record["error"] or str(e)
        return {**record, "_summary": None}
    spec = summary["spec"]
    record |= {DELTA_KEYS[c]: data.get(DELTA_KEYS[c]) for c in spec.names if c in DELTA_KEYS}
    signal = concept_signal_of(data, cache)
    for c in spec.names:
        record[f"signal_raw_{c}"] = signal["raw"][c] if signal else None
        record[f"signal_norm_{c}"] = signal["normalised"][c] if signal else None
    record["readout"], record["last_step"] = summary["readout"], summary["last_step"]
    for cell, times in summary["learning_times"].items():
        for series, by_threshold in times.items():
            for t, (step, censored) in by_threshold.items():
                record[f"T{t}_{cell}_{series}"], record[f"T{t}_{cell}_{series}_censored"] = step, censored
    conv = summary["convergence"]
    record["convergence_step"], record["convergence_censored"] = conv if conv else (None, None)
    for cell, step in summary["turn"].items():
        record[f"turn_step_{cell}"] = step
    return {**record, "_summary": summary}


def write_csv(records: list[dict], path: Path) -> Path:
    columns = list(dict.fromkeys(k for r in records for k in r if not k.startswith("_")))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows([{k: r.get(k) for k in columns} for r in records])
    return path


def delta_group(record: dict) -> tuple:
    return tuple((k, record[k]) for k in DELTA_KEYS.values() if record.get(k) is not None)


def learning_time_figure(records: list[dict], spec):
    """Rows: thresholds; left: T vs the concept's own Δ, right: T vs its measured normalised signal.
    Mean ± std over seeds per Δ setting; a hollow marker = some seed censored (the mean is then a lower
    bound); '^' = the individual censored seeds, drawn at the last step."""
    fig, axes = plots.plt.subplots(len(analysis.THRESHOLDS), 2, figsize=(11, 4.2 * len(analysis.THRESHOLDS)),
                                   squeeze=False)
    series = [(spec.cell_name(c), n) for c in spec.held_out for n in spec.names]
    groups = defaultdict(list)
    for r in records:
        groups[delta_group(r)].append(r)
    for row, t in zip(axes, analysis.THRESHOLDS):
        for k, (cell, concept) in enumerate(series):
            colour, key = plots.SERIES_COLOURS(k % 10), f"T{t}_{cell}_{concept}"
            for ax, xkey in zip(row, (DELTA_KEYS.get(concept), f"signal_norm_{concept}")):
                pts = [([r[xkey] for r in g], [r[key] for r in g], [r[key + "_censored"] for r in g])
                       for g in groups.values() if xkey and all(r.get(xkey) is not None and key in r for r in g)]
                for i, (xs, ts, cens) in enumerate(sorted(pts)):
                    ax.errorbar(np.mean(xs), np.mean(ts), yerr=np.std(ts), fmt="o", color=colour, capsize=3,
                                mfc="white" if any(cens) else colour, label=f"{cell}: {concept}" if i == 0 else None)
                    ax.plot([x for x, c in zip(xs, cens) if c], [y for y, c in zip(ts, cens) if c], "^",
                            color=colour, ms=7, alpha=0.7)
        row[0].set(xlabel="Δ of the concept (data.sep_*)", ylabel=f"learning time @ {t} (steps)")
        row[1].set(xlabel="normalised concept signal (measured)", ylabel=f"learning time @ {t} (steps)")
        for ax in row:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, title="hollow / ^ = censored", title_fontsize=7)
    fig.suptitle("learning time of held-out cells vs concept signal (mean ± std over seeds)")
    fig.tight_layout()
    return fig


def trajectories_figure(records: list[dict], spec):
    """Held-out trajectories of every run, coloured by the Δ knob that varies most across the sweep."""
    varied = max(DELTA_KEYS.values(), key=lambda k: len({r.get(k) for r in records if r.get(k) is not None}))
    values = [r[varied] for r in records if r.get(varied) is not None] or [0.0]
    norm, cmap = Normalize(min(values), max(values) + (1e-9 if min(values) == max(values) else 0)), \
        colormaps["gnuplot"]
    pairs = plots.concept_pairs(spec)
    fig, axes = plots.panel_grid(len(pairs))
    for ax, (x, y) in zip(axes, pairs):
        plots.label_corners(ax, spec, x, y)
        for r in records:
            for _cell, (_steps, coords) in r["_summary"]["trajectories"].items():
                if x not in coords or y not in coords:  # a run of another concept set
                    continue
                colour = cmap(norm(r[varied])) if r.get(varied) is not None else "0.5"
                ax.plot(coords[x], coords[y], "-", color=colour, lw=1.2, alpha=0.8)
                ax.plot(coords[x][-1], coords[y][-1], "o", color=colour, ms=4)
    fig.colorbar(plots.plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, label=f"data.{varied}", shrink=0.8)
    fig.suptitle("held-out trajectories (naive prompt), one line per run; dot = last snapshot")
    return fig


def runs_table(records: list[dict]) -> str:
    keys = [k for k in dict.fromkeys(k for r in records for k in r)
            if not k.startswith("_") and not k.endswith("_censored") and k not in ("error", "name", "readout")]
    rows = []
    for r in records:
        row = []
        for k in keys:
            if r.get(k + "_censored") is not None:  # learning times and convergence
                row.append(time_cell(r[k], r[k + "_censored"]))
            else:
                v = r.get(k)
                row.append(f"{v:.4g}" if isinstance(v, float) else v)
        rows.append(row)
    return table(keys, rows)


def aggregate(sweep_dir: Path, out_dir: Path | None = None) -> dict[str, Path]:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserError(f"sweep dir {sweep_dir} does not exist")
    out_dir = Path(out_dir) if out_dir is not None else sweep_dir / "aggregate"
    runs = find_runs(sweep_dir, out_dir)
    if not runs:
        raise UserError(f"{sweep_dir}: no runs found (no directory below it holds a config.yaml)")
    cache: dict = {}
    records = [run_record(r, sweep_dir, cache) for r in runs]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": write_csv(records, out_dir / "runs.csv")}
    finished = [r for r in records if r["state"] == "done" and r["_summary"] and r["_summary"]["learning_times"]]
    unfinished = [r for r in records if r not in finished]
    body = [f"<p>{len(records)} runs under {esc(sweep_dir)}: {len(finished)} finished with rows (used in the "
            f"figures), {len(unfinished)} not (listed below, excluded from the figures).</p>"]
    if finished:
        spec = finished[0]["_summary"]["spec"]
        paths["learning_time"] = plots.save_figure(learning_time_figure(finished, spec),
                                                   out_dir / "learning_time_vs_signal.png")
        paths["trajectories"] = plots.save_figure(trajectories_figure(finished, spec), out_dir / "trajectories.png")
        body += ["<h2>Learning time vs concept signal</h2>", img_tag(paths["learning_time"]),
                 "<h2>Held-out trajectories</h2>", img_tag(paths["trajectories"])]
    if unfinished:
        body += ["<h2>Unfinished, failed or empty runs</h2>",
                 table(["run", "state", "step", "total steps", "error"],
                       [[r["run"], Raw(f"<b>{esc(r['state'])}</b>"), r["step"], r["total_steps"], r["error"]]
                        for r in unfinished])]
    body += ["<h2>All runs</h2><p>Censored learning times read '&gt; last snapshot'.</p>", runs_table(records)]
    paths["html"] = out_dir / "sweep.html"
    paths["html"].write_text(page(f"conceptspace sweep: {sweep_dir.name}", body))
    return paths


def main(argv: list[str]) -> int:
    args, out = list(argv), None
    if "--out" in args:
        i = args.index("--out")
        if i + 1 >= len(args):
            raise UserError("--out: needs a directory")
        out = Path(args.pop(i + 1))
        args.pop(i)
    if len(args) != 1 or args[0].startswith("-"):
        raise UserError(f"usage: conceptspace aggregate SWEEP_DIR [--out DIR] (got {argv})")
    paths = aggregate(Path(args[0]), out)
    print("\n".join(f"wrote {p}" for p in paths.values()))
    return 0

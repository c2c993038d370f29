"""One run's figures: trajectory_figure (concept space), accuracy_figure (the live dashboard),
elicitation_figure (naive vs each method's split-half setting, per-setting curves), sample_strip_figure (the
probe grids at the marked steps) and write_run_figures (the stats-only ones on disk). Shared basics: figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from PIL import Image

from . import stats as analysis
from .curves import Curve, best_setting_curve, curve
from .figures import (
    ACC_YLIM,
    METHOD_STYLES,
    SERIES_COLOURS,
    SMOOTHED,
    THRESHOLD,
    concept_pairs,
    label_corners,
    lead_text,
    legend_below,
    mark_at,
    method_colour,
    no_data,
    plt,
    sample_steps,
    samples_gif,
    save_figure,
    setting_key,
    smooth_path,
    threshold_line,
    time_marker,
    time_text,
)
from .stats import JOINT, NAIVE, NULL
from .times import RULES, learning_time


# ---- one run: concept space ----------------------------------------------------------------------------------
def trajectory_figure(stats, spec, *, readout, method=NAIVE, setting="", convergence_step=None, title=""):
    """Every cell's path through concept space (one panel per concept pair): the paths smoothed along
    snapshots (σ = 2) with the raw per-snapshot means faint behind; training cells dashed, held-out cells
    solid with their points coloured by step; a star on held-out paths at the training-convergence step."""
    chosen = analysis.select(stats, readout=readout, method=method, setting=setting)
    cells = [spec.cell_name(c) for c in spec.cells]
    steps_all = [s.step for s in chosen] or [0, 1]
    norm = Normalize(min(steps_all), max(steps_all))
    pairs = concept_pairs(spec)
    n = len(pairs)
    cols = min(n, 3)
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(4.6 * cols + 1.4, 4.9 * -(-n // cols)), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    axes = list(axes.flat[:n])
    scatter = None
    handles = {}
    for ax, (x, y) in zip(axes, pairs):
        label_corners(ax, spec, x, y)
        for k, cell in enumerate(cells):
            steps, coords = analysis.trajectory(chosen, cell, readout=readout, method=method, setting=setting)
            if not steps.size:
                continue
            held = spec.is_held_out(cell)
            colour = SERIES_COLOURS(k % 10)
            ax.plot(coords[x], coords[y], "-" if held else "--", color=colour, lw=0.6, alpha=0.3, zorder=2)
            ax.scatter(coords[x], coords[y], color=colour, s=6, alpha=0.3, zorder=2, lw=0)
            path = smooth_path(coords, [x, y])
            (line,) = ax.plot(path[:, 0], path[:, 1], "-" if held else "--", color=colour, lw=2.2 if held else 1.4,
                              zorder=3)
            handles[f"{cell} ({'held out' if held else 'training'})"] = line
            if held:
                scatter = ax.scatter(path[:, 0], path[:, 1], c=steps, cmap="viridis", norm=norm, s=16, zorder=4,
                                     edgecolors=colour, linewidths=0.5)
                at = mark_at(steps, convergence_step)
                if at is not None:
                    (star,) = ax.plot(path[at, 0], path[at, 1], "*", color="red", ms=16, mec="k", zorder=5)
                    handles[f"training converged (step {convergence_step:,})"] = star
    handles["raw snapshot means"] = Line2D([], [], color="0.5", lw=0.6, alpha=0.5, marker=".", ms=4)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    if scatter is not None:
        fig.colorbar(scatter, ax=axes, label="training step (held-out points)", shrink=0.8)
    what = f"{method}{' ' + setting if setting else ''}"
    fig.suptitle(title or f"concept-space trajectories, one run ({what} prompts, {readout} readout, {SMOOTHED})",
                 fontsize=10)
    return fig


def accuracy_figure(stats, spec, *, readout, methods=(NAIVE,), series=None, title=""):
    """Accuracy vs step of each held-out cell (the live dashboard): one colour per series (concepts + joint),
    one line style per method (a method with several settings shows its best setting per step), smoothed
    (σ = 2) with the raw values faint. Threshold lines 0.8 / 0.9."""
    series = list(series or [*spec.names, JOINT])
    held = [spec.cell_name(c) for c in spec.held_out]
    cols = min(len(held), 3)
    fig, axes = plt.subplots(-(-len(held) // cols), cols, figsize=(5.2 * cols, 4.6 * -(-len(held) // cols)),
                             squeeze=False, layout="constrained")
    for ax, cell in zip(axes.flat, held):
        for m, method in enumerate(methods):
            for k, name in enumerate(series):
                c = best_setting_curve(stats, cell, name, readout=readout, method=method)
                if not len(c):
                    continue
                colour, style = SERIES_COLOURS(k % 10), METHOD_STYLES[m % len(METHOD_STYLES)]
                ax.plot(c.steps, c.accuracy, ".", color=colour, ms=3, alpha=0.35)
                ax.plot(c.steps, c.smoothed()[0], style, color=colour,
                        label=f"{name} ({method})" if len(methods) > 1 else name)
        for t in sorted({thr for thr, _ in RULES.values()}):
            ax.axhline(t, color="0.6", ls=":", lw=0.8)
        ax.set(title=f"{cell} (held out)", xlabel="training step", ylabel="accuracy", ylim=(-0.03, 1.03))
        legend_below(ax, ncol=min(len(series), 4))
    for ax in list(axes.flat)[len(held):]:
        ax.set_visible(False)
    fig.suptitle(title or f"held-out accuracy ({readout} readout, {SMOOTHED}; dots: raw)", fontsize=10)
    return fig


# ---- one run: elicitation ------------------------------------------------------------------------------------
def band(ax, c: Curve, colour, label, *, lw=2.0, ls="-", alpha_band=0.15, raw=True, zorder=3):
    acc, lo, hi = c.smoothed()
    ax.fill_between(c.steps, lo, hi, color=colour, alpha=alpha_band, lw=0, zorder=zorder - 1)
    if raw:
        ax.plot(c.steps, c.accuracy, ".", color=colour, ms=3, alpha=0.35, zorder=zorder - 1)
    ax.plot(c.steps, acc, ls, color=colour, lw=lw, label=label, zorder=zorder)


def lead_arrow(ax, naive_t, method_t, colour, text):
    """A double arrow from the method's learning time to naive's, above the data (y > 1)."""
    if naive_t is None or method_t is None:
        return
    y = 1.08
    ax.annotate("", (naive_t.step, y), (method_t.step, y),
                arrowprops=dict(arrowstyle="<->", color=colour, lw=1.3, shrinkA=0, shrinkB=0))
    for t in (naive_t, method_t):
        ax.plot([t.step, t.step], [THRESHOLD, y], ":", color=colour, lw=0.8, zorder=1)
    ax.text((naive_t.step + method_t.step) / 2, y + 0.015, text, ha="center", va="bottom", fontsize=7.5,
            color=colour)


def per_setting_method(summary, cells) -> str | None:
    """The method whose per-setting curves get their own panel: over-prompting (the paper's per-prompt
    curves), else the first non-null method with several settings."""
    stats, readout = summary["stats"], summary["readout"]
    methods = analysis.methods_of(stats, readout=readout, cells=cells) if readout else []
    with_settings = [m for m in methods if m != NULL and any(
        len(analysis.settings_of(stats, readout=readout, method=m, cell=c)) > 1 for c in cells)]
    if "overprompt" in with_settings:
        return "overprompt"
    return with_settings[0] if with_settings else None


def elicitation_figure(summary: dict, cells):
    """Per held-out cell (one row each), from a rundir.summarise_run summary:
    left: naive prompting and each method's split-half setting (chosen on the even probes) scored on the odd
    probes, smoothed (σ = 2) with 95% Wilson bands of the smoothed counts; each method's max over settings
    per snapshot (the paper's estimate, biased upward) faint dashed; the 0.8 threshold; learning times as
    dots on it (hollow: never reached, drawn at the last step); the headline lead as an arrow above the data.
    right: the per-setting curves of over-prompting (all probes), smoothed, the selected setting thick.
    The null control is grey. Works with naive rows only."""
    cells = list(cells)
    stats, readout = summary["stats"], summary["readout"]
    per_setting = per_setting_method(summary, cells)
    ncols = 2 if per_setting else 1
    nrows = max(len(cells), 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.0 * ncols, 5.6 * nrows), squeeze=False, layout="constrained")
    for row, cell in zip(axes, cells or [None]):
        ax = row[0]
        panel = summary["panel"].get(cell) if cell else None
        if not panel or not len(panel["naive"]):
            no_data(ax, f"no naive rows for {cell}")
            for extra in row[1:]:
                extra.set_visible(False)
            continue
        leads = summary["leads"].get(cell, {})
        order = [m for m in sorted(panel["elicited"], key=lambda m: (m == NULL, m))]
        naive = panel["naive"]
        t_naive = learning_time(naive)
        band(ax, naive, "black", f"naive prompting: T {time_text(t_naive)}", lw=2.2, zorder=5)
        time_marker(ax, t_naive, "black", zorder=8, ms=8)
        best = None
        for m in order:
            setting, c = panel["elicited"][m]
            if not len(c):
                continue
            colour = method_colour(m, order)
            split = leads.get(m, {}).get("split")
            band(ax, c, colour, f"{m} {setting} (chosen on even probes): T "
                 f"{time_text(split.elicited) if split else '?'}; {lead_text(split)}"
                 + (" — the control" if m == NULL else ""), lw=1.8 if m != NULL else 1.4,
                 ls="-" if m != NULL else "-.", zorder=4 if m != NULL else 3,
                 alpha_band=0.12 if m != NULL else 0.06, raw=m != NULL)
            if split is not None:
                time_marker(ax, split.elicited, colour, ms=7 if m != NULL else 5)
                if m != NULL and split.lead is not None and (best is None or split.lead > best[1].lead):
                    best = (m, split)
            mx = leads.get(m, {}).get("max")
            b = best_setting_curve(stats, cell, JOINT, readout=readout, method=m)
            if len(b):
                ax.plot(b.steps, b.smoothed()[0], "--", color=colour, lw=1.0, alpha=0.55, zorder=2,
                        label=f"{m}: max over settings per snapshot, all probes (paper's estimate): {lead_text(mx)}")
        if best is not None:
            m, split = best
            lead_arrow(ax, split.naive, split.elicited, method_colour(m, order), f"{m}: {lead_text(split)}")
        threshold_line(ax)
        n = int(np.min(naive.trials)) if len(naive) else 0
        ax.set(xlabel="training step", ylabel="joint accuracy (every concept right)", ylim=ACC_YLIM,
               title=f"{cell} (held out): scoring half, {n} odd probes per snapshot")
        legend_below(ax)
        if per_setting:
            setting_panel(row[1], summary, cell, per_setting)
    seed = summary.get("seed")
    only = "" if any(summary["panel"].get(c, {}).get("elicited") for c in cells) else \
        " — naive prompting only (no elicitation rows)"
    fig.suptitle(f"elicitation of the held-out cell{'s' if len(cells) > 1 else ''}{only}: one run"
                 f"{f' (seed {seed})' if seed is not None else ''}, {readout} readout, {SMOOTHED}; "
                 "bands: 95% Wilson of the smoothed counts", fontsize=10)
    return fig


def setting_panel(ax, summary, cell, method):
    stats, readout = summary["stats"], summary["readout"]
    settings = sorted(analysis.settings_of(stats, readout=readout, method=method, cell=cell), key=setting_key)
    if not settings:
        no_data(ax, f"no {method} rows for {cell}")
        return
    panel = summary["panel"].get(cell, {})
    selected = panel.get("elicited", {}).get(method, (None, None))[0]
    cmap = plt.get_cmap("viridis")
    n = 0
    for i, s in enumerate(settings):
        c = curve(stats, cell, JOINT, readout=readout, method=method, setting=s)
        n = int(np.min(c.trials)) if len(c) else n
        colour = cmap(0.8 * i / max(len(settings) - 1, 1))
        chosen = s == selected
        ax.plot(c.steps, c.smoothed()[0], "-", color=colour, lw=2.6 if chosen else 1.3, zorder=4 if chosen else 3,
                label=f"{s}{' (selected on even probes)' if chosen else ''}: T {time_text(learning_time(c))}")
    naive = curve(stats, cell, JOINT, readout=readout)
    if len(naive):
        ax.plot(naive.steps, naive.smoothed()[0], "-", color="black", lw=1.2, alpha=0.8, zorder=2,
                label=f"naive prompting: T {time_text(learning_time(naive))}")
    threshold_line(ax)
    ax.set(xlabel="training step", ylabel="joint accuracy (every concept right)", ylim=ACC_YLIM,
           title=f"{cell}: {method} per setting, all {n} probes per snapshot")
    legend_below(ax, ncol=2 if len(settings) > 3 else 1)


# ---- one run: probe samples ---------------------------------------------------------------------------------
def choose_sample_steps(available: list[int], marks: dict) -> dict[int, list[str]]:
    """{step: labels}: for each mark (label -> step) the first available snapshot at or after it, plus the
    last snapshot, never the first (noise) unless it is all there is; mid-run ones up to 3 frames."""
    if not available:
        return {}
    chosen: dict[int, list[str]] = {}
    pool = available[1:] or available
    for label, step in marks.items():
        if step is None:
            continue
        at = next((s for s in pool if s >= step), pool[-1])
        chosen.setdefault(at, []).append(label)
    chosen.setdefault(available[-1], []).append("last snapshot")
    for frac in (0.5, 0.25, 0.75):  # at least 3 frames where there are that many besides the first
        if len(chosen) >= 3:
            break
        step = pool[int(frac * (len(pool) - 1))]
        if step not in chosen:
            chosen[step] = ["mid-run"]
    return dict(sorted(chosen.items()))


def sample_strip_figure(run_dir: Path, marks: dict | None = None, spec=None):
    """The probe grids (tracker/samples/step_*.png: one row per cell) of the last snapshot and of the
    snapshots at or after the marked steps (label -> step: convergence, turn, naive learning time...),
    stacked top to bottom in step order, each titled with its step and why it is shown. None without grids."""
    found = sample_steps(run_dir)
    if not found:
        return None
    paths = dict(found)
    chosen = choose_sample_steps([s for s, _ in found], marks or {})
    images = []
    for step in chosen:
        with Image.open(paths[step]) as image:
            images.append(np.asarray(image.convert("RGB")))
    h, w = images[0].shape[:2]
    width = 9.0
    fig, axes = plt.subplots(len(images), 1, figsize=(width, len(images) * (width * h / w + 0.45) + 0.5),
                             squeeze=False, layout="constrained")
    cells = [spec.cell_name(c) for c in spec.cells] if spec is not None else []
    for ax, (step, labels), image in zip(axes[:, 0], chosen.items(), images):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(f"step {step:,}: {', '.join(labels)}", fontsize=9, loc="left")
        ax.set_xticks([])
        rows = len(cells)
        if rows and image.shape[0] > rows:
            pitch = image.shape[0] / rows
            ax.set_yticks([(i + 0.5) * pitch for i in range(rows)], cells, fontsize=7)
        else:
            ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
    fig.suptitle(f"probe samples (naive prompts, fixed noise seeds; one row per cell): {len(images)} of "
                 f"{len(found)} snapshots", fontsize=10)
    return fig


# ---- one run: the figures on disk ----------------------------------------------------------------------------
def write_run_figures(run_dir: Path, stats, spec, *, readout, convergence_step=None) -> dict[str, Path]:
    """The stats-only figures of a run under RUN_DIR/figures/ (trajectory, accuracy, samples.gif); the
    report adds the summary-based ones (report.run_figures). Returns {figure name: path}."""
    figures = Path(run_dir) / "figures"
    paths = {
        "trajectory": save_figure(trajectory_figure(stats, spec, readout=readout,
                                                    convergence_step=convergence_step),
                                  figures / "trajectory.png"),
        "accuracy": save_figure(accuracy_figure(stats, spec, readout=readout), figures / "accuracy.png"),
    }
    gif = samples_gif(run_dir)
    if gif is not None:
        paths["samples"] = gif
    return paths


# ---- one run: naive vs elicited samples ----------------------------------------------------------------------
def contrast_step(summary: dict, cell: str, method: str, setting: str) -> int | None:
    """The snapshot where the method's setting beats naive prompting most (smoothed joint accuracy, all
    probes: a picture, not a score), among snapshots that both have rows."""
    stats, readout = summary["stats"], summary["readout"]
    naive = curve(stats, cell, JOINT, readout=readout)
    elicited = curve(stats, cell, JOINT, readout=readout, method=method, setting=setting)
    steps = sorted(set(naive.steps.tolist()) & set(elicited.steps.tolist()))
    if not steps:
        return None
    n, e = (dict(zip(c.steps.tolist(), c.smoothed()[0])) for c in (naive, elicited))
    return max(steps, key=lambda s: e[s] - n[s])


def contrast_rows(run_dir: Path, summary: dict, cell: str) -> tuple[int, str, list[tuple[str, np.ndarray]]] | None:
    """(step, the method the step was chosen for, [(label, image row)]): the held-out cell's naive probe row
    (the tracker's grid) and each elicitation method's split-chosen setting (elicit/samples/), same noise
    seeds, at the step where over-prompting (else the first method) beats naive prompting most. None without
    the grids."""
    from ..elicit.command import grid_path

    chosen = {m: ls["split"].setting for m, ls in summary["leads"].get(cell, {}).items()
              if m != NULL and ls.get("split") is not None and ls["split"].setting is not None}
    if not chosen:
        return None
    lead_method = "overprompt" if "overprompt" in chosen else next(iter(chosen))
    step = contrast_step(summary, cell, lead_method, chosen[lead_method])
    naive_grid = dict(sample_steps(run_dir)).get(step)
    if step is None or naive_grid is None:
        return None
    spec, stats, readout = summary["spec"], summary["stats"], summary["readout"]
    with Image.open(naive_grid) as image:
        grid = np.asarray(image.convert("RGB"))
    cells = [spec.cell_name(c) for c in spec.cells]
    pitch = grid.shape[0] // len(cells)
    i = cells.index(cell)

    def accuracy(method=NAIVE, setting=""):
        s = analysis.select(stats, readout=readout, method=method, setting=setting, cell=cell)
        s = [x for x in s if x.step == step]
        return f"{s[0].successes(JOINT) / s[0].n:.2f} of {s[0].n}" if s else "n/a"

    rows = [(f"naive prompt: joint accuracy {accuracy()}", grid[i * pitch:(i + 1) * pitch])]
    for method, setting in sorted(chosen.items(), key=lambda ms: ms[0] != lead_method):
        path = grid_path(run_dir, step, cell, method, setting)
        if path.exists():
            with Image.open(path) as image:
                rows.append((f"{method} {setting} (chosen on the even probes): joint accuracy "
                             f"{accuracy(method, setting)}", np.asarray(image.convert("RGB"))))
    return step, lead_method, rows


def contrast_figure(run_dir: Path, summary: dict, cell: str):
    """Probe rows of naive prompting vs each elicitation method, one above the other. None without grids."""
    found = contrast_rows(run_dir, summary, cell)
    if found is None or len(found[2]) < 2:  # naive alone: nothing to compare it with
        return None
    step, lead_method, rows = found
    width = max(r.shape[1] for _, r in rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(9.0, len(rows) * (9.0 * rows[0][1].shape[0] / width + 0.4)
                                                     + 0.6), squeeze=False, layout="constrained")
    for ax, (label, image) in zip(axes[:, 0], rows):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(label, fontsize=9, loc="left")
        ax.set_axis_off()
    fig.suptitle(f"{cell} at step {step:,}, where {lead_method} beats naive prompting most (smoothed): the "
                 "first probes of each, the same noise seed in each column", fontsize=10)
    return fig

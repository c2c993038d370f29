"""The figures (matplotlib), drawn from the analysis package's stats and summaries; every `*_figure` returns a
Figure (for W&B pass it to `figure_to_uint8`, for files to `save_figure`).

One run:        trajectory_figure (concept space), elicitation_figure (naive vs each method's split-half
                setting, per-setting curves), accuracy_figure (the live dashboard), sample_strip_figure.
Many runs:      hidden_capability_figure (the paper's panel per condition), condition_trajectories_figure,
                f1_figure (learning time vs Δ), f4_figure (distance at convergence vs learning time).
Every curve is smoothed along snapshots with the paper's Gaussian (curves.gaussian_smooth, σ = 2 snapshots);
accuracy bands are 95% Wilson intervals of the smoothed counts (Curve.smoothed). Legends sit outside the axes.
"""

from __future__ import annotations

import itertools
import re
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap, Normalize  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from . import stats as analysis  # noqa: E402
from .curves import SIGMA, Curve, best_setting_curve, curve, gaussian_smooth  # noqa: E402
from .stats import JOINT, NAIVE, NULL  # noqa: E402
from .times import HEADLINE, RULES, learning_time  # noqa: E402

SERIES_COLOURS = plt.get_cmap("tab10")
METHOD_STYLES = ("-", "--", ":", "-.")
METHOD_COLOURS = {NAIVE: "black", NULL: "0.55", "overprompt": "tab:blue", "intervention": "tab:red",
                  "cfg": "tab:green"}
SPARE_COLOURS = ("tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
THRESHOLD = RULES[HEADLINE][0]  # 0.8: the headline rule's threshold
SMOOTHED = f"smoothed σ = {SIGMA:g} snapshots"
DELTA_CMAP = ListedColormap(plt.get_cmap("gnuplot")(np.linspace(0.1, 0.8, 256)))  # the paper's Δ colouring
ACC_YLIM = (-0.03, 1.16)  # room above 1.0 for annotations that must not sit on the data


# ---- small shared helpers ----------------------------------------------------------------------------------
def method_colour(method: str, order: list[str] | None = None):
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    others = [m for m in (order or [method]) if m not in METHOD_COLOURS]
    return SPARE_COLOURS[(others.index(method) if method in others else 0) % len(SPARE_COLOURS)]


def setting_key(setting: str):
    """Sort settings by the numbers in them ("offset=0.1" < "offset=0.45"), then by text."""
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", setting or "")], setting or ""


def fmt_step(step) -> str:
    return "?" if step is None else f"{int(step):,}"


def delta_text(deltas: dict) -> str:
    return ", ".join(f"Δ{c} {v:g}" if isinstance(v, (int, float)) else f"Δ{c} {v}" for c, v in deltas.items())


def seeds_text(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def lead_text(x) -> str:
    """A Lead in words: its value, its bound and its interval."""
    if x is None:
        return "lead n/a"
    if x.lead is None:
        return f"no lead (neither reaches {THRESHOLD:g})"
    interval = f" [{fmt_step(x.interval[0])}, {fmt_step(x.interval[1])}]"
    if x.bound == "lower":
        return f"lead ≥ {x.lead:,} (naive never reaches {THRESHOLD:g})"
    if x.bound == "upper":
        return f"lead < {x.lead:,} (never reaches {THRESHOLD:g})"
    return f"lead {x.lead:,} steps{interval}"


def time_text(t) -> str:
    return f"> {t.step:,}" if t.censored else f"{t.step:,}"


def smooth_path(coords: dict, names) -> np.ndarray:
    return np.stack([gaussian_smooth(np.asarray(coords[c], float)) for c in names], 1)


def on_grid(series: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-run (steps, values) onto the steps of the run with the most snapshots: (steps, (runs, steps)) with
    NaN outside a run's own range (runs of one condition normally share their snapshot schedule)."""
    series = [(np.asarray(s, float), np.asarray(v, float)) for s, v in series if len(s)]
    if not series:
        return np.array([]), np.zeros((0, 0))
    ref = max(series, key=lambda sv: len(sv[0]))[0]
    out = np.full((len(series), len(ref)), np.nan)
    for i, (s, v) in enumerate(series):
        order = np.argsort(s)
        s, v = s[order], v[order]
        inside = (ref >= s[0]) & (ref <= s[-1])
        out[i, inside] = np.interp(ref[inside], s, v)
    return ref, out


def threshold_line(ax, label=True):
    ax.axhline(THRESHOLD, color="0.45", ls=":", lw=1, zorder=1,
               label=f"threshold {THRESHOLD:g} (paper rule)" if label else None)


def time_marker(ax, t, colour, zorder=6, ms=7):
    """A learning time on the threshold line: filled when crossed, hollow at the last step when censored."""
    ax.plot(t.step, THRESHOLD, "o", ms=ms, mec=colour, mfc="white" if t.censored else colour, mew=1.6,
            zorder=zorder)


def legend_below(ax, ncol=1, fontsize=7.5, **kw):
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol, fontsize=fontsize,
                  frameon=False, **kw)


def no_data(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set(xticks=[], yticks=[])


def concept_pairs(spec) -> list[tuple[str, str]]:
    """Panels of a concept-space plot: the one plane for 2 concepts, every pair for k > 2."""
    return list(itertools.combinations(spec.names, 2)) if len(spec.names) > 1 else [(spec.names[0],) * 2]


def panel_grid(n: int, size: float = 4.2):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 1.2, size * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def label_corners(ax, spec, x: str, y: str):
    """Name the four corners of the (x, y) plane with the two concepts' values (a cell name for k = 2)."""
    for i, j in itertools.product(range(2), range(2)):
        name = f"{spec.concept(x).values[i]}-{spec.concept(y).values[j]}"
        ax.annotate(name, (i, j), textcoords="offset points", xytext=(0, 7 if j else -14), ha="center",
                    fontsize=8, color="0.3")
        ax.plot(i, j, "s", color="0.6", ms=5, zorder=1)
    ax.set(xlim=(-0.12, 1.12), ylim=(-0.12, 1.12), xlabel=f"P({spec.concept(x).values[1]})  ({x})",
           ylabel=f"P({spec.concept(y).values[1]})  ({y})")
    ax.set_aspect("equal")


def mark_at(steps, step) -> int | None:
    """Index of the last snapshot ≤ step (None when step is before the first)."""
    if step is None or not len(steps):
        return None
    at = int(np.searchsorted(np.asarray(steps), step, side="right")) - 1
    return at if at >= 0 else None


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


# ---- many runs: the paper's hidden-capability panel ------------------------------------------------------------
def best_method(leads: dict) -> str | None:
    """The non-null method with the largest median split-half lead (leads: a condition's leads of one cell)."""
    scored = [(v["split"]["median"], m) for m, v in leads.items()
              if m != NULL and v.get("split") and v["split"]["median"] is not None]
    if scored:
        return max(scored)[1]
    rest = [m for m in leads if m != NULL]
    return rest[0] if rest else None


def mean_band(ax, series, colour, label, ls="-", lw=2.0):
    steps, values = on_grid(series)
    if not len(steps):
        return
    with warnings.catch_warnings():  # a snapshot no seed has is NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, lo, hi = np.nanmean(values, 0), np.nanmin(values, 0), np.nanmax(values, 0)
    if len(series) > 1:
        ax.fill_between(steps, lo, hi, color=colour, alpha=0.18, lw=0)
    ax.plot(steps, mean, ls, color=colour, lw=lw, label=label)


def hidden_capability_figure(conditions: list[dict]):
    """One panel per condition (summarise_condition outputs, each with its run summaries under 'runs') and
    held-out cell, as the paper's hidden-capability figure: the training cells' joint accuracy (dashed),
    naive prompting of the held-out cell, and the best elicitation (the method with the largest median
    split-half lead, each seed at its own selected setting), on the scoring half; mean over seeds with a
    min–max band over seeds, every seed smoothed (σ = 2)."""
    panels = []
    for cond in conditions:
        runs = cond.get("runs") or []
        cells = list(cond.get("leads") or {}) or sorted({c for r in runs for c in r.get("panel", {})})
        for cell in cells:
            panels.append((cond, cell))
    n = max(len(panels), 1)
    cols = min(n, 3)
    nrows = -(-n // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.6 * cols, 5.2 * nrows), squeeze=False, layout="constrained")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    if not panels:
        axes.flat[0].set_visible(True)
        no_data(axes.flat[0], "no conditions with held-out rows")
    total, handles, banded = 0, {}, False
    for ax, (cond, cell) in zip(axes.flat, panels):
        runs = [r for r in cond.get("runs") or [] if cell in r.get("panel", {})]
        total += len(runs)
        banded |= len(runs) > 1
        train = [(r["panel"][cell]["train"][0], gaussian_smooth(r["panel"][cell]["train"][1])) for r in runs]
        mean_band(ax, train, "tab:gray", "training cells: mean joint accuracy (all probes)", ls="--", lw=1.6)
        naive = [(r["panel"][cell]["naive"].steps, r["panel"][cell]["naive"].smoothed()[0]) for r in runs
                 if len(r["panel"][cell]["naive"])]
        mean_band(ax, naive, "black", "naive prompting of the held-out cell")
        nt = cond.get("learning_times", {}).get(cell, {}).get(JOINT, {}).get(HEADLINE)
        lines = []
        if nt and nt["n"]:
            lines.append((f"naive: median T {'>' if nt['median_censored'] else ''}{nt['median']:,.0f}, "
                          f"{nt['n_crossed']}/{nt['n']} seeds reach {THRESHOLD:g}", "black"))
        leads = cond.get("leads", {}).get(cell, {})
        m = best_method(leads)
        if m is not None:
            el = []
            for r in runs:
                _, c = r["panel"][cell]["elicited"].get(m, (None, None))
                if c is not None and len(c):
                    el.append((c.steps, c.smoothed()[0]))
            mean_band(ax, el, method_colour(m), f"best elicitation: {m} (split-half setting per seed)")
            st, null = leads[m]["split"], leads.get(NULL, {}).get("split")
            med = "n/a (no seed with a known lead)" if st["median"] is None else f"{st['median']:,.0f} steps"
            verdict = leads[m].get("verdict")
            lines.append((f"{m}: median lead {med}, > 0 in {st['n_positive']}/{st['n']} seeds"
                          + (f" (F3 {verdict})" if verdict else ""), method_colour(m)))
            if null and null["median"] is not None:
                lines.append((f"null control: median lead {null['median']:,.0f} [{null['min']:,.0f}, "
                              f"{null['max']:,.0f}]", METHOD_COLOURS[NULL]))
        for i, (text, colour) in enumerate(lines):  # above the data (y > 1): never on a curve
            ax.text(0.02, 0.985 - 0.045 * i, text, transform=ax.transAxes, va="top", fontsize=7.5, color=colour)
        threshold_line(ax)
        ax.set(xlabel="training step", ylabel="joint accuracy", ylim=(-0.03, 1.03 + 0.055 * max(len(lines), 1)),
               title=f"{delta_text(cond.get('deltas') or {})} — {cell}, {seeds_text(len(runs))}")
        handles |= dict(zip(*reversed(ax.get_legend_handles_labels())))
    if handles and banded:
        handles["band: min–max over seeds"] = plt.Rectangle((0, 0), 1, 1, color="0.5", alpha=0.25, lw=0)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=min(len(handles), 3),
                   fontsize=8, frameon=False)
    fig.suptitle(f"hidden capability: mean over seeds (band: min–max over seeds), held-out cell on the scoring half "
                 f"(odd probes), {SMOOTHED}; {len(conditions)} condition{'s' if len(conditions) != 1 else ''}, "
                 f"{seeds_text(total)} in all", fontsize=10)
    return fig


# ---- many runs: trajectories per condition ---------------------------------------------------------------------
def swept_concept(conditions) -> str | None:
    """The Δ that varies most across the conditions (None when none varies)."""
    values: dict = {}
    for cond in conditions:
        for c, v in (cond.get("deltas") or {}).items():
            if v is not None:
                values.setdefault(c, set()).add(v)
    varying = [(len(v), c) for c, v in values.items() if len(v) > 1]
    return max(varying)[1] if varying else None


def condition_trajectories_figure(conditions: list[dict]):
    """Concept-space paths per condition: the held-out cell's trajectory averaged over seeds, then smoothed
    (σ = 2; the paper's order), coloured by the swept Δ (colorbar); each seed's raw path faint; training
    cells' mean paths dashed; a star at the median training-convergence step (corners rule)."""
    runs0 = [r for cond in conditions for r in cond.get("runs") or [] if r.get("spec") is not None]
    if not runs0:
        fig, ax = plt.subplots(figsize=(5, 4), layout="constrained")
        no_data(ax, "no runs")
        return fig
    spec = runs0[0]["spec"]
    swept = swept_concept(conditions)
    values = [(cond.get("deltas") or {}).get(swept) for cond in conditions] if swept else []
    numeric = [v for v in values if isinstance(v, (int, float))]
    norm = Normalize(min(numeric), max(numeric)) if numeric and min(numeric) < max(numeric) else None
    others = {}  # a second varying Δ (a grid sweep): one marker per value on the held-out paths
    for cond in conditions:
        for c, v in (cond.get("deltas") or {}).items():
            if c != swept and v is not None:
                others.setdefault(c, set()).add(v)
    second = next((c for c, vs in others.items() if len(vs) > 1), None)
    second_values = sorted(others.get(second, set()), key=str)
    markers = dict(zip(second_values, itertools.cycle(("o", "^", "s", "D", "v", "P"))))
    pairs = concept_pairs(spec)
    cols = min(len(pairs), 3)
    nrows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.0 * cols + 1.6, 5.2 * nrows), squeeze=False,
                             layout="constrained")
    axes = list(axes.flat)
    for ax in axes[len(pairs):]:
        ax.set_visible(False)
    axes = axes[:len(pairs)]
    held = [spec.cell_name(c) for c in spec.held_out]
    train = [spec.cell_name(c) for c in spec.train_cells]
    counts = []
    for i, cond in enumerate(conditions):
        runs = [r for r in cond.get("runs") or [] if r.get("readout")]
        counts.append(len(runs))
        v = (cond.get("deltas") or {}).get(swept) if swept else None
        colour = DELTA_CMAP(norm(v)) if norm is not None and isinstance(v, (int, float)) else \
            SERIES_COLOURS(i % 10)
        for ax, (x, y) in zip(axes, pairs):
            for cell in train + held:
                paths = []
                for r in runs:
                    if cell in r["trajectories"]:
                        paths.append(r["trajectories"][cell])
                    else:
                        paths.append(analysis.trajectory(r["stats"], cell, readout=r["readout"]))
                paths = [(s, c) for s, c in paths if len(s)]
                if not paths:
                    continue
                is_held = cell in held
                sx, mx = on_grid([(s, c[x]) for s, c in paths])
                _, my = on_grid([(s, c[y]) for s, c in paths])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    px, py = np.nanmean(mx, 0), np.nanmean(my, 0)
                ok = ~(np.isnan(px) | np.isnan(py))
                sx, px, py = sx[ok], gaussian_smooth(px[ok]), gaussian_smooth(py[ok])
                if is_held:
                    for _, c in paths:
                        ax.plot(c[x], c[y], "-", color=colour, lw=0.5, alpha=0.25, zorder=2)
                    mark = markers.get((cond.get("deltas") or {}).get(second), ".") if second else "."
                    ax.plot(px, py, "-", color=colour, lw=2.2, marker=mark, ms=4 if mark == "." else 3.5, zorder=4)
                    conv = [r["convergence"].get("corners") for r in runs]
                    crossed = sorted(c[0] for c in conv if c and not c[1])
                    if crossed and len(crossed) * 2 > len(conv):
                        at = mark_at(sx, float(np.median(crossed)))
                        if at is not None:
                            ax.plot(px[at], py[at], "*", color="red", ms=14, mec="k", zorder=5)
                else:
                    ax.plot(px, py, "--", color=colour, lw=1.0, alpha=0.8, zorder=3)
    for ax, (x, y) in zip(axes, pairs):
        label_corners(ax, spec, x, y)
    handles = [Line2D([], [], color="0.3", lw=2.2, marker=".", label=f"held-out cell ({', '.join(held)}), mean of "
                      "seeds"),
               Line2D([], [], color="0.3", lw=0.5, alpha=0.4, label="single seeds (raw)"),
               Line2D([], [], color="0.3", lw=1.0, ls="--", label="training cells, mean of seeds"),
               Line2D([], [], color="red", marker="*", ms=12, mec="k", lw=0,
                      label="median training-convergence step (every training cell > 0.95)")]
    handles += [Line2D([], [], color="0.3", lw=1.5, marker=m, ms=5, label=f"Δ{second} {v:g}" if isinstance(v, (
        int, float)) else f"Δ{second} {v}") for v, m in markers.items()]
    if norm is None:
        handles += [Line2D([], [], color=SERIES_COLOURS(i % 10), lw=2, label=delta_text(c.get("deltas") or {}))
                    for i, c in enumerate(conditions)]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    if norm is not None:
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=DELTA_CMAP), ax=axes, shrink=0.8,
                     label=f"Δ{swept}")
    seed_counts = sorted(set(counts))
    seeds = f"{seed_counts[0]}" if len(seed_counts) == 1 else f"{seed_counts[0]}–{seed_counts[-1]}"
    fig.suptitle(f"trajectories per condition: {len(conditions)} condition{'s' if len(conditions) != 1 else ''}"
                 f"{f' over Δ{swept}' if swept else ''}{f' (colour) and Δ{second} (markers)' if second else ''}, "
                 f"{seeds} seeds each (mean of seeds, then {SMOOTHED})",
                 fontsize=10)
    return fig


# ---- many runs: F1 and F4 --------------------------------------------------------------------------------------
def f1_figure(summaries: list[dict], trends: list[dict], rule: str = HEADLINE):
    """F1: the held-out cell's learning time (the paper rule) per concept and joint against each swept Δ, one
    line per value of the other Δs: the median over seeds (hollow when it is itself censored) with the
    min–max range, every seed a small dot (hollow: never crossed, drawn at its censoring bound). Spearman ρ
    (censored at bound / crossed only) and the verdict from `trends` in the legend. Below: heat maps of the
    median learning time over the (Δcolor, Δsize) grid when each has ≥ 2 values."""
    from .claims import spearman
    from .conditions import censored_median

    runs = [s for s in summaries if s.get("learning_times") and s.get("deltas")
            and all(v is not None for v in s["deltas"].values())]
    if not runs:
        fig, ax = plt.subplots(figsize=(5, 4), layout="constrained")
        no_data(ax, "F1: no finished runs with learning times and Δ values")
        return fig
    concepts = list(runs[0]["deltas"])
    varying = [c for c in concepts if len({s["deltas"][c] for s in runs}) >= 2]
    cells = list(runs[0]["learning_times"])
    cell = cells[0]
    series = [c for c in concepts if c in runs[0]["learning_times"][cell]] + [JOINT]
    grid_pair = [c for c in ("color", "size") if c in varying]
    heat = len(grid_pair) == 2
    n_seeds = max(sum(1 for s in runs if s["deltas"] == r["deltas"]) for r in runs)
    if not varying:
        fig, ax = plt.subplots(figsize=(5, 4), layout="constrained")
        no_data(ax, "F1: no Δ varies across these runs")
        return fig
    fig = plt.figure(figsize=(5.4 * max(len(varying), 3 if heat else 1), 4.2 * len(series) + (4.4 if heat else 0)),
                     layout="constrained")
    top, bottom = (fig.subfigures(2, 1, height_ratios=[4.2 * len(series), 4.4]) if heat else (fig, None))
    axes = top.subplots(len(series), len(varying), squeeze=False)
    for r_i, y in enumerate(series):
        for c_i, x in enumerate(varying):
            ax = axes[r_i][c_i]
            others = [c for c in concepts if c != x]
            groups: dict = {}
            for s in runs:
                t = s["learning_times"].get(cell, {}).get(y, {}).get(rule)
                if t is not None:
                    groups.setdefault(tuple(s["deltas"][c] for c in others), []).append((s["deltas"][x], t))
            keys = sorted(groups, key=lambda k: [str(v) if not isinstance(v, (int, float)) else v for v in k])
            for g, key in enumerate(keys):
                pts = groups[key]
                colour = plt.get_cmap("viridis")(0.85 * g / max(len(keys) - 1, 1)) if len(keys) > 1 else "tab:blue"
                xs = sorted({p[0] for p in pts})
                span = (max(xs) - min(xs)) or 1.0
                meds = []
                for xv in xs:
                    ts = [t for v, t in pts if v == xv]
                    st = censored_median([t.step for t in ts], [t.censored for t in ts])
                    meds.append(st["median"])
                    ax.plot([xv, xv], [st["min"], st["max"]], "-", color=colour, lw=1, alpha=0.7)
                    ax.plot(xv, st["median"], "o", ms=8, mec=colour, mew=1.6,
                            mfc="white" if st["median_censored"] else colour, zorder=4)
                    jitter = (0.025 + 0.012 * np.arange(len(ts))) * span  # seeds beside their median
                    for t, dx in zip(ts, jitter):
                        ax.plot(xv + dx, t.step, "o", ms=3.5, mec=colour, mew=0.8,
                                mfc="white" if t.censored else colour, alpha=0.8, zorder=3)
                label = ", ".join(f"Δ{c} {v:g}" for c, v in zip(others, key)) or "all runs"
                tr = [t for t in trends if t["cell"] == cell and t["concept"] == y and t["against"] == f"delta_{x}"
                      and all(t["fixed"].get(c) == v for c, v in zip(others, key))]
                if tr:
                    t = tr[0]
                    label += (f": ρ {fmt_rho(t['rho_censored_at_bound'])} (crossed only "
                              f"{fmt_rho(t['rho_crossed_only'])}), {t['verdict']}")
                else:
                    allx = [v for v, _ in pts]
                    label += f": ρ {fmt_rho(spearman(allx, [t.step for _, t in pts]))} (censored at bound)"
                ax.plot(xs, meds, "-", color=colour, lw=1.5, label=label, zorder=2)
            ax.set(xlabel=f"Δ{x}", ylabel=f"T({y}) [steps]",
                   title=f"{cell}: {'joint' if y == JOINT else y} learning time vs Δ{x}"
                         + ("" if y == JOINT else f" (expected ρ {'<' if y == x else '>'} 0)"))
            ax.margins(x=0.08)
            legend_below(ax, fontsize=7)
    if heat:
        haxes = bottom.subplots(1, len(series), squeeze=False)[0]
        for ax, y in zip(haxes, series):
            heat_map(ax, runs, cell, y, rule, fig=bottom)
    fig.suptitle(f"F1: learning time of {cell} vs concept signal ({rule} rule: smoothed accuracy ≥ "
                 f"{RULES[rule][0]:g}); {len(runs)} runs, up to {seeds_text(n_seeds)} per Δ setting; big dots: median "
                 "over seeds with min–max bar; hollow: censored (never crossed; drawn at the last step)",
                 fontsize=10)
    return fig


def fmt_rho(rho) -> str:
    return "n/a" if rho is None else f"{rho:+.2f}"


def heat_map(ax, runs, cell, series, rule, fig):
    from .conditions import censored_median

    xs = sorted({s["deltas"]["color"] for s in runs})
    ys = sorted({s["deltas"]["size"] for s in runs})
    grid = np.full((len(ys), len(xs)), np.nan)
    text = {}
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            ts = [s["learning_times"][cell][series][rule] for s in runs
                  if s["deltas"]["color"] == xv and s["deltas"]["size"] == yv and cell in s["learning_times"]]
            if ts:
                st = censored_median([t.step for t in ts], [t.censored for t in ts])
                grid[i, j] = st["median"]
                text[i, j] = f"{'>' if st['median_censored'] else ''}{st['median']:,.0f}\n{st['n_crossed']}/{st['n']}"
    image = ax.imshow(grid, origin="lower", cmap="magma_r", aspect="auto")
    for (i, j), t in text.items():
        value = grid[i, j]
        light = not np.isnan(value) and value > np.nanmin(grid) + 0.6 * (np.nanmax(grid) - np.nanmin(grid) + 1e-9)
        ax.text(j, i, t, ha="center", va="center", fontsize=8, color="white" if light else "black")
    ax.set(xticks=range(len(xs)), xticklabels=[f"{v:g}" for v in xs], yticks=range(len(ys)),
           yticklabels=[f"{v:g}" for v in ys], xlabel="Δcolor", ylabel="Δsize",
           title=f"median T({series}) over seeds (> censored; n crossed / n)")
    fig.colorbar(image, ax=ax, label="steps", shrink=0.85)


def f4_figure(points: list[dict], trend: dict | None = None):
    """F4: each run's held-out cell — distance from its target at the training-convergence step against its
    naive joint learning time; one colour per held-out cell, hollow = never crossed (at its bound).
    trend: claims.f4_trend(points) (computed here when None)."""
    from .claims import f4_trend

    fig, ax = plt.subplots(figsize=(7.2, 5.6), layout="constrained")
    if points and not trend:
        trend = f4_trend(points)
    trend = trend or {}
    if not points:
        no_data(ax, "F4: no runs whose training cells converged")
        return fig
    cells = sorted({p["cell"] for p in points})
    for k, cell in enumerate(cells):
        mine = [p for p in points if p["cell"] == cell]
        colour = SERIES_COLOURS(k % 10)
        for censored in (False, True):
            sel = [p for p in mine if p["censored"] == censored]
            if sel:
                ax.scatter([p["distance"] for p in sel], [p["learning_time"] for p in sel], s=36, lw=1.4,
                           edgecolors=colour, facecolors="white" if censored else colour,
                           label=f"{cell}{' (never crossed: at its bound)' if censored else ''} ({len(sel)})")
    runs = len({p["run"] for p in points})
    ax.set(xlabel="distance of the held-out cell from its target at training convergence (concept space)",
           ylabel="naive joint learning time [steps, paper rule]")
    legend_below(ax, fontsize=8)
    ax.set_title(f"F4: later learned when farther at convergence (expected ρ > 0)\nρ "
                 f"{fmt_rho(trend.get('rho_censored_at_bound'))} censored at bound, "
                 f"{fmt_rho(trend.get('rho_crossed_only'))} crossed only; {trend.get('verdict', '')}; "
                 f"{len(points)} points from {runs} run{'s' if runs != 1 else ''}", fontsize=10)
    return fig


# ---- probe samples ---------------------------------------------------------------------------------------------
def sample_steps(run_dir: Path) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in (Path(run_dir) / "tracker" / "samples").glob("step_*.png")
             if (m := re.fullmatch(r"step_(\d+)\.png", p.name))]
    return sorted(found)


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


def samples_gif(run_dir: Path, duration_ms: int = 400) -> Path | None:
    """RUN_DIR/figures/samples.gif: the probe grids of tracker/samples/step_*.png in step order, each frame
    labelled with its step. None when the run has no sample grids."""
    run_dir = Path(run_dir)
    found = sample_steps(run_dir)
    if not found:
        return None
    frames = []
    for step, path in found:
        with Image.open(path) as image:
            grid = image.convert("RGB")
        frame = Image.new("RGB", (grid.width, grid.height + 16), "white")
        frame.paste(grid, (0, 16))
        ImageDraw.Draw(frame).text((3, 2), f"step {step}", fill="black")
        frames.append(frame)
    size = frames[0].size  # grids of one run share a size; guard against a stray one
    frames = [f if f.size == size else f.resize(size) for f in frames]
    out = run_dir / "figures" / "samples.gif"
    out.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return out


# ---- output ----------------------------------------------------------------------------------------------------
def figure_to_uint8(fig) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a figure (what wandb.Image takes)."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def save_figure(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


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

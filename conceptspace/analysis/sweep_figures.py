"""Many runs' figures: hidden_capability_figure (the paper's panel per condition) and
condition_trajectories_figure (concept-space paths per condition). Shared basics: figures; F1 and F4:
claim_figures."""

from __future__ import annotations

import itertools
import textwrap
import warnings

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

from . import stats as analysis
from .curves import gaussian_smooth
from .figures import (
    DELTA_CMAP,
    METHOD_COLOURS,
    SERIES_COLOURS,
    SMOOTHED,
    THRESHOLD,
    concept_pairs,
    delta_text,
    label_corners,
    mark_at,
    method_colour,
    no_data,
    on_grid,
    plt,
    seeds_text,
    threshold_line,
)
from .stats import JOINT, NULL
from .times import HEADLINE


# ---- many runs: the paper's hidden-capability panel ------------------------------------------------------------
def elicitation_methods(leads: dict) -> list[str]:
    """The non-null methods of a condition's leads of one cell, the largest median split-half lead first."""
    scored = [(-(v["split"]["median"] if v.get("split") and v["split"]["median"] is not None else -np.inf), m)
              for m, v in leads.items() if m != NULL]
    return [m for _, m in sorted(scored)]


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
    naive prompting of the held-out cell, and every elicitation method (each seed at its own split-half
    setting; the largest median lead first), on the scoring half; mean over seeds with a
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
    width = max(5.6 * cols, 8.0)  # one panel: wide enough for its notes, the legend and the title
    fig, axes = plt.subplots(nrows, cols, figsize=(width, 5.2 * nrows), squeeze=False, layout="constrained")
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
        for m in elicitation_methods(leads):
            el = []
            for r in runs:
                _, c = r["panel"][cell]["elicited"].get(m, (None, None))
                if c is not None and len(c):
                    el.append((c.steps, c.smoothed()[0]))
            mean_band(ax, el, method_colour(m), f"{m} (split-half setting per seed)")
            st = leads[m]["split"]
            med = "n/a (no seed with a known lead)" if st["median"] is None else f"{st['median']:,.0f} steps"
            verdict = leads[m].get("verdict")
            lower = st["bounds"].get("lower", 0)
            lines.append((f"{m}: median lead {med}, > 0 in {st['n_positive']}/{st['n']} seeds"
                          + (f", {lower} bounded below" if lower else "")
                          + (f" (F3 {verdict})" if verdict else ""), method_colour(m)))
        null = leads.get(NULL, {}).get("split")
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
    title = (f"hidden capability: mean over seeds (band: min–max over seeds), held-out cell on the scoring half "
             f"(odd probes), {SMOOTHED}; {len(conditions)} condition{'s' if len(conditions) != 1 else ''}, "
             f"{seeds_text(total)} in all")
    fig.suptitle(textwrap.fill(title, int(width * 15)), fontsize=10)
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

"""The figures of the paper's claims over many runs: f1_figure (learning time vs Δ, with Δ heat maps) and
f4_figure (distance at convergence vs learning time). Shared basics: figures."""

from __future__ import annotations

import numpy as np

from .figures import RULES, SERIES_COLOURS, legend_below, no_data, plt, seeds_text
from .stats import JOINT
from .times import HEADLINE


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

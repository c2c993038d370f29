"""Figures of one run, drawn from `analysis.cell_stats`: concept-space trajectories, accuracy vs step, and an
animated GIF of the probe sample grids. `*_figure` functions return a matplotlib Figure (for W&B, pass it to
`figure_to_uint8`); `write_run_figures` saves them under RUN_DIR/figures/ and returns the paths."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from . import analysis  # noqa: E402

SERIES_COLOURS = plt.get_cmap("tab10")
METHOD_STYLES = ("-", "--", ":", "-.")


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
    ax.set(xlim=(-0.12, 1.12), ylim=(-0.12, 1.12), xlabel=f"P({spec.concept(x).values[1]})",
           ylabel=f"P({spec.concept(y).values[1]})")
    ax.set_aspect("equal")


def trajectory_figure(stats, spec, *, readout, method=analysis.NAIVE, setting="", convergence_step=None,
                      title=""):
    """Each cell's mean-p path per concept pair: training cells dashed, held-out solid, points coloured by
    step, a star on held-out paths at the training-convergence step (when given)."""
    chosen = analysis.select(stats, readout=readout, method=method, setting=setting)
    cells = [spec.cell_name(c) for c in spec.cells]
    steps_all = [s.step for s in chosen] or [0, 1]
    norm = Normalize(min(steps_all), max(steps_all))
    pairs = concept_pairs(spec)
    fig, axes = panel_grid(len(pairs))
    scatter = None
    for ax, (x, y) in zip(axes, pairs):
        label_corners(ax, spec, x, y)
        for k, cell in enumerate(cells):
            steps, coords = analysis.trajectory(chosen, cell, readout=readout, method=method, setting=setting)
            if not steps.size:
                continue
            held = spec.is_held_out(cell)
            ax.plot(coords[x], coords[y], "-" if held else "--", color=SERIES_COLOURS(k % 10),
                    lw=2 if held else 1.2, label=f"{cell}{' (held out)' if held else ''}", zorder=2)
            scatter = ax.scatter(coords[x], coords[y], c=steps, cmap="viridis", norm=norm, s=14, zorder=3)
            if held and convergence_step is not None:
                at = int(np.searchsorted(steps, convergence_step, side="right")) - 1
                if at >= 0:
                    ax.plot(coords[x][at], coords[y][at], "*", color="red", ms=16, mec="k", zorder=4,
                            label=f"training converged (step {convergence_step})")
    handles = dict(zip(*reversed(axes[0].get_legend_handles_labels())))  # label -> handle, one star only
    fig.legend(handles.values(), handles.keys(), loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=3,
               fontsize=7, frameon=False)
    if scatter is not None:
        fig.colorbar(scatter, ax=axes, label="training step", shrink=0.8)
    fig.suptitle(title or f"concept space ({readout} readout, {method}{' ' + setting if setting else ''})")
    return fig


def accuracy_figure(stats, spec, *, readout, methods=(analysis.NAIVE,), series=None, title=""):
    """Accuracy vs step of each held-out cell: one colour per series (concepts + joint), one line style per
    method (a method with several settings shows its best setting per step). Threshold lines 0.8 / 0.9."""
    series = list(series or [*spec.names, analysis.JOINT])
    held = [spec.cell_name(c) for c in spec.held_out]
    fig, axes = panel_grid(len(held), size=4.6)
    for ax, cell in zip(axes, held):
        for m, method in enumerate(methods):
            for k, name in enumerate(series):
                steps, acc = analysis.best_setting_curve(stats, cell, name, readout=readout, method=method)
                if steps.size:
                    ax.plot(steps, acc, METHOD_STYLES[m % len(METHOD_STYLES)], color=SERIES_COLOURS(k % 10),
                            marker=".", ms=3, label=f"{name} ({method})" if len(methods) > 1 else name)
        for t in analysis.THRESHOLDS:
            ax.axhline(t, color="0.6", ls=":", lw=0.8)
        ax.set(title=f"{cell} (held out)", xlabel="training step", ylabel="accuracy", ylim=(-0.03, 1.03))
        ax.legend(fontsize=7)
    fig.suptitle(title or f"held-out accuracy ({readout} readout)")
    fig.tight_layout()
    return fig


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


def samples_gif(run_dir: Path, duration_ms: int = 400) -> Path | None:
    """RUN_DIR/figures/samples.gif: the probe grids of tracker/samples/step_*.png in step order, each frame
    labelled with its step. None when the run has no sample grids."""
    run_dir = Path(run_dir)
    found = [(int(m.group(1)), p) for p in (run_dir / "tracker" / "samples").glob("step_*.png")
             if (m := re.fullmatch(r"step_(\d+)\.png", p.name))]
    if not found:
        return None
    frames = []
    for step, path in sorted(found):
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


def write_run_figures(run_dir: Path, stats, spec, *, readout, convergence_step=None) -> dict[str, Path]:
    """Regenerate every figure of a run under RUN_DIR/figures/; returns {figure name: path}."""
    figures = Path(run_dir) / "figures"
    paths = {
        "trajectory": save_figure(trajectory_figure(stats, spec, readout=readout,
                                                    convergence_step=convergence_step),
                                  figures / "trajectory.png"),
        "accuracy": save_figure(accuracy_figure(stats, spec, readout=readout), figures / "accuracy.png"),
    }
    methods = [analysis.NAIVE, *sorted({s.method for s in stats if s.method != analysis.NAIVE
                                        and s.readout == readout})]
    if len(methods) > 1:
        paths["elicitation"] = save_figure(
            accuracy_figure(stats, spec, readout=readout, methods=methods, series=[analysis.JOINT],
                            title=f"held-out joint accuracy per method ({readout} readout, best setting per step)"),
            figures / "elicitation.png")
    gif = samples_gif(run_dir)
    if gif is not None:
        paths["samples"] = gif
    return paths

"""The figures' shared basics (matplotlib, colours, text and axes helpers, probe-sample files, output); the
figures themselves live beside it, every `*_figure` returning a Figure (for W&B pass it to `figure_to_uint8`, for
files to `save_figure`):

run_figures:    one run: trajectory_figure (concept space), elicitation_figure (naive vs each method's split-half
                setting, per-setting curves), accuracy_figure (the live dashboard), sample_strip_figure,
                write_run_figures.
sweep_figures:  many runs: hidden_capability_figure (the paper's panel per condition), condition_trajectories_figure.
claim_figures:  many runs: f1_figure (learning time vs Δ), f4_figure (distance at convergence vs learning time).
Every curve is smoothed along snapshots with the paper's Gaussian (curves.gaussian_smooth, σ = 2 snapshots);
accuracy bands are 95% Wilson intervals of the smoothed counts (Curve.smoothed). Legends sit outside the axes.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from ..checkpoint import atomic_output  # noqa: E402
from .curves import SIGMA, gaussian_smooth  # noqa: E402
from .stats import NAIVE, NULL  # noqa: E402
from .times import HEADLINE, RULES  # noqa: E402

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

# ---- probe samples ---------------------------------------------------------------------------------------------
def sample_steps(run_dir: Path) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in (Path(run_dir) / "tracker" / "samples").glob("step_*.png")
             if (m := re.fullmatch(r"step_(\d+)\.png", p.name))]
    return sorted(found)


def labelled_frame(grid: Image.Image, step: int) -> Image.Image:
    """A probe grid with 'step N' written above it (a frame of a GIF or strip)."""
    frame = Image.new("RGB", (grid.width, grid.height + 16), "white")
    frame.paste(grid, (0, 16))
    ImageDraw.Draw(frame).text((3, 2), f"step {step}", fill="black")
    return frame


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
            frames.append(labelled_frame(image.convert("RGB"), step))
    size = frames[0].size  # grids of one run share a size; guard against a stray one
    frames = [f if f.size == size else f.resize(size) for f in frames]
    out = run_dir / "figures" / "samples.gif"
    with atomic_output(out) as tmp:
        frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return out


# ---- output ----------------------------------------------------------------------------------------------------
def figure_to_uint8(fig) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a figure (what wandb.Image takes)."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def save_figure(fig, path: Path) -> Path:
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path

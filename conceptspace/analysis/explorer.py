"""The report's explorer: a slider over the saved snapshots showing, at each step, every cell's probe grid
beside the concept-space plot with that step's points highlighted, and (where `elicit` ran) naive prompting
next to each method's selected setting for every held-out cell. Plain JavaScript, images inlined, an SVG
drawn here; nothing is fetched. `#step=K` in the URL opens the page at the K-th snapshot, scrolled to the explorer."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from .figures import sample_steps
from .html import esc
from .stats import JOINT, NAIVE, select, trajectory

SIZE, PAD = 360, 30  # the concept-space SVG: pixels, margin
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def tracker_row(path: Path, spec, cell: str) -> str:
    """The cell's row of a tracker probe grid (rows follow spec.cells), as a data URI."""
    import io

    from PIL import Image

    with Image.open(path) as image:
        rows, k = len(spec.cells), spec.cells.index(spec.cell(cell))
        height = (image.height - 1) // rows  # make_grid(padding=1): rows of (size + 1) pixels, plus one
        row = image.crop((0, k * height, image.width, (k + 1) * height + 1))
        buffer = io.BytesIO()
        row.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def space_svg(stats, spec, readout: str, steps: list[int]) -> str:
    """Every cell's naive path in the first concept pair's plane, one circle per (cell, step) with the step's
    index as its class, so the script can highlight one step."""
    x_name, y_name = spec.names[0], spec.names[1] if len(spec.names) > 1 else spec.names[0]

    def xy(x, y):
        return PAD + x * (SIZE - 2 * PAD), SIZE - PAD - y * (SIZE - 2 * PAD)

    parts = [f'<svg id="ex-space" width="{SIZE}" height="{SIZE}" viewBox="0 0 {SIZE} {SIZE}" '
             'style="border:1px solid #ccc;background:#fff">']  # inline SVG: no namespace needed
    for i in (0, 1):
        for j in (0, 1):
            cx, cy = xy(i, j)
            name = f"{spec.concept(x_name).values[i]}-{spec.concept(y_name).values[j]}"
            parts.append(f'<rect x="{cx - 4}" y="{cy - 4}" width="8" height="8" fill="#999"/>'
                         f'<text x="{cx}" y="{cy + (-9 if j else 17)}" font-size="10" text-anchor="middle" '
                         f'fill="#555">{esc(name)}</text>')
    index = {s: k for k, s in enumerate(steps)}
    for c, cell in enumerate(spec.cells):
        name = spec.cell_name(cell)
        t, coords = trajectory(stats, name, readout=readout)
        if not len(t):
            continue
        colour = PALETTE[c % len(PALETTE)]
        pts = [xy(float(a), float(b)) for a, b in zip(coords[x_name], coords[y_name])]
        dash = "" if spec.is_held_out(cell) else ' stroke-dasharray="4 3"'
        parts.append(f'<polyline points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}" fill="none" '
                     f'stroke="{colour}" stroke-opacity="0.5"{dash}/>')
        for step, (a, b) in zip(t, pts):
            if int(step) in index:
                parts.append(f'<circle class="ex-pt s{index[int(step)]}" cx="{a:.1f}" cy="{b:.1f}" r="2.5" '
                             f'fill="{colour}" fill-opacity="0.5"><title>{esc(name)} @ {int(step)}</title></circle>')
    parts.append(f'<text x="{SIZE / 2}" y="{SIZE - 6}" font-size="11" text-anchor="middle">'
                 f'P({esc(spec.concept(x_name).values[1])})</text><text x="10" y="{SIZE / 2}" font-size="11" '
                 f'transform="rotate(-90 10 {SIZE / 2})" text-anchor="middle">'
                 f'P({esc(spec.concept(y_name).values[1])})</text></svg>')
    return "".join(parts)


def elicitation_panels(run_dir: Path, summary: dict, tracker: dict[int, Path]) -> list[dict]:
    """Per held-out cell and method: the grid and joint accuracy of naive and of the split-half-selected
    setting at every step (None where elicit saved no grid for that step)."""
    from ..elicit.command import grid_path

    stats, readout = summary["stats"], summary["readout"]
    steps = sorted(tracker)
    panels = []
    for cell, by_method in summary["leads"].items():
        choices = [(NAIVE, "")] + [(m, ls["split"].setting) for m, ls in by_method.items()
                                   if "split" in ls and m != "null"]
        for method, setting in choices:
            acc = {s.step: s.correct[JOINT] / s.n for s in select(stats, readout=readout, method=method,
                                                                  setting=setting, cell=cell)}
            grids = [grid_path(run_dir, step, cell, method, setting) for step in steps]
            uris = [data_uri(g) if g.exists() else None for g in grids]
            if method == NAIVE:  # elicit reuses the tracker's naive probes: their row of the tracker's grid
                uris = [u or tracker_row(tracker[step], summary["spec"], cell) for u, step in zip(uris, steps)]
            if not any(uris):
                continue
            panels.append({"label": f"{cell}: {method}" + (f" ({setting})" if setting else ""),
                           "grids": uris, "acc": [acc.get(step) for step in steps]})
    return panels


SCRIPT = """
(function () {
  const ex = JSON.parse(document.getElementById('ex-data').textContent);
  const slider = document.getElementById('ex-slider');
  function show(i) {
    const label = 'step ' + ex.steps[i] + ' (' + (i + 1) + ' of ' + ex.steps.length + ')';
    document.getElementById('ex-step').textContent = label;
    document.getElementById('ex-grid').src = ex.grids[i];
    function mark(sel, r, o) {
      document.querySelectorAll(sel).forEach(function (c) {
        c.setAttribute('r', r);
        c.setAttribute('fill-opacity', o);
      });
    }
    mark('.ex-pt', '2.5', '0.5');
    mark('.ex-pt.s' + i, '7', '1');
    ex.panels.forEach(function (p, k) {
      const img = document.getElementById('ex-panel-' + k), cap = document.getElementById('ex-cap-' + k);
      img.style.visibility = p.grids[i] ? 'visible' : 'hidden';
      if (p.grids[i]) { img.src = p.grids[i]; }
      cap.textContent = p.label + ': joint accuracy ' + (p.acc[i] === null ? 'n/a' : p.acc[i].toFixed(2));
    });
  }
  slider.addEventListener('input', function () { show(Number(slider.value)); });
  const m = /step=(\\d+)/.exec(window.location.hash);
  const start = m ? Math.min(Number(m[1]), ex.steps.length - 1) : ex.steps.length - 1;
  slider.value = String(start);
  show(start);
  if (m) {  // a link to a step lands on the explorer, once the figures above it have their heights
    window.addEventListener('load', function () { slider.scrollIntoView({block: 'start'}); });
  }
})();
"""


def explorer_section(run_dir: Path, summary: dict) -> list[str]:
    grids = dict(sample_steps(run_dir))
    steps = sorted(grids)
    if not steps or summary["readout"] is None:
        return []
    panels = elicitation_panels(run_dir, summary, grids)
    data = {"steps": steps, "grids": [data_uri(grids[s]) for s in steps],
            "panels": [{"label": p["label"], "grids": p["grids"], "acc": p["acc"]} for p in panels]}
    spec = summary["spec"]
    legend = " ".join(f'<span style="color:{PALETTE[c % len(PALETTE)]}">&#9632;</span> {esc(spec.cell_name(cell))}'
                      + (" (held out)" if spec.is_held_out(cell) else "") for c, cell in enumerate(spec.cells))
    figures = "".join(f'<figure style="margin:4px"><img id="ex-panel-{k}" alt="{esc(p["label"])}" '
                      f'style="image-rendering:pixelated;width:{16 * 24}px"><figcaption id="ex-cap-{k}" '
                      'style="font-size:12px"></figcaption></figure>' for k, p in enumerate(panels))
    return ["<h2>Explorer</h2><p>Drag the slider through the saved snapshots: the probe samples of every cell "
            "(one row per cell, in the order of the concept-space legend), that step's points in concept space "
            "(dashed: training cells; first concept pair)"
            + (", and naive prompting next to each method's selected setting for the held-out cells" if panels
               else "") + ".</p>",
            f'<div><input type="range" id="ex-slider" min="0" max="{len(steps) - 1}" step="1" style="width:60%"> '
            '<b id="ex-step"></b></div>',
            '<div style="display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap">'
            '<img id="ex-grid" alt="probe samples" style="image-rendering:pixelated;max-width:560px;width:560px">'
            + space_svg(summary["stats"], summary["spec"], summary["readout"], steps) + "</div>",
            f'<p style="font-size:13px">Grid rows, top to bottom, and concept-space colours: {legend}</p>',
            f'<div style="display:flex;flex-wrap:wrap">{figures}</div>',
            f'<script type="application/json" id="ex-data">{json.dumps(data)}</script>',
            f"<script>{SCRIPT}</script>"]

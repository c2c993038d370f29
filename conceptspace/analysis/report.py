"""`conceptspace report RUN_DIR`: one self-contained HTML page (images inlined as base64) per run, with the
config, status, learning times, convergence/turn steps, figures regenerated from the rows, and an
elicitation section when the rows hold methods other than naive prompting."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from . import analysis, plots
from .errors import UserError
from .tracker.rows import read_rows

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee}pre{background:#f6f6f6;padding:.6em;max-height:24em;overflow:auto;font-size:12px}
img{max-width:100%}.censored{color:#a00}.warn{background:#fee;padding:.4em}"""
MIME = {".png": "image/png", ".gif": "image/gif"}


# ---- HTML helpers (shared with aggregate) -------------------------------------------------------------------
def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def img_tag(path: Path, alt: str = "") -> str:
    """An <img> carrying the file itself (data: URI), so the page needs nothing beside it."""
    path = Path(path)
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{esc(alt or path.stem)}" src="data:{MIME[path.suffix]};base64,{data}">'


def table(header: list, rows: list[list]) -> str:
    """Cells are escaped unless they are already HTML (wrapped by `raw`)."""
    def cell(v):
        return v.html if isinstance(v, Raw) else esc(v)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class Raw:
    def __init__(self, html_text: str):
        self.html = html_text


def page(title: str, body: list[str]) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>{''.join(body)}</body></html>")


def time_cell(step: int, censored: bool) -> Raw:
    """A learning time; a censored one reads '> last step' (the true time is later than the run shows)."""
    return Raw(f"<span class='censored'>&gt; {step} (censored)</span>" if censored else esc(step))


# ---- the run page -------------------------------------------------------------------------------------------
def learning_time_table(summary: dict) -> str:
    header = ["held-out cell", "series", *[f"T @ {t}" for t in analysis.THRESHOLDS]]
    rows = [[cell, series, *[time_cell(*by_threshold[t]) for t in analysis.THRESHOLDS]]
            for cell, times in summary["learning_times"].items() for series, by_threshold in times.items()]
    return table(header, rows)


def elicitation_section(stats, spec, readout: str, figure: Path | None) -> list[str]:
    methods = sorted({s.method for s in stats if s.readout == readout and s.method != analysis.NAIVE})
    if not methods:
        return []
    rows = []
    for cell in (spec.cell_name(c) for c in spec.held_out):
        naive = analysis.best_setting_curve(stats, cell, analysis.JOINT, readout=readout, method=analysis.NAIVE)
        for method in methods:
            curve = analysis.best_setting_curve(stats, cell, analysis.JOINT, readout=readout, method=method)
            if not naive[0].size or not curve[0].size:
                continue
            lead = analysis.elicitation_lead(naive, curve)
            rows.append([cell, method, time_cell(lead["method_step"], lead["method_censored"]),
                         time_cell(lead["naive_step"], lead["naive_censored"]), lead["lead"], lead["bound"]])
    body = ["<h2>Elicitation</h2><p>Joint accuracy of each held-out cell per method (best setting per step). "
            "Lead = steps by which the method reaches 0.8 before naive prompting; bound: lower = naive never "
            "crossed (lead is at least this), upper = the method never crossed, unknown = neither did.</p>",
            table(["held-out cell", "method", "method T @ 0.8", "naive T @ 0.8", "lead (steps)", "bound"], rows)]
    if figure is not None:
        body.append(img_tag(figure, "elicitation"))
    return body


def build_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run dir {run_dir} does not exist")
    rows = read_rows(run_dir / "tracker" / "rows.jsonl")
    if not rows:
        raise UserError(f"{run_dir}: no tracker rows (tracker/rows.jsonl is missing or empty); "
                        "run `conceptspace track RUN_DIR` first")
    summary = analysis.summarise_run(run_dir)
    spec, readout, status = summary["spec"], summary["readout"], summary["status"]
    if readout is None:
        raise UserError(f"{run_dir}: rows have no 'analytic' or 'learned' readout")
    stats = analysis.cell_stats(rows, spec)
    conv = summary["convergence"]
    figures = plots.write_run_figures(run_dir, stats, spec, readout=readout,
                                      convergence_step=conv[0] if conv and not conv[1] else None)
    config_text = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").exists() else "(none)"
    state = status.get("state", "unknown")
    body = [
        f"<p class='{'warn' if state != 'done' else ''}'>state <b>{esc(state)}</b>, step {esc(status.get('step'))}"
        f" / {esc(status.get('total_steps'))}; last snapshot {esc(summary['last_step'])}; readout "
        f"<b>{esc(readout)}</b>, method naive"
        + (f"<br>error: {esc(status['error'])}" if status.get("error") else "") + "</p>",
        "<h2>Learning times</h2><p>First snapshot of the first 3-snapshot run where the Gaussian-smoothed "
        "(σ = 1.5 snapshots) accuracy is ≥ the threshold (0.8: paper text, 0.9: paper code). Censored = never "
        "crossed by the last snapshot.</p>",
        learning_time_table(summary),
        "<p>Training convergence (training cells' mean squared distance to their corners &lt; 0.01): "
        + (time_cell(*conv).html if conv else "n/a") + "<br>Turn of the held-out trajectory (sharpest change "
        "of direction of the smoothed path; none = no bend over 30°): "
        + (", ".join(f"{esc(c)}: {esc(t) or 'none'}" for c, t in summary["turn"].items()) or "n/a") + "</p>",
        "<h2>Concept space</h2>", img_tag(figures["trajectory"], "trajectory"),
        "<h2>Held-out accuracy</h2>", img_tag(figures["accuracy"], "accuracy"),
    ]
    agreement = analysis.readout_agreement(rows, spec)
    if agreement is not None:
        body += ["<h2>Readout agreement</h2>", f"<p>Decisions of the {esc(agreement['readouts'][0])} and "
                 f"{esc(agreement['readouts'][1])} readouts on the same {agreement['samples']} generated samples: "
                 + ", ".join(f"{esc(c)} {agreement[c]:.3f}" for c in [*spec.names, analysis.JOINT]) + "</p>"]
    if "samples" in figures:
        body += ["<h2>Probe samples across snapshots</h2>", img_tag(figures["samples"], "samples")]
    body += elicitation_section(stats, spec, readout, figures.get("elicitation"))
    body += ["<h2>Config</h2>", f"<pre>{esc(config_text)}</pre>"]
    out = run_dir / "report.html"
    out.write_text(page(f"conceptspace report: {summary['name'] or run_dir.name}", body))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        raise UserError(f"usage: conceptspace report RUN_DIR (got {argv})")
    out = build_report(Path(argv[0]))
    print(f"wrote {out}")
    return 0

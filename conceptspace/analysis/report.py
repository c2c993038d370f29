"""`conceptspace report RUN_DIR`: one self-contained HTML page per run (images inlined), RUN_DIR/report.html.

The first screen says in words what the run shows (rundir.headline); then the figures (concept space,
elicitation, the hidden-capability panel, probe samples); then the tables: learning times under both rules
with their intervals, training convergence under both rules, the memorisation result (F2), the elicitation
leads (split-half headline, max over settings beside it), no-object fractions, readout agreement, config.
"""

from __future__ import annotations

from pathlib import Path

from .. import provenance
from ..checkpoint import atomic_write_text, recover
from ..errors import UserError
from ..tracker.rows import read_rows
from . import figures, sweep_figures
from . import run_figures as run_plots
from .conditions import summarise_condition
from .curves import wilson_half_width
from .explorer import explorer_section
from .html import Raw, esc, img_tag, page, table, time_cell
from .rundir import headline, summarise_run
from .stats import JOINT, NULL, readout_agreement
from .times import HEADLINE, RULES

USAGE = """usage: conceptspace report RUN_DIR

Writes RUN_DIR/report.html: one self-contained page (images inlined) saying what the run shows, with its
figures (concept space, elicitation, probe samples) and tables (learning times under the paper's 0.8 rule and
the authors' notebook rule, training convergence, memorisation, elicitation leads, no-object fraction, readout
agreement, config). Figures are also saved under RUN_DIR/figures/."""

RULE_TEXT = {"paper": "paper rule: first snapshot where the smoothed accuracy is ≥ 0.8 (the headline)",
             "notebook": "notebook rule: 0.9, centre of the first run of 3 snapshots above it"}
CONVERGENCE_TEXT = {"corners": "every training cell > 0.95 on every concept (the authors' 2×2×2 notebook; F4)",
                    "msd": "training cells' mean squared distance to their corners < 0.01 (the 2×2 notebook)"}


def fmt(v) -> str:
    return "?" if v is None else f"{v:,}"


def interval_text(t) -> str:
    """[lo, hi] of a LearningTime: the rule on the Wilson upper / lower bound ('?': the bound never clears)."""
    return f"[{fmt(t.lo)}, {fmt(t.hi)}]"


def certain_text(t) -> str:
    if t.censored:
        return "censored"
    return "certain" if t.certain else "uncertain"


# ---- the words ------------------------------------------------------------------------------------------------
def probes_per_half(summary: dict, cell: str) -> int | None:
    """Probes per snapshot of the held-out cell in the scoring half (the fewest over naive and the methods)."""
    panel = summary["panel"].get(cell)
    if not panel:
        return None
    curves = [panel["naive"], *(c for _, c in panel["elicited"].values())]
    counts = [int(c.trials.min()) for c in curves if len(c)]
    return min(counts) if counts else None


def findings(summary: dict) -> list[str]:
    """The run in words: rundir.headline's sentences, split at ';' into one item each, then the control,
    the training convergence and the precision of the numbers."""
    items = []
    for line in headline(summary):
        parts = [p.strip() for p in line.split(";")]
        items.append(esc(parts[0]) + ("<ul>" + "".join(f"<li>{esc(p)}</li>" for p in parts[1:]) + "</ul>"
                                      if len(parts) > 1 else ""))
    for cell, by_method in summary["leads"].items():
        null = by_method.get(NULL, {}).get("split")
        if null is not None:
            lo, hi = null.interval  # None: unbounded on that side
            consistent = (lo is None or lo <= 0) and (hi is None or hi >= 0)
            what = (f"{cell}: null control (naive prompts on fresh seeds, split-half) lead {fmt(null.lead)}, "
                    f"interval [{fmt(lo)}, {fmt(hi)}]: ")
            if null.lead is None:
                what += f"undetermined (neither it nor naive prompting reaches {RULES[HEADLINE][0]:g})"
            elif consistent:
                what += "consistent with 0, as it must be"
            else:
                what += "NOT consistent with 0 — the lead estimate is biased or the curves too noisy"
            items.append(esc(what))
            mx = by_method[NULL].get("max")
            if mx is not None and mx.lead is not None:
                items.append(esc(f"{cell}: under the paper's max over settings the same null control shows a lead "
                                 f"of {mx.lead:,} steps (the bias of a max over K settings)"))
        if not any(m != NULL for m in by_method):
            items.append(esc(f"{cell}: no elicitation rows (naive prompting only; run `conceptspace elicit "
                             "RUN_DIR`)"))
    conv = summary["convergence"].get("corners")
    if conv:
        items.append(esc(f"training cells converge (every training cell > 0.95 on every concept) at step "
                         f"{conv[0]:,}" if not conv[1] else
                         f"training cells have not converged (every cell > 0.95 on every concept) by step {conv[0]:,}"))
    for cell in summary["panel"]:
        n = probes_per_half(summary, cell)
        if n:
            items.append(esc(f"{cell}: {n} probes per snapshot in the scoring half: Wilson 95% half-width "
                             f"±{wilson_half_width(0.8, n):.2f} at p = 0.8 per snapshot (less after smoothing)"))
    items.append(esc(f"learning times: {RULE_TEXT[HEADLINE]}, joint accuracy, smoothed along snapshots "
                     "(σ = 2 snapshots); readout " + str(summary["readout"])))
    return items


# ---- the tables -----------------------------------------------------------------------------------------------
def learning_time_table(summary: dict) -> str:
    header = ["held-out cell", "series"]
    for rule in RULES:
        header += [f"T ({rule}, ≥ {RULES[rule][0]:g})", "[lo, hi]", "certain?"]
    rows = []
    for cell, by_series in summary["learning_times"].items():
        for series, by_rule in by_series.items():
            row = [cell, series]
            for rule in RULES:
                t = by_rule[rule]
                row += [time_cell(t), interval_text(t), certain_text(t)]
            rows.append(row)
    return table(header, rows)


def convergence_table(summary: dict) -> str:
    rows = [[rule, time_cell(*value), CONVERGENCE_TEXT.get(rule, "")]
            for rule, value in summary["convergence"].items()]
    rows += [[f"turn of {cell}", fmt(step) if step is not None else "none", "sharpest change of direction of the "
              "smoothed held-out path (none: no bend over 30°)"] for cell, step in summary["turn"].items()]
    return table(["rule", "step", "meaning"], rows)


def memorisation_table(summary: dict) -> str:
    signal = summary.get("signal")
    rows = []
    for cell, m in summary["memorisation"].items():
        rows.append([cell, m["corner"], f"{m['approach_distance']:.2f}", fmt(m["approach_step"]),
                     fmt(m["turn_step"]) if m["turn_step"] is not None else "—",
                     f"{m['final_distance_to_target']:.2f}", m["verdict"]])
    note = ""
    if signal:
        strongest = max(signal["normalised"], key=signal["normalised"].get)
        note = ("<p>Concept signal of the training data (normalised): "
                + ", ".join(f"{esc(c)} {v:.3f}" for c, v in signal["normalised"].items())
                + f". The stronger-signal concept is <b>{esc(strongest)}</b>; the memorised corner is the training "
                  "cell sharing the held-out cell's value of it.</p>")
    if not rows:
        return note + "<p>n/a (no concept signal for this data source, or no held-out rows)</p>"
    return note + table(["held-out cell", "memorised corner", "closest approach (distance)", "at step",
                         "turn step", "final distance to target", "verdict"], rows)


def short_time(t) -> Raw:
    """A learning time in a narrow column: '> step' in red when censored, '?' when uncertain."""
    if t.censored:
        return Raw(f"<span class='censored' title='never reached: censored'>&gt;&nbsp;{t.step:,}</span>")
    return Raw(esc(f"{t.step:,}") + ("" if t.certain else " <span class='censored' title='uncertain'>?</span>"))


def lead_cells(x) -> list:
    if x is None:
        return ["n/a", "", "", ""]
    lo, hi = x.interval
    return [short_time(x.elicited), fmt(x.lead), x.bound, Raw(f"[{esc(fmt(lo))},&nbsp;{esc(fmt(hi))}]")]


def grouped_table(groups: list[tuple[str, list[str]]], rows: list[list]) -> str:
    """A table with a row of column groups (label, its columns) above the column names."""
    top = "".join(f"<th colspan='{len(cols)}' style='text-align:center'>{esc(label)}</th>" for label, cols in groups)
    names = "".join(f"<th>{esc(c)}</th>" for _, cols in groups for c in cols)
    body = table([], rows).split("</tr>", 1)[1].rsplit("</table>", 1)[0]  # the body rows of html.table
    return f"<table><tr>{top}</tr><tr>{names}</tr>{body}</table>"


def leads_table(summary: dict) -> str:
    groups = [("", ["cell", "method"]),
              ("split-half (headline): setting chosen on even probes, scored on odd",
               ["selected setting", "naive T", "method T", "lead", "bound", "interval"]),
              ("max over settings (the paper's), all probes", ["naive T", "method T", "lead", "bound", "interval"]),
              ("precision", ["probes / half", "Wilson ± at 0.8"])]
    rows = []
    for cell, by_method in summary["leads"].items():
        panel = summary["panel"].get(cell, {})
        for method, ls in sorted(by_method.items(), key=lambda kv: (kv[0] == NULL, kv[0])):
            split, mx = ls.get("split"), ls.get("max")
            n = None
            if panel and method in panel["elicited"]:
                c = panel["elicited"][method][1]
                n = min(int(c.trials.min()), int(panel["naive"].trials.min())) if len(c) else None
            rows.append([cell, method + (" (control)" if method == NULL else ""),
                         split.setting if split else "n/a", short_time(split.naive) if split else "n/a",
                         *lead_cells(split), short_time(mx.naive) if mx else "n/a", *lead_cells(mx),
                         fmt(n), f"±{wilson_half_width(0.8, n):.2f}" if n else "n/a"])
    if not rows:
        return "<p>No elicitation rows: naive prompting only (run <code>conceptspace elicit RUN_DIR</code>).</p>"
    return grouped_table(groups, rows)


def no_object_table(summary: dict) -> str:
    rows = [[cell, f"{frac:.3f}"] for cell, frac in summary["no_object"].items()]
    return table(["held-out cell", "fraction of naive samples without an object"], rows) if rows else "<p>n/a</p>"


def agreement_text(rows, spec) -> str:
    agreement = readout_agreement(rows, spec)
    if agreement is None:
        return "<p>One readout only: nothing to compare.</p>"
    a, b = agreement["readouts"]
    return (f"<p>Decisions (p &gt; 0.5) of the {esc(a)} and {esc(b)} readouts on the same "
            f"{agreement['samples']:,} generated samples agree on:</p>"
            + table([*spec.names, JOINT], [[f"{agreement[c]:.3f}" for c in [*spec.names, JOINT]]]))


# ---- figures --------------------------------------------------------------------------------------------------
def run_figures(run_dir: Path, summary: dict) -> dict[str, Path]:
    """Every figure of the report under RUN_DIR/figures/; returns {name: path}."""
    out = Path(run_dir) / "figures"
    spec, readout, stats = summary["spec"], summary["readout"], summary["stats"]
    conv = summary["convergence"].get("corners")
    star = conv[0] if conv and not conv[1] else None
    held = [spec.cell_name(c) for c in spec.held_out if spec.cell_name(c) in summary["panel"]]
    paths = {"trajectory": figures.save_figure(
        run_plots.trajectory_figure(stats, spec, readout=readout, convergence_step=star,
                                    title=f"concept-space trajectories of one run (seed {summary['seed']}): naive "
                                          f"prompts, {readout} readout, smoothed σ = 2 snapshots; star: training "
                                          "converged (corners rule)"), out / "trajectory.png")}
    if held:
        paths["elicitation"] = figures.save_figure(run_plots.elicitation_figure(summary, held), out / "elicitation.png")
        if any(m != NULL for cell in held for m in summary["leads"].get(cell, {})):
            cond = summarise_condition([summary]) | {"runs": [summary]}
            paths["hidden_capability"] = figures.save_figure(sweep_figures.hidden_capability_figure([cond]),
                                                             out / "hidden_capability.png")
        contrast = run_plots.contrast_figure(run_dir, summary, held[0])
        if contrast is not None:
            paths["contrast"] = figures.save_figure(contrast, out / "naive_vs_elicited.png")
    marks = {"training converged": star}
    for cell in held:
        marks[f"turn of {cell}"] = summary["turn"].get(cell)
        t = summary["learning_times"][cell][JOINT][HEADLINE]
        if not t.censored:
            marks[f"naive {cell} reaches {RULES[HEADLINE][0]:g}"] = t.step
        for method, ls in summary["leads"].get(cell, {}).items():
            s = ls.get("split")
            if method != NULL and s is not None and not s.elicited.censored:
                marks[f"{method} reaches {RULES[HEADLINE][0]:g}"] = s.elicited.step
    strip = run_plots.sample_strip_figure(run_dir, marks, spec=spec)
    if strip is not None:
        paths["samples"] = figures.save_figure(strip, out / "samples_strip.png")
        paths["samples_gif"] = figures.samples_gif(run_dir)  # every snapshot, beside the page (not inlined)
    return paths


# ---- the page -------------------------------------------------------------------------------------------------
def build_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run dir {run_dir} does not exist")
    recover(run_dir)  # the leftovers of a killed earlier call
    rows = read_rows(run_dir / "tracker" / "rows.jsonl")
    if not rows:
        raise UserError(f"{run_dir}: no tracker rows (tracker/rows.jsonl is missing or empty); "
                        "run `conceptspace track RUN_DIR` first")
    summary = summarise_run(run_dir)
    spec, readout, status = summary["spec"], summary["readout"], summary["status"]
    if readout is None:
        raise UserError(f"{run_dir}: rows have no 'analytic' or 'learned' readout")
    if summary["last_step"] is None:
        raise UserError(f"{run_dir}: no naive rows for readout {readout!r}")
    paths = run_figures(run_dir, summary)
    config_text = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").exists() else "(none)"
    state = status.get("state", "unknown")
    body = [
        f"<p class='{'warn' if state != 'done' else ''}'>state <b>{esc(state)}</b>, step {fmt(status.get('step'))}"
        f" / {fmt(status.get('total_steps'))}; last snapshot {fmt(summary['last_step'])}; seed "
        f"{esc(summary['seed'])}; readout <b>{esc(readout)}</b>"
        + (f"<br>error: {esc(status['error'])}" if status.get("error") else "") + "</p>",
        "<h2>What this run shows</h2><ul>" + "".join(f"<li>{item}</li>" for item in findings(summary)) + "</ul>",
    ]
    if "hidden_capability" in paths:  # the first screen: the paper's panel and the samples behind it
        body += ["<h2>Hidden capability (the paper's panel, one seed)</h2>",
                 img_tag(paths["hidden_capability"], "hidden capability")]
    if "contrast" in paths:
        body += [img_tag(paths["contrast"], "naive vs elicited samples")]
    body += ["<h2>Concept space</h2>", img_tag(paths["trajectory"], "trajectory")]
    if "elicitation" in paths:
        body += ["<h2>Elicitation</h2><p>Left: naive prompting and each method at the setting chosen on the even "
                 "probes, scored on the odd probes (bands: 95% Wilson intervals of the smoothed counts), and faint "
                 "dashed the paper's max over settings per snapshot. Right: over-prompting per prompt.</p>",
                 img_tag(paths["elicitation"], "elicitation")]
    if "samples" in paths:
        body += ["<h2>Probe samples</h2>", img_tag(paths["samples"], "probe samples"),
                 "<p>Every snapshot, animated: <code>figures/samples.gif</code> beside this page.</p>"]
    body += explorer_section(run_dir, summary)
    body += [
        "<h2>Learning times</h2><p>Naive prompting of each held-out cell, per series (a concept, or joint = every "
        f"concept right). {esc(RULE_TEXT['paper'])}; {esc(RULE_TEXT['notebook'])}. Accuracy smoothed along "
        "snapshots (σ = 2). [lo, hi]: the same rule on the upper / lower 95% Wilson bound of the smoothed counts "
        "(? = that bound never clears the threshold); uncertain = the lower bound never clears it. Censored = "
        "never reached by the last snapshot (the true time is later).</p>",
        learning_time_table(summary),
        "<h2>Training convergence and turn</h2>", convergence_table(summary),
        "<h2>Memorisation (F2)</h2>", memorisation_table(summary),
        "<h2>Elicitation leads</h2><p>Lead = naive T − method T, both under the paper rule (0.8) on the joint "
        "accuracy. <b>split-half</b> (the headline): the method's setting is chosen on the even probes and "
        "scored with naive on the odd probes. <b>max over settings</b> (the paper's, beside it): the best setting "
        "per snapshot on all probes — biased upward (the null control shows the bias). Bound: exact; lower = "
        "naive never reached 0.8 (the lead is at least this); upper = the method never did; unknown = neither. "
        "Interval: [naive lo − method hi, naive hi − method lo] (? = unbounded on that side). Times: &gt; = "
        "censored (never reached by that step), ? = uncertain. Wilson ±: the 95% half-width at p = 0.8 per "
        "snapshot with the probes of one half.</p>",
        leads_table(summary),
        "<h2>No-object fraction</h2>", no_object_table(summary),
        "<h2>Readout agreement</h2>", agreement_text(rows, spec),
        "<h2>Provenance</h2>", provenance_table(run_dir),
        "<h2>Config</h2>", f"<pre>{esc(config_text)}</pre>",
    ]
    out = run_dir / "report.html"
    atomic_write_text(out, page(f"conceptspace report: {summary['name'] or run_dir.name}", body))
    return out


def provenance_table(run_dir: Path):
    """Code version, libraries, machine, precision and command of every start of the run (a resume adds one)."""
    sessions = provenance.read(run_dir)
    if not sessions:
        return "<p>none recorded (a run written before provenance.json existed)</p>"
    keys = ["code", "torch", "diffusers", "python", "device", "precision", "machine"]
    return table(["start", *keys, "command"], [
        [i + 1, *[s.get(k, "") for k in keys],
         Raw(f'<code style="display:block;text-align:left">{esc(s.get("command", ""))}</code>')]
        for i, s in enumerate(sessions)])


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    if len(argv) != 1 or argv[0].startswith("-"):
        raise UserError(f"usage: conceptspace report RUN_DIR (got {argv})")
    out = build_report(Path(argv[0]))
    print(f"wrote {out}")
    return 0

"""`conceptspace aggregate SWEEP_DIR [--out DIR]`: a sweep's runs -> conditions (runs that differ only by
seed) -> one verdict per claim of the paper (docs/claims.md).

Every directory under SWEEP_DIR holding a config.yaml is a run. Writes (default SWEEP_DIR/aggregate/):
runs.csv (one row per run, unfinished and failed ones included with their state), conditions.csv (one row
per condition and held-out cell: learning times as median [range] with crossed counts, F2 counts, F3 leads),
claims.json (every number behind the verdicts), the figures and a self-contained sweep.html. Figures and
claims use finished runs only (a running run's censored time says nothing yet); the page lists the others.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from .. import provenance
from ..checkpoint import atomic_write_text
from ..errors import UserError
from . import claim_figures, claims, conditions, figures, sweep_figures
from .html import Raw, esc, img_tag, page, table, time_cell
from .rundir import DELTA_KEYS, read_config, read_status, summarise_run
from .stats import JOINT
from .times import HEADLINE, RULES


def find_runs(sweep_dir: Path, skip: Path) -> list[Path]:
    """Directories with a config.yaml, except hidden ones (Hydra's .hydra/config.yaml) and the output dir."""
    runs = set()
    for path in sweep_dir.rglob("config.yaml"):
        rel = path.parent.relative_to(sweep_dir)
        if not any(part.startswith(".") for part in rel.parts) and skip not in [path.parent, *path.parents]:
            runs.add(path.parent)
    return sorted(runs)


def run_record(run_dir: Path, sweep_dir: Path) -> dict:
    """One CSV row (flat) plus the summary it came from (under '_summary', not written)."""
    config, status = read_config(run_dir), read_status(run_dir)
    data = config.get("data") or {}
    record = {"run": str(run_dir.relative_to(sweep_dir)) or ".", "name": config.get("name"),
              "seed": config.get("seed"), "state": status.get("state", "unknown"), "step": status.get("step"),
              "total_steps": status.get("total_steps"), "error": status.get("error")}
    try:
        summary = summarise_run(run_dir)
    except UserError as e:  # e.g. no spec yet: still listed, with the reason
        record["error"] = record["error"] or str(e)
        return {**record, "_summary": None}
    spec = summary["spec"]
    record |= {DELTA_KEYS[c]: data.get(DELTA_KEYS[c]) for c in spec.names if c in DELTA_KEYS}
    for c in spec.names:
        signal = summary["signal"]
        record[f"signal_raw_{c}"] = signal["raw"][c] if signal else None
        record[f"signal_norm_{c}"] = signal["normalised"][c] if signal else None
    record["readout"], record["last_step"] = summary["readout"], summary["last_step"]
    for cell, times in summary["learning_times"].items():
        for series, by_rule in times.items():
            for rule, t in by_rule.items():
                key = f"T{RULES[rule][0]}_{cell}_{series}"
                record[key], record[f"{key}_censored"] = t.step, t.censored
    for rule, (step, censored) in summary["convergence"].items():
        record[f"convergence_{rule}"], record[f"convergence_{rule}_censored"] = step, censored
    for cell, mem in summary["memorisation"].items():
        record[f"F2_{cell}"], record[f"turn_step_{cell}"] = mem["verdict"], mem["turn_step"]
    for cell, by_method in summary["leads"].items():
        for method, ls in by_method.items():
            for est, x in ls.items():
                record[f"lead_{est}_{cell}_{method}"] = x.lead
    return {**record, "_summary": summary}


def write_csv(records: list[dict], path: Path) -> Path:
    columns = list(dict.fromkeys(k for r in records for k in r if not k.startswith("_")))
    table = io.StringIO()
    writer = csv.DictWriter(table, columns)
    writer.writeheader()
    writer.writerows([{k: r.get(k) for k in columns} for r in records])
    atomic_write_text(path, table.getvalue())
    return path


def condition_rows(conds: list[dict]) -> list[dict]:
    """conditions.csv: one row per (condition, held-out cell)."""
    rows = []
    for c in conds:
        for cell, times in c["learning_times"].items():
            row = {"name": c["name"], **{f"delta_{k}": v for k, v in c["deltas"].items()}, "cell": cell,
                   "n_seeds": c["n_seeds"], "seeds": " ".join(str(s) for s in c["seeds"])}
            for series, by_rule in times.items():
                for rule, stat in by_rule.items():
                    row[f"T{RULES[rule][0]}_{series}"] = conditions.format_censored(stat)
            for verdict, count in c["memorisation"].get(cell, {}).items():
                row[f"F2 {verdict}"] = count
            for method, by_est in c["leads"].get(cell, {}).items():
                for est in ("split", "max"):
                    s = by_est[est]
                    row[f"lead_{est}_{method}"] = f"{conditions.fmt(s['median'])} [{conditions.fmt(s['min'])}, " \
                                                  f"{conditions.fmt(s['max'])}] >0 in {s['n_positive']}/{s['n']}"
                if "verdict" in by_est:
                    row[f"F3_{method}"] = by_est["verdict"]
            rows.append(row)
    return rows


def sweep_claims(summaries: list[dict], conds: list[dict]) -> dict:
    """The sweep-level verdicts: F1 (trends over Δ), F2 and F3 (per condition), F4 (2x2x2 runs)."""
    trends = claims.f1_trends(summaries)
    points = claims.f4_points(summaries)
    multi = [s for s in summaries if len(s["spec"].held_out) > 1]
    out = {"F1": trends, "F2": {}, "F3": {}, "F4": {"points": points, "runs": len(multi),
                                                    "runs_not_converged": sum(
                                                        1 for s in multi
                                                        if s["convergence"].get("corners", (0, True))[1])}}
    if points:
        out["F4"]["trend"] = claims.f4_trend(points)
    for c in conds:
        label = condition_label(c)
        out["F2"][label] = c["memorisation"]
        out["F3"][label] = {cell: {m: {"verdict": v.get("verdict"), "split": v["split"], "max": v["max"]}
                                   for m, v in by_m.items()} for cell, by_m in c["leads"].items()}
    return out


def condition_label(c: dict) -> str:
    deltas = ", ".join(f"Δ{k} {v}" for k, v in c["deltas"].items() if v is not None)
    code = f"; code {c['code']}" if c.get("code") else ""
    return f"{c['name']} ({deltas}; {c['n_seeds']} seed{'s' if c['n_seeds'] != 1 else ''}{code})"


def verdict_lines(result: dict, conds: list[dict]) -> list[str]:
    lines = []
    own = [t for t in result["F1"] if t["against"] == f"delta_{t['concept']}" and t["concept"] != JOINT]
    for t in result["F1"]:
        fixed = ", ".join(f"Δ{k} {v}" for k, v in t["fixed"].items())
        lines.append(f"F1 {t['cell']} {t['concept']} learning time vs {t['against']} at {fixed}: {t['verdict']} "
                     f"(ρ {rho(t['rho_censored_at_bound'])} with censored at bound, {rho(t['rho_crossed_only'])} "
                     f"crossed only; {t['n']} runs, {t['n_censored']} censored; expected sign "
                     f"{'+' if t['expected_sign'] > 0 else '−'})")
    if not own:
        lines.append("F1: needs ≥ 2 values of a concept's Δ (a Δ sweep) — not computable on this sweep")
    for c in conds:
        lines += [f"[{condition_label(c)}] {v}" for v in c["verdicts"]]
    f4 = result["F4"]
    if "trend" in f4:
        t = f4["trend"]
        lines.append(f"F4: {t['verdict']} (ρ {rho(t['rho_censored_at_bound'])} censored at bound, "
                     f"{rho(t['rho_crossed_only'])} crossed only; {t['n']} held-out cells of {f4['runs']} runs; "
                     f"{f4['runs_not_converged']} runs never converged)")
    elif f4["runs"]:
        lines.append(f"F4: no run's training cells converged ({f4['runs']} runs with several held-out cells)")
    return lines


def rho(v) -> str:
    return "n/a" if v is None else f"{v:+.2f}"


def aggregate(sweep_dir: Path, out_dir: Path | None = None, allow_mixed: bool = False) -> dict[str, Path]:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserError(f"sweep dir {sweep_dir} does not exist")
    out_dir = Path(out_dir) if out_dir is not None else sweep_dir / "aggregate"
    runs = find_runs(sweep_dir, out_dir)
    if not runs:
        raise UserError(f"{sweep_dir}: no runs found (no directory below it holds a config.yaml)")
    records = [run_record(r, sweep_dir) for r in runs]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": write_csv(records, out_dir / "runs.csv")}
    finished = [r for r in records if r["state"] == "done" and r["_summary"] and r["_summary"]["learning_times"]]
    unfinished = [r for r in records if r not in finished]
    summaries = [r["_summary"] for r in finished]
    conds = []
    versions = {s["run_dir"]: provenance.run_code_version(Path(s["run_dir"])) for s in summaries}
    mixed = len(set(versions.values())) > 1
    if mixed:
        print(f"note: runs come from {len(set(versions.values()))} code versions "
              f"({', '.join(sorted(set(versions.values())))}); "
              + ("pooled (--allow-mixed)" if allow_mixed else "conditions keep them apart (--allow-mixed pools them)"))
    for group in conditions.group_conditions(summaries, None if allow_mixed else versions):
        code = versions[group[0]["run_dir"]] if mixed and not allow_mixed else None
        conds.append({**conditions.summarise_condition(group), "runs": group, "code": code})
    body = [f"<p>{len(records)} runs under {esc(sweep_dir)}: {len(finished)} finished with rows (used below) in "
            f"{len(conds)} conditions, {len(unfinished)} not (listed at the end, excluded). Learning times: "
            f"the {HEADLINE} rule (first snapshot where the σ = 2-smoothed accuracy reaches "
            f"{RULES[HEADLINE][0]}); leads: split-half (setting chosen on even probes, scored on odd), the "
            "paper's max-over-settings beside it.</p>"]
    if conds:
        result = sweep_claims(summaries, conds)
        lines = verdict_lines(result, conds)
        paths["conditions"] = write_csv(condition_rows(conds), out_dir / "conditions.csv")
        paths["claims"] = out_dir / "claims.json"
        atomic_write_text(paths["claims"], json.dumps({"verdicts": lines, **result}, indent=1, default=jsonable))
        body += ["<h2>Verdicts</h2><ul>" + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul>"]
        for name, make in [("hidden_capability", lambda: sweep_figures.hidden_capability_figure(conds)),
                           ("trajectories", lambda: sweep_figures.condition_trajectories_figure(conds)),
                           ("f1_learning_time", lambda: claim_figures.f1_figure(summaries, result["F1"])),
                           ("f4_distance", lambda: claim_figures.f4_figure(result["F4"]["points"],
                                                                            result["F4"].get("trend")))]:
            if name == "f4_distance" and not result["F4"]["points"]:
                continue
            paths[name] = figures.save_figure(make(), out_dir / f"{name}.png")
            body += [f"<h2>{esc(name.replace('_', ' '))}</h2>", img_tag(paths[name])]
        body += ["<h2>Conditions</h2>", records_table(condition_rows(conds))]
    if unfinished:
        body += ["<h2>Unfinished, failed or empty runs</h2>",
                 table(["run", "state", "step", "total steps", "error"],
                       [[r["run"], Raw(f"<b>{esc(r['state'])}</b>"), r["step"], r["total_steps"], r["error"]]
                        for r in unfinished])]
    body += ["<h2>All runs</h2><p>Censored learning times read '&gt; last snapshot'.</p>", records_table(records)]
    paths["html"] = out_dir / "sweep.html"
    atomic_write_text(paths["html"], page(f"conceptspace sweep: {sweep_dir.name}", body))
    return paths


def records_table(records: list[dict]) -> str:
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


def jsonable(value):
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="conceptspace aggregate", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default SWEEP_DIR/aggregate)")
    parser.add_argument("--allow-mixed", action="store_true",
                        help="pool seeds trained by different code versions into one condition")
    from ..tracker.offline import parse

    args = parse(parser, argv)
    paths = aggregate(args.sweep_dir, args.out, allow_mixed=args.allow_mixed)
    print("\n".join(f"wrote {p}" for p in paths.values()))
    return 0

"""The tables and figures of docs/laptop_reproduction.md, from the archived runs committed here (config, status,
provenance and tracker rows; no weights):

    .venv/bin/python docs/results/laptop/tables.py
Runs `conceptspace aggregate --allow-mixed` on grid/ (F1, F2) and hidden_capability/ (F3), writing each
folder's aggregate/ (runs.csv, conditions.csv, claims.json, figures, sweep.html), then prints the markdown
tables and the verdict lines. --allow-mixed: the runs of one preset were trained by one code version of the
training path; their provenance names several commits because they were recorded per job (fixed since).
"""

import csv
import json
from pathlib import Path

from conceptspace.analysis.aggregate import aggregate

HERE = Path(__file__).parent
COLUMNS = {
    "grid": ["delta_color", "delta_size", "n_seeds", "T0.8_color", "T0.8_size", "T0.8_joint", "T0.9_color",
             "F2 memorised then turned", "F2 never turned", "F2 went straight", "F2 neither"],
    "hidden_capability": ["delta_color", "delta_size", "n_seeds", "T0.8_joint", "lead_split_overprompt",
                          "lead_max_overprompt", "lead_split_intervention", "lead_max_intervention",
                          "lead_split_null", "lead_max_null", "F3_overprompt", "F3_intervention"],
}


def markdown(rows: list[dict], columns: list[str]) -> str:
    columns = [c for c in columns if any(c in r for r in rows)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "0" if c.startswith("F2") else "")) for c in columns) + " |"
              for r in rows]
    return "\n".join(lines)


def explore_table() -> str:
    """The runs the configuration was chosen from (explore/): joint accuracy of the held-out cell (all 32
    probes, unsmoothed) per method and setting at every other snapshot."""
    from conceptspace.analysis.rundir import summarise_run
    from conceptspace.analysis.stats import JOINT, select

    out = []
    for run in sorted((HERE / "explore").iterdir()):
        s = summarise_run(run)
        cell = s["spec"].cell_name(s["spec"].held_out[0])
        stats = [x for x in s["stats"] if x.cell == cell and x.readout == s["readout"]]
        steps = sorted({x.step for x in stats})[1::2]
        cfg = s["config"]
        out += [f"**{run.name}**: lr {cfg['train']['lr']:g}, {cfg['train']['steps']:,} steps, Δcolor "
                f"{cfg['data']['sep_col']}, seed {cfg['seed']}", "",
                "| method setting | " + " | ".join(f"{t:,}" for t in steps) + " |", "|---" * (len(steps) + 1) + "|"]
        for method, setting in sorted({(x.method, x.setting) for x in stats}):
            acc = {x.step: x.successes(JOINT) / x.n for x in select(stats, readout=s["readout"], method=method,
                                                                     setting=setting, cell=cell)}
            out.append(f"| {method} {setting} | " + " | ".join(f"{acc.get(t, float('nan')):.2f}" for t in steps)
                       + " |")
        out.append("")
    return "\n".join(out)


def end_of_window_table() -> str:
    """F3 at the end of the window, per seed and pooled: joint accuracy of blue-small on the scoring half
    (odd probes) at the last snapshot, for naive prompting and each method at its split-chosen setting (chosen
    on the even probes), with pooled Wilson 95% intervals."""
    from conceptspace.analysis.curves import wilson
    from conceptspace.analysis.rundir import summarise_run
    from conceptspace.analysis.stats import JOINT, NAIVE, cell_stats, select
    from conceptspace.tracker.rows import read_rows

    pooled: dict[str, list[int]] = {}
    lines = []
    for run in sorted(p for p in (HERE / "hidden_capability").iterdir() if (p / "config.yaml").is_file()):
        s = summarise_run(run)
        cell = s["spec"].cell_name(s["spec"].held_out[0])
        odd = cell_stats(read_rows(run / "tracker" / "rows.jsonl"), s["spec"], half=1)
        last = s["last_step"]
        chosen = {NAIVE: ""} | {m: ls["split"].setting for m, ls in s["leads"].get(cell, {}).items()
                                if ls.get("split") is not None and ls["split"].setting is not None}
        cells = []
        for method, setting in chosen.items():
            x = [v for v in select(odd, readout=s["readout"], method=method, setting=setting, cell=cell)
                 if v.step == last]
            k, n = (x[0].successes(JOINT), x[0].n) if x else (0, 0)
            pooled.setdefault(method, [0, 0])
            pooled[method][0] += k
            pooled[method][1] += n
            cells.append(f"{method}{' ' + setting if setting else ''}: {k}/{n}")
        lines.append(f"| seed {s['seed']} | step {last:,} | " + " | ".join(cells) + " |")
    total = []
    for method, (k, n) in pooled.items():
        lo, hi = wilson(k, n)
        total.append(f"{method}: {k}/{n} = {k / max(n, 1):.2f} [{float(lo):.2f}, {float(hi):.2f}]")
    return "\n".join(["| seed | snapshot | joint accuracy on the scoring half |", "|---|---|---|", *lines,
                      "", "Pooled over seeds (Wilson 95%): " + "; ".join(total)])


def main() -> None:
    if (HERE / "explore").is_dir():
        print("## explore\n\n" + explore_table())
    for name, columns in COLUMNS.items():
        folder = HERE / name
        if not folder.is_dir():
            continue
        paths = aggregate(folder, allow_mixed=True)
        rows = list(csv.DictReader(open(paths["conditions"])))
        print(f"## {name}\n\n{markdown(rows, columns)}\n")
        for line in json.loads(Path(paths["claims"]).read_text())["verdicts"]:
            print(f"- {line}")
        print()
    if (HERE / "hidden_capability").is_dir():
        print("## end of window (F3)\n\n" + end_of_window_table())


if __name__ == "__main__":
    main()

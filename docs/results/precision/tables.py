"""The precision study's tables and figure (issue 21; its write-up is still to come), from the archived runs
committed here (fp32/ and bf16/: the laptop F3 preset, seeds 0-4 each; config, status, provenance, metrics
and tracker rows, no weights):

    .venv/bin/python docs/results/precision/tables.py
Runs `conceptspace aggregate` over each precision's folder (writing its aggregate/), prints the per-condition
table, the verdicts and a per-seed paired table, and draws precision.png. The same seed trains on the same
data order, initial weights and noise draws in both precisions, so a per-seed difference is the precision's
effect, to be set against the seed-to-seed spread.
"""

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from conceptspace.analysis.aggregate import aggregate  # noqa: E402
from conceptspace.analysis.curves import curve, wilson  # noqa: E402
from conceptspace.analysis.figures import legend_below, save_figure, seeds_text, threshold_line  # noqa: E402
from conceptspace.analysis.rundir import summarise_run  # noqa: E402
from conceptspace.analysis.stats import JOINT, NAIVE  # noqa: E402

HERE = Path(__file__).parent
PRECISIONS = ("fp32", "bf16")
# The control for numerical noise: the committed F3 runs (docs/results/laptop/hidden_capability), the same preset
# and seeds in fp32 on another 2-core AMD EPYC (AVX2 kernels, no avx512_bf16). Read, never re-aggregated here.
CONTROL = "fp32, other CPU"
FOLDERS = {"fp32": HERE / "fp32", "bf16": HERE / "bf16", CONTROL: HERE.parent / "laptop" / "hidden_capability"}
COLOURS = {"fp32": "#1f77b4", "bf16": "#d62728", CONTROL: "#7f7f7f"}
OVERPROMPT = "offset=0.35"  # one fixed over-prompt setting for both precisions: nothing is chosen on the data
COLUMNS = ["n_seeds", "T0.8_color", "T0.8_size", "T0.9_size", "T0.8_joint", "lead_split_overprompt",
           "lead_split_null", "F3_overprompt", "F2 never turned", "F2 neither", "F2 memorised then turned"]
LOSS_TAIL = 1000  # steps: the final loss is the mean logged loss over the run's last LOSS_TAIL steps


def runs(label: str) -> list[Path]:
    return sorted(p for p in FOLDERS[label].iterdir() if (p / "config.yaml").is_file())


def losses(run: Path) -> tuple[np.ndarray, np.ndarray]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    lines = [x for x in lines if "loss" in x]
    return np.array([x["step"] for x in lines]), np.array([x["loss"] for x in lines])


def final_loss(run: Path) -> float:
    steps, loss = losses(run)
    return float(loss[steps > steps.max() - LOSS_TAIL].mean())


def held_out_curve(summary: dict, method: str, setting: str = "") -> tuple[np.ndarray, np.ndarray]:
    spec = summary["spec"]
    cell = spec.cell_name(spec.held_out[0])
    c = curve(summary["stats"], cell, JOINT, readout=summary["readout"], method=method, setting=setting)
    return c.steps, c.smoothed()[0]


def trained_curve(summary: dict) -> tuple[np.ndarray, np.ndarray]:
    """Mean joint accuracy over the trained cells (naive prompting), smoothed as the paper smooths."""
    spec = summary["spec"]
    curves = [curve(summary["stats"], spec.cell_name(c), JOINT, readout=summary["readout"]) for c in spec.cells
              if c not in spec.held_out]
    return curves[0].steps, np.mean([c.smoothed()[0] for c in curves], axis=0)


def band(ax, series: list[tuple[np.ndarray, np.ndarray]], colour: str, label: str, control: bool) -> None:
    """Median over seeds with the min-max band (all seeds share the step grid); the control as a dashed median."""
    steps = series[0][0]
    ys = np.array([y for _, y in series])
    if control:
        ax.plot(steps, np.median(ys, 0), color=colour, lw=1.2, ls="--", label=label)
        return
    ax.fill_between(steps, ys.min(0), ys.max(0), color=colour, alpha=0.18, lw=0)
    ax.plot(steps, np.median(ys, 0), color=colour, lw=1.8, label=label)


def figure(summaries: dict[str, list[dict]]) -> Path:
    n = {p: len(s) for p, s in summaries.items()}
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.3))
    for p, ss in summaries.items():
        label, c, control = f"{p} ({seeds_text(n[p])}{', median' if p == CONTROL else ''})", COLOURS[p], p == CONTROL
        raw = [losses(Path(s["run_dir"])) for s in ss]
        smooth = [(t, np.convolve(y, np.ones(5) / 5, mode="same")) for t, y in raw]  # 5 logs (500 steps)
        band(axes[0], [(t[2:-2], y[2:-2]) for t, y in smooth], c, label, control)
        band(axes[1], [trained_curve(s) for s in ss], c, label, control)
        band(axes[2], [held_out_curve(s, NAIVE) for s in ss], c, label, control)
        band(axes[3], [held_out_curve(s, "overprompt", OVERPROMPT) for s in ss], c, label, control)
    axes[0].set(yscale="log", title="training loss (running mean of 5 logs)", xlabel="step", ylabel="loss")
    axes[1].set(title="trained cells, naive prompt", ylabel="joint accuracy (σ=2 snapshots)")
    axes[2].set(title="held-out blue-small, naive prompt")
    axes[3].set(title=f"held-out blue-small, over-prompt {OVERPROMPT}")
    for ax in axes[1:]:
        ax.set(xlabel="step", ylim=(-0.02, 1.02))
        threshold_line(ax, label=False)
    for ax in axes:
        legend_below(ax)
    fig.suptitle("fp32 against bf16 autocast: laptop F3 preset (tiny U-Net, 16 px, Δcolor 0.3, Δsize 0.4, 3k steps); "
                 f"median and min–max over {n['fp32']} seeds per precision, same seeds; dashed: fp32 on another CPU")
    fig.tight_layout()
    return save_figure(fig, HERE / "precision.png")


def markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| runs | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    lines += ["| " + r["_precision"] + " | " + " | ".join(str(r.get(c) or "0") for c in columns) + " |"
              for r in rows]
    return "\n".join(lines)


def seed_row(s: dict) -> dict:
    spec = s["spec"]
    cell = spec.cell_name(spec.held_out[0])
    t, conv = s["learning_times"][cell]["size"]["paper"], s["convergence"]["corners"]
    last = [x for x in s["stats"] if x.cell == cell and x.readout == s["readout"] and x.step == s["last_step"]]
    counts = {(x.method, x.setting): (x.successes(JOINT), x.n) for x in last}
    return {"loss": final_loss(Path(s["run_dir"])), "T0.8 size": (">" if t.censored else "") + f"{t.step:,}",
            "converged": (">" if conv[1] else "") + f"{conv[0]:,}", "naive": counts[(NAIVE, "")],
            "over": counts[("overprompt", OVERPROMPT)]}


def paired_table(summaries: dict[str, list[dict]]) -> str:
    by_seed = {p: {s["seed"]: seed_row(s) for s in ss} for p, ss in summaries.items()}
    lines = ["| seed | runs | final loss | T0.8 size (held out) | all cells converged (corners) | "
             f"naive joint @3k | over-prompt {OVERPROMPT} joint @3k |", "|---|---|---|---|---|---|---|"]
    for seed in sorted(by_seed["fp32"]):
        for p in summaries:
            r = by_seed[p][seed]
            lines.append(f"| {seed} | {p} | {r['loss']:.4f} | {r['T0.8 size']} | {r['converged']} | "
                         f"{r['naive'][0]}/{r['naive'][1]} | {r['over'][0]}/{r['over'][1]} |")
    seeds = sorted(by_seed["fp32"])
    loss = {p: np.array([by_seed[p][k]["loss"] for k in seeds]) for p in summaries}
    lines.append("")
    for p in summaries:
        rel = loss[p] / loss["fp32"] - 1
        pooled = []
        for key in ("naive", "over"):
            k, n = (sum(by_seed[p][x][key][i] for x in seeds) for i in (0, 1))
            lo, hi = wilson(k, n)
            name = "naive" if key == "naive" else "over-prompt"
            pooled.append(f"{name} {k / n:.2f} [{float(lo):.2f}, {float(hi):.2f}]")
        lines.append(f"- **{p}**: final loss median {np.median(loss[p]):.4f} [{loss[p].min():.4f}, "
                     f"{loss[p].max():.4f}]"
                     + (f", paired against fp32 here {np.median(rel):+.1%} [{rel.min():+.1%}, {rel.max():+.1%}]"
                        if p != "fp32" else f" (seed-to-seed range {np.ptp(loss[p]) / np.median(loss[p]):.0%} of "
                        "the median)") + "; joint accuracy at 3k pooled over seeds (Wilson 95%): " + ", ".join(pooled))
    return "\n".join(lines)


def main() -> None:
    rows, verdicts = [], []
    for p in PRECISIONS:  # one aggregate per precision folder: one condition each
        paths = aggregate(HERE / p)
        rows += [{**r, "_precision": p} for r in csv.DictReader(open(paths["conditions"]))]
        verdicts += [f"{p}: {v}" for v in json.loads(Path(paths["claims"]).read_text())["verdicts"]]
    control = list(csv.DictReader(open(FOLDERS[CONTROL] / "aggregate" / "conditions.csv")))
    rows += [{**r, "_precision": CONTROL} for r in control]
    summaries = {p: [summarise_run(r) for r in runs(p)] for p in FOLDERS}
    print("## per condition\n\n" + markdown(rows, [c for c in COLUMNS if any(c in r for r in rows)]) + "\n")
    print("\n".join(f"- {v}" for v in verdicts))
    print("\n## per seed\n\n" + paired_table(summaries) + "\n")
    print(f"figure: {figure(summaries)}")


if __name__ == "__main__":
    main()

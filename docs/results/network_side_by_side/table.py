"""The side-by-side table of docs/network_side_by_side.md, from the runs' rows and metrics committed here:

    .venv/bin/python docs/results/network_side_by_side/table.py [--figure docs/network_side_by_side.png]
Per run: each cell's learning time per concept (paper rule: σ = 2-smoothed accuracy ≥ 0.8; '+' = censored
at the last snapshot), the held-out cell's naive coordinates at the last snapshot, loss and γ(0)."""

import json
from pathlib import Path

from conceptspace.analysis.curves import curve
from conceptspace.analysis.rundir import summarise_run
from conceptspace.analysis.stats import JOINT, trajectory
from conceptspace.analysis.times import learning_time

HERE = Path(__file__).parent


def figure(runs, out: Path) -> None:
    """The held-out cell's naive coordinates over training, σ = 2-smoothed as the paper's plots."""
    from conceptspace.analysis.curves import gaussian_smooth
    from conceptspace.analysis.figures import plt, save_figure

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    colours = {"new": "tab:blue", "old": "tab:orange"}
    labels = {"new": "paper network (model/paper_vdm)", "old": "old network (model/diffusers_paper)"}
    for run in runs:
        s = summarise_run(run)
        spec = s["spec"]
        held = spec.cell_name(spec.held_out[0])
        steps, coords = trajectory(s["stats"], held, readout=s["readout"])
        net, seed = run.name.split("_seed")
        for ax, concept in zip(axes, spec.names):
            ax.plot(steps, gaussian_smooth(coords[concept]), color=colours[net], ls="-" if seed == "0" else "--",
                    label=f"{labels[net]}, seed {seed}")
    for ax, concept in zip(axes, spec.names):
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.set_xlabel("training step")
        ax.set_title(f"{concept} coordinate (0 = value 0's class mean, 1 = {held}'s)", fontsize=9)
    axes[0].set_ylabel("mean coordinate of 16 probes")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Held-out {held}, naive prompt, paper VDM formulation, 16 px, Δcolor 0.284: old vs paper "
                 f"network, {len(runs) // 2} seed{'s' if len(runs) > 2 else ''} each (σ = 2 snapshots)", fontsize=9)
    save_figure(fig, out)


def main() -> None:
    import sys

    runs = sorted(p for p in HERE.iterdir() if (p / "config.yaml").is_file())
    if "--figure" in sys.argv:
        figure(runs, Path(sys.argv[sys.argv.index("--figure") + 1]))
    header = None
    for run in runs:
        s = summarise_run(run)
        spec, stats, readout = s["spec"], s["stats"], s["readout"]
        cols = {}
        for cell in spec.cells:
            name = spec.cell_name(cell)
            for series in (*spec.names, JOINT):
                t = learning_time(curve(stats, name, series, readout=readout))
                cols[f"{name} {series}"] = f"{t.step}{'+' if t.censored else ''}"
        held = spec.cell_name(spec.held_out[0])
        steps, coords = trajectory(stats, held, readout=readout)
        cols[f"{held} coords@{steps[-1]}"] = " ".join(f"{c}={coords[c][-1]:.2f}" for c in spec.names)
        last = [m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in m][-1]
        cols["loss / γ(0) at end"] = f"{last['loss']:.0f} / {last['gamma_0']:.2f}"
        if header is None:
            header = list(cols)
            print("| run | " + " | ".join(header) + " |")
            print("|---" * (len(header) + 1) + "|")
        print(f"| {run.name} | " + " | ".join(cols[h] for h in header) + " |")


if __name__ == "__main__":
    main()

"""The VDM precision probe (issue 21; write-up in docs/precision_study.md, "The VDM"): does bf16 autocast change a
VDM's training once its learned γ(0) is below −11.5, and does keeping the input convolution in fp32
(`train.precision=bf16_fp32_input`) undo it? Laptop preset, VDM, γ(0) started at −11 (γ_min) so that it crosses
−11.5 within 600 steps instead of ~6.5k; 3k steps; seeds 0-2 in each precision.

    .venv/bin/python docs/results/precision/vdm_probe.py --archive runs/laptop   # once, from the trained runs
    .venv/bin/python docs/results/precision/vdm_probe.py                         # tables and vdm_probe.png
`--archive` copies each run without weights to vdm/<precision>/seed=N/ and adds per_t.json: the final snapshot's
denoising error E|ε − ε̂|² per dimension on 21 times t (the same 128 training images and noise for every
run), evaluated in each of the three precisions. The second call reads only the archive.
"""

import argparse
import gzip
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
ARCHIVE = HERE / "vdm"
PRECISIONS = ("fp32", "bf16", "bf16_fp32_input")
COLOURS = {"fp32": "#1f77b4", "bf16": "#d62728", "bf16_fp32_input": "#2ca02c"}
FILES = ("config.yaml", "concept_spec.json", "metrics.jsonl", "provenance.json", "status.json")
TAIL = 500  # steps: the final loss is the mean logged loss over the last TAIL steps
T_GRID = np.linspace(0, 1, 21)


# ---- archive: from the trained runs (weights needed) ---------------------------------------------------------
def denoising_errors(run: Path) -> dict:
    """The final snapshot's E|ε − ε̂|² per dimension at each t of T_GRID, in each precision."""
    from conceptspace.data import build_source
    from conceptspace.diffusion import build_process
    from conceptspace.run import load_run_config, load_snapshot, snapshots_or_error

    cfg = load_run_config(run)
    step, snapshot = snapshots_or_error(run)[-1]
    process = build_process(cfg.diffusion)
    process.load_state(snapshot)
    images, vectors = build_source(cfg.data, 0).train_batch(10**6, 128)  # seed 0's data: the same for all runs
    eps = torch.randn(images.shape, generator=torch.Generator().manual_seed(1))
    out = {"step": step, "gamma_0": process.b.item(), "w": abs(process.w.item()), "t": T_GRID.tolist(), "mse": {}}
    for precision in PRECISIONS:
        model = load_snapshot(snapshot, "cpu").eval()
        if precision == "bf16_fp32_input":
            model.keep_input_conv_fp32()
        errors = []
        for t in T_GRID:
            g = process.gamma(torch.full((len(images),), float(t)))
            z = torch.sigmoid(-g).sqrt().view(-1, 1, 1, 1) * images + torch.sigmoid(g).sqrt().view(-1, 1, 1, 1) * eps
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision != "fp32"):
                eps_hat = model(z, process.model_timesteps(g), vectors).float()
            errors.append(((eps - eps_hat) ** 2).mean().item())
        out["mse"][precision] = errors
    out["gamma"] = process.gamma(torch.tensor(T_GRID, dtype=torch.float32)).tolist()
    return out


def archive(runs: Path) -> None:
    from omegaconf import OmegaConf

    for run in sorted(runs.glob("*diffusion.gamma_min=-11,diffusion=vdm,*")):
        cfg = OmegaConf.load(run / "config.yaml")
        if json.loads((run / "status.json").read_text())["state"] != "done":
            continue
        dest = ARCHIVE / cfg.train.precision / f"seed={cfg.seed}"
        if (dest / "per_t.json").is_file():  # archived already
            continue
        (dest / "tracker").mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copy2(run / name, dest / name)
        rows = run / "tracker" / "rows.jsonl"
        with open(rows, "rb") as src, gzip.open(dest / "tracker" / "rows.jsonl.gz", "wb") as gz:
            shutil.copyfileobj(src, gz)
        (dest / "per_t.json").write_text(json.dumps(denoising_errors(run)))
        print(f"archived {dest}")


# ---- tables and figure: from the archive -----------------------------------------------------------------------
def runs_of(precision: str) -> dict[int, Path]:
    return {int(p.name.split("=")[1]): p for p in sorted((ARCHIVE / precision).glob("seed=*"))}


def logged(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [x for x in rows if "loss" in x]
    return tuple(np.array([x[k] for x in rows]) for k in ("step", "loss", "gamma_0"))


def final_loss(run: Path) -> float:
    steps, loss, _ = logged(run)
    return float(loss[steps > steps.max() - TAIL].mean())


def per_t(run: Path) -> dict:
    return json.loads((run / "per_t.json").read_text())


def diffusion_bits(d: dict, precision: str) -> float:
    """The VLB's diffusion term in bits/dim, 0.5 |w| E_t E|ε − ε̂|², on the t grid (trapezoid)."""
    return 0.5 * d["w"] * np.trapezoid(d["mse"][precision], d["t"]) / math.log(2)


def times(run: Path) -> dict:
    from conceptspace.analysis.rundir import summarise_run

    s = summarise_run(run)
    spec = s["spec"]
    held = s["learning_times"][spec.cell_name(spec.held_out[0])]
    text = {k: (">" if v["paper"].censored else "") + f"{v['paper'].step:,}" for k, v in held.items()}
    corners = s["convergence"]["corners"]
    return {**text, "corners": (">" if corners[1] else "") + f"{corners[0]:,}"}


def spread(values) -> str:
    v = np.asarray(values)
    return f"{np.median(v):+.3f} [{v.min():+.3f}, {v.max():+.3f}]"


def tables() -> str:
    base = runs_of("fp32")
    lines = ["| seed | precision | γ(0) @3k | final loss, bits/dim | vs fp32 | diffusion term (own precision) | "
             "held-out T0.8 colour | held-out T0.8 size | corners converged |", "|---|---|---|---|---|---|---|---|---|"]
    paired = {p: {"loss": [], "gamma": [], "diff": []} for p in PRECISIONS}
    for seed in sorted(base):
        for p in PRECISIONS:
            run = runs_of(p).get(seed)
            if run is None:
                continue
            loss, ref = final_loss(run), final_loss(base[seed])
            g0 = logged(run)[2][-1]
            d = per_t(run)
            diff = diffusion_bits(d, p)
            tt = times(run)
            paired[p]["loss"].append(loss - ref)
            paired[p]["gamma"].append(g0 - logged(base[seed])[2][-1])
            paired[p]["diff"].append(diff - diffusion_bits(per_t(base[seed]), "fp32"))
            lines.append(f"| {seed} | {p} | {g0:.2f} | {loss:.3f} | {loss - ref:+.3f} | {diff:.3f} | "
                         f"{tt['color']} | {tt['size']} | {tt['corners']} |")
    lines += ["", "Paired against fp32 on the same seed, median [range] over seeds:", ""]
    for p in PRECISIONS[1:]:
        if paired[p]["loss"]:
            lines.append(f"- **{p}** ({len(paired[p]['loss'])} seeds): final loss {spread(paired[p]['loss'])} "
                         f"bits/dim; diffusion term {spread(paired[p]['diff'])}; γ(0) at 3k "
                         f"{spread(paired[p]['gamma'])}")
    fp32_runs = list(base.values())
    lines += ["", "The fp32 runs' final snapshots evaluated in each precision (inference only, same weights), "
              "diffusion term in bits/dim, median [range]:", ""]
    for p in PRECISIONS:
        lines.append(f"- {p}: " + spread([diffusion_bits(per_t(r), p) for r in fp32_runs]).replace("+", ""))
    seeds_loss = [final_loss(r) for r in fp32_runs]
    lines.append(f"\nSeed-to-seed range of the fp32 final loss: {min(seeds_loss):.3f} to {max(seeds_loss):.3f}.")
    return "\n".join(lines)


def band(ax, x, ys, colour, label):
    ys = np.array(ys)
    ax.fill_between(x, ys.min(0), ys.max(0), color=colour, alpha=0.2, lw=0)
    ax.plot(x, np.median(ys, 0), color=colour, lw=1.8, label=label)


def figure() -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from conceptspace.analysis.figures import legend_below, save_figure, seeds_text

    base = runs_of("fp32")
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.4))
    kernel = np.ones(10) / 10  # running mean over 10 logs (500 steps)
    for p in PRECISIONS:
        runs = runs_of(p)
        if not runs:
            continue
        label = f"{p} ({seeds_text(len(runs))})"
        steps = logged(next(iter(runs.values())))[0]
        band(axes[0], steps, [logged(r)[2] for r in runs.values()], COLOURS[p], label)
        if p != "fp32":
            gaps = [np.convolve(logged(r)[1] - logged(base[s])[1], kernel, mode="valid") for s, r in runs.items()]
            band(axes[1], steps[len(kernel) - 1:], gaps, COLOURS[p], label)
        ratio = [np.array(per_t(r)["mse"][p]) / np.array(per_t(base[s])["mse"]["fp32"]) for s, r in runs.items()]
        band(axes[2], T_GRID, ratio, COLOURS[p], label)
    for p in PRECISIONS:
        ratio = [np.array(per_t(r)["mse"][p]) / np.array(per_t(r)["mse"]["fp32"]) for r in base.values()]
        band(axes[3], T_GRID, ratio, COLOURS[p], f"fp32 runs evaluated in {p}")
    axes[0].axhline(-11.5, color="0.4", ls=":", lw=1)
    axes[0].set(title="learned γ(0): below the dotted line bf16\nrounds the noisy image by more than its noise",
                xlabel="step", ylabel="γ(0)")
    axes[1].axhline(0, color="0.4", lw=0.8)
    axes[1].set(title="training loss minus fp32's, same seed\n(running mean of 10 logs)", xlabel="step",
                ylabel="bits/dim")
    axes[2].set(title="final snapshot, each run in its own precision:\nE|ε−ε̂|² relative to the fp32 run, same seed",
                xlabel="t (γ(t) linear from γ(0) ≈ −12.7 to γ(1) ≈ 7.3)", ylabel="ratio")
    axes[3].set(title="the fp32 runs' final snapshots (inference only):\nE|ε−ε̂|² in each precision relative to fp32",
                xlabel="t", ylabel="ratio")
    for ax in axes[2:]:
        ax.axhline(1, color="0.4", lw=0.8)
    for ax in axes:
        legend_below(ax)
    fig.suptitle("VDM in fp32, bf16 and bf16 with the input conv in fp32: laptop preset (1.1M-parameter U-Net, 16 px), "
                 "γ(0) started at −11, 3k steps; median and min–max over seeds, same seeds in each precision")
    fig.tight_layout()
    return save_figure(fig, HERE / "vdm_probe.png")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--archive", type=Path, help="folder holding the trained runs (weights needed)")
    args = parser.parse_args()
    if args.archive:
        archive(args.archive)
    if not (ARCHIVE / "fp32").is_dir():
        sys.exit(f"{ARCHIVE}/fp32: no archived runs; run with --archive RUNS_FOLDER first")
    print(tables())
    print(f"figure: {figure()}")


if __name__ == "__main__":
    main()

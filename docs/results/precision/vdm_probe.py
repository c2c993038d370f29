"""The VDM precision studies (issue 21; write-up in docs/precision_study.md, "The VDM"): does bf16 autocast change a
VDM's training once its learned γ(0) is below −11.5, and does keeping the input convolution in fp32
(`train.precision=bf16_fp32_input`) undo it? Two studies:
- `probe` (seeds 0-2): laptop preset, γ(0) started at −11 (γ_min) so that it crosses −11.5 within 600 steps;
  3k steps; fp32, bf16, bf16_fp32_input.
- `gate` (seeds 0-4): the issue's test for making the mixed scheme the VDM's default: from the default γ_min −5,
  9k steps (γ(0) crosses −11.5 on the way), fp32 against bf16_fp32_input; the laptop preset with the demo's network
  width [16, 32, 32] so that a pair of runs takes 20 min on 2 cores (the commands are in the write-up). Its
  control: the bf16 runs' snapshots re-tracked in fp32 (FP32_ROWS), so learning times compare training alone.

    .venv/bin/python docs/results/precision/vdm_probe.py --study gate --archive runs/laptop   # once, from the runs
    .venv/bin/python docs/results/precision/vdm_probe.py --study gate                         # tables and figure
`--archive` copies each run without weights to <study archive>/<precision>/seed=N/ and adds per_t.json: the final
snapshot's denoising error E|ε − ε̂|² per dimension on 21 times t (the same 128 training images and noise for
every run), evaluated in each of the three precisions. The second call reads only the archive.
"""

import argparse
import functools
import gzip
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
PRECISIONS = ("fp32", "bf16", "bf16_fp32_input")
COLOURS = {"fp32": "#1f77b4", "bf16": "#d62728", "bf16_fp32_input": "#2ca02c"}
FILES = ("config.yaml", "concept_spec.json", "metrics.jsonl", "provenance.json", "status.json")
TAIL = 500  # steps: the final loss is the mean logged loss over the last TAIL steps
T_GRID = np.linspace(0, 1, 21)
FP32_ROWS = "rows_fp32.jsonl"  # the control: a bf16 run's snapshots re-tracked in fp32 (`track --precision fp32`)
ROUNDING_GAMMA = -11.5  # below it bf16 rounds the noisy image by more than its noise (the claims issue)


@dataclass(frozen=True)
class Study:
    archive: Path  # <archive>/<precision>/seed=N/
    run_glob: str  # the trained runs' folder names under --archive's folder
    precisions: tuple[str, ...]  # fp32 first: the reference every other precision is paired with
    what: str  # the figure's title: network, start and length
    figure: Path


STUDIES = {
    "probe": Study(HERE / "vdm", "*diffusion.gamma_min=-11,diffusion=vdm,*", PRECISIONS,
                   "laptop preset (1.1M-parameter U-Net, 16 px), γ(0) started at −11, 3k steps",
                   HERE / "vdm_probe.png"),
    "gate": Study(HERE / "vdm_gate", "diffusion=vdm,model.block_out_channels=*train.steps=9000",
                  ("fp32", "bf16_fp32_input"),
                  "laptop preset with the demo's width [16, 32, 32], 16 px, γ(0) started at −5 (default), 9k steps",
                  HERE / "vdm_gate.png"),
}


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


def pack(rows: Path, dest: Path) -> None:
    with open(rows, "rb") as src, gzip.open(dest / "tracker" / f"{rows.name}.gz", "wb") as gz:
        shutil.copyfileobj(src, gz)


def archive(study: Study, runs: Path) -> None:
    from omegaconf import OmegaConf

    for run in sorted(runs.glob(study.run_glob)):
        cfg = OmegaConf.load(run / "config.yaml")
        if json.loads((run / "status.json").read_text())["state"] != "done":
            continue
        dest = study.archive / cfg.train.precision / f"seed={cfg.seed}"
        control = run / "tracker" / FP32_ROWS
        if control.is_file() and not (dest / "tracker" / f"{FP32_ROWS}.gz").is_file():
            (dest / "tracker").mkdir(parents=True, exist_ok=True)
            pack(control, dest)
            print(f"archived {dest}/tracker/{FP32_ROWS}.gz")
        if (dest / "per_t.json").is_file():  # archived already
            continue
        (dest / "tracker").mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copy2(run / name, dest / name)
        pack(run / "tracker" / "rows.jsonl", dest)
        (dest / "per_t.json").write_text(json.dumps(denoising_errors(run)))
        print(f"archived {dest}")


# ---- tables and figure: from the archive -----------------------------------------------------------------------
def runs_of(study: Study, precision: str) -> dict[int, Path]:
    return {int(p.name.split("=")[1]): p for p in sorted((study.archive / precision).glob("seed=*"))}


def logged(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [x for x in rows if "loss" in x]
    return tuple(np.array([x[k] for x in rows]) for k in ("step", "loss", "gamma_0"))


def rounding_step(run: Path) -> str:
    """The first logged step with γ(0) below ROUNDING_GAMMA ('>' the last step if none)."""
    steps, _, gamma_0 = logged(run)
    below = steps[gamma_0 < ROUNDING_GAMMA]
    return f"{below[0]:,}" if len(below) else f">{steps[-1]:,}"


def final_loss(run: Path) -> float:
    steps, loss, _ = logged(run)
    return float(loss[steps > steps.max() - TAIL].mean())


def per_t(run: Path) -> dict:
    return json.loads((run / "per_t.json").read_text())


def diffusion_bits(d: dict, precision: str) -> float:
    """The VLB's diffusion term in bits/dim, 0.5 |w| E_t E|ε − ε̂|², on the t grid (trapezoid)."""
    return 0.5 * d["w"] * np.trapezoid(d["mse"][precision], d["t"]) / math.log(2)


def recon_bits(run: Path) -> float:
    """The VLB's reconstruction term in bits/dim at the final snapshot's γ(0), in expectation over its noise:
    0.5 e^γ(0) / σ_data² + log σ_data + 0.5 log 2π (conceptspace/vdm.py). At γ(0) ≈ −12 it moves by about
    3.8 bits/dim per unit of γ(0), so a small difference in the drift shows in the loss."""
    from omegaconf import OmegaConf

    dn = float(OmegaConf.load(run / "config.yaml").diffusion.data_noise)
    return (0.5 * math.exp(per_t(run)["gamma_0"]) / dn**2 + math.log(dn) + 0.5 * math.log(2 * math.pi)) / math.log(2)


@functools.cache  # each run's rows are summarised once, though the tables read them several times
def times(run: Path, rows_file: str = "rows.jsonl") -> dict[str, tuple[int, bool]]:
    """(step, censored) of the held-out T0.8 per concept and of the corners' convergence, from the run's own
    rows or another rows file."""
    from conceptspace.analysis.rundir import summarise_run

    s = summarise_run(run, rows_file)
    spec = s["spec"]
    held = s["learning_times"][spec.cell_name(spec.held_out[0])]
    return {**{k: (v["paper"].step, v["paper"].censored) for k, v in held.items()},
            "corners": s["convergence"]["corners"]}


def step_text(time: tuple[int, bool]) -> str:
    return (">" if time[1] else "") + f"{time[0]:,}"


TIMES = {"color": "held-out T0.8 colour", "size": "held-out T0.8 size", "corners": "corners converged"}


def control_table(study: Study) -> list[str]:
    """Learning times with every run's snapshots tracked in fp32, so that what differs is the training alone."""
    base = runs_of(study, "fp32")
    mixed = {p: {s: r for s, r in runs_of(study, p).items() if (r / "tracker" / f"{FP32_ROWS}.gz").is_file()}
             for p in study.precisions[1:]}
    if not any(mixed.values()):
        return []
    lines = ["", "Learning times with every snapshot tracked in fp32 (the bf16 runs' snapshots re-tracked with "
             f"`conceptspace track RUN --precision fp32 --rows {FP32_ROWS}`):", "",
             "| seed | run | tracked in | " + " | ".join(TIMES.values()) + " |", "|---|---|---|" + "---|" * len(TIMES)]
    for p, runs in mixed.items():
        fp32_times = {s: times(base[s]) for s in runs}
        own, read = {s: times(r) for s, r in runs.items()}, {s: times(r, FP32_ROWS) for s, r in runs.items()}
        for s in runs:
            for name, source, tt in (("fp32", "fp32", fp32_times[s]), (p, p, own[s]), (p, "fp32", read[s])):
                lines.append(f"| {s} | {name} | {source} | " + " | ".join(step_text(tt[k]) for k in TIMES) + " |")
        lines += ["", f"{p} against fp32 on the same seed, both tracked in fp32 ({len(runs)} of {len(base)} seeds; "
                  "a censored step counts at its last snapshot), beside fp32's spread over all its seeds:", ""]
        all_fp32 = [times(r) for r in base.values()]
        for k, what in TIMES.items():
            ref = [tt[k][0] for tt in all_fp32]
            gap = [read[s][k][0] - fp32_times[s][k][0] for s in runs]
            censored = sum(fp32_times[s][k][1] + read[s][k][1] for s in runs)
            lines.append(f"- {what}: paired difference median {np.median(gap):+,.0f} [{min(gap):+,}, {max(gap):+,}] "
                         f"steps; fp32's seed-to-seed range {min(ref):,} to {max(ref):,} ({max(ref) - min(ref):,} "
                         f"steps); censored: {censored} of the {2 * len(runs)} times")
    return lines


def spread(values) -> str:
    v = np.asarray(values)
    return f"{np.median(v):+.3f} [{v.min():+.3f}, {v.max():+.3f}]"


def tables(study: Study) -> str:
    base = runs_of(study, "fp32")
    lines = ["| seed | precision | γ(0) < −11.5 from step | final γ(0) | final loss, bits/dim | vs fp32 | "
             "diffusion term (own precision) | " + " | ".join(TIMES.values()) + " |",
             "|---|---|---|---|---|---|---|" + "---|" * len(TIMES)]
    paired = {p: {"loss": [], "gamma": [], "diff": [], "recon": []} for p in study.precisions}
    for seed in sorted(base):
        for p in study.precisions:
            run = runs_of(study, p).get(seed)
            if run is None:
                continue
            loss, ref = final_loss(run), final_loss(base[seed])
            g0 = logged(run)[2][-1]
            diff = diffusion_bits(per_t(run), p)
            tt = times(run)
            paired[p]["loss"].append(loss - ref)
            paired[p]["gamma"].append(g0 - logged(base[seed])[2][-1])
            paired[p]["diff"].append(diff - diffusion_bits(per_t(base[seed]), "fp32"))
            paired[p]["recon"].append(recon_bits(run) - recon_bits(base[seed]))
            lines.append(f"| {seed} | {p} | {rounding_step(run)} | {g0:.2f} | {loss:.3f} | {loss - ref:+.3f} | "
                         f"{diff:.3f} | " + " | ".join(step_text(tt[k]) for k in TIMES) + " |")
    lines += ["", "Paired against fp32 on the same seed, median [range] over seeds:", ""]
    for p in study.precisions[1:]:
        if paired[p]["loss"]:
            lines.append(f"- **{p}** ({len(paired[p]['loss'])} seeds): final loss {spread(paired[p]['loss'])} "
                         f"bits/dim; diffusion term {spread(paired[p]['diff'])}; reconstruction term at the final "
                         f"γ(0) {spread(paired[p]['recon'])}; final γ(0) {spread(paired[p]['gamma'])}")
    fp32_runs = list(base.values())
    lines += ["", "The fp32 runs' final snapshots evaluated in each precision (inference only, same weights), "
              "diffusion term in bits/dim, median [range]:", ""]
    for p in PRECISIONS:
        lines.append(f"- {p}: " + spread([diffusion_bits(per_t(r), p) for r in fp32_runs]).replace("+", ""))
    seeds_loss = [final_loss(r) for r in fp32_runs]
    seeds_gamma = [logged(r)[2][-1] for r in fp32_runs]
    lines.append(f"\nSeed-to-seed range of the fp32 runs: final loss {min(seeds_loss):.3f} to {max(seeds_loss):.3f} "
                 f"bits/dim; final γ(0) {min(seeds_gamma):.2f} to {max(seeds_gamma):.2f}.")
    return "\n".join(lines + control_table(study))


def band(ax, x, ys, colour, label):
    ys = np.array(ys)
    ax.fill_between(x, ys.min(0), ys.max(0), color=colour, alpha=0.2, lw=0)
    ax.plot(x, np.median(ys, 0), color=colour, lw=1.8, label=label)


def figure(study: Study) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from conceptspace.analysis.figures import legend_below, save_figure, seeds_text

    base = runs_of(study, "fp32")
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.4))
    kernel = np.ones(10) / 10  # running mean over 10 logs (500 steps)
    for p in study.precisions:
        runs = runs_of(study, p)
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
    ends = np.median([[per_t(r)["gamma"][0], per_t(r)["gamma"][-1]] for r in base.values()], 0)
    axes[0].axhline(ROUNDING_GAMMA, color="0.4", ls=":", lw=1)
    axes[0].set(title="learned γ(0): below the dotted line bf16\nrounds the noisy image by more than its noise",
                xlabel="step", ylabel="γ(0)")
    axes[1].axhline(0, color="0.4", lw=0.8)
    axes[1].set(title="training loss minus fp32's, same seed\n(running mean of 10 logs)", xlabel="step",
                ylabel="bits/dim")
    axes[2].set(title="final snapshot, each run in its own precision:\nE|ε−ε̂|² relative to the fp32 run, same seed",
                xlabel=f"t (γ(t) linear from γ(0) ≈ {ends[0]:.1f} to γ(1) ≈ {ends[1]:.1f}, fp32 median)",
                ylabel="ratio")
    axes[3].set(title="the fp32 runs' final snapshots (inference only):\nE|ε−ε̂|² in each precision relative to fp32",
                xlabel="t", ylabel="ratio")
    for ax in axes[2:]:
        ax.axhline(1, color="0.4", lw=0.8)
    for ax in axes:
        legend_below(ax)
    fig.suptitle(f"VDM in {', '.join(study.precisions)}: {study.what}; median and min–max over seeds, "
                 "same seeds in each precision")
    fig.tight_layout()
    return save_figure(fig, study.figure)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--study", choices=sorted(STUDIES), default="probe")
    parser.add_argument("--archive", type=Path, help="folder holding the trained runs (weights needed)")
    args = parser.parse_args()
    study = STUDIES[args.study]
    if args.archive:
        archive(study, args.archive)
    if not (study.archive / "fp32").is_dir():
        sys.exit(f"{study.archive}/fp32: no archived runs; run with --study {args.study} --archive RUNS_FOLDER first")
    print(tables(study))
    print(f"figure: {figure(study)}")


if __name__ == "__main__":
    main()

"""`conceptspace elicit RUN_DIR [key=value ...] [--device D]`: every snapshot x every method and setting on
the held-out cell's probes 0..n_probes-1 (the tracker's seeds, so naive rows extend the tracker's), then a
table (step x method x setting -> accuracies), a plot and the elicitation lead. Rows go into the run's
tracker/rows.jsonl; rerunning (or a larger n_probes) samples only the (step, cell, method, setting, probe)
rows that are not there yet."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..checkpoint import atomic_output, recover
from ..config import config_dir
from ..errors import UserError
from ..run import device_from, load_run_config, load_snapshot, snapshots_or_error
from ..tracker.offline import open_tracker, parse, spec_of
from ..tracker.probes import ProbeSet
from ..tracker.rows import append_rows, read_rows
from .methods import check_config, check_sites, settings_for
from .summary import log_to_wandb, summarise

TABLES = (("overprompt", "anchor"), ("overprompt", "fixed"), ("intervention", "inputs"))  # open key sets


def load_elicit_config(overrides: list[str]):
    cfg = OmegaConf.load(config_dir() / "elicit" / "default.yaml")
    OmegaConf.set_struct(cfg, True)
    for group, key in TABLES:  # keyed by concept and value names, so new keys are allowed there
        OmegaConf.set_struct(cfg[group][key], False)
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or str(e).splitlines()[0]
        raise UserError(f"elicit: unknown or bad setting {key!r}; allowed keys: {sorted(cfg.keys())} "
                        "(and their sub-keys in configs/elicit/default.yaml)") from None
    # YAML and the command line read a bare `null` as None: in the method list it names the null control
    cfg.methods = ["null" if m is None else m for m in cfg.methods]
    check_config(cfg)
    unused = {"absolute": "strengths", "relative": "offsets"}[cfg.overprompt.grid]
    if any(o.split("=")[0].lstrip("+") == f"overprompt.{unused}" for o in overrides):  # would be ignored silently
        other = {"strengths": "offsets", "offsets": "strengths"}[unused]
        raise UserError(f"elicit.overprompt.{unused}: not used by overprompt.grid={cfg.overprompt.grid}; set "
                        f"overprompt.{other}, or overprompt.grid={'relative' if unused == 'strengths' else 'absolute'}")
    return cfg


def row_key(step, cell: str, method: str, setting: str, probe: int, readout: str) -> tuple:
    return step, cell, method, setting, probe, readout


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="conceptspace elicit", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("overrides", nargs="*", help="elicit settings, e.g. overprompt.offsets=[0.25,0.45]")
    parser.add_argument("--device", default=None)
    args = parse(parser, argv)
    run_cfg = load_run_config(args.run_dir)
    ecfg = load_elicit_config(args.overrides)
    spec = spec_of(args.run_dir)
    targets = [spec.cell(ecfg.target)] if ecfg.target else list(spec.held_out)
    if not targets:
        raise UserError("elicit.target: the run holds no cell out; name a cell, e.g. target=blue-small")
    trained_with_cfg = bool(run_cfg.train.cfg_dropout)
    if "cfg" in ecfg.methods and not trained_with_cfg:
        print("cfg: skipped (the model was trained without train.cfg_dropout, so it has no null concept)")
    settings = {cell: settings_for(ecfg, spec, cell, trained_with_cfg) for cell in targets}
    device = device_from(args.device or run_cfg.device)
    recover(args.run_dir)  # the leftovers of a killed earlier call
    tracker = open_tracker(run_cfg, args.run_dir, device)
    done = {row_key(r["step"], r["cell"], r["method"], r["setting"], r["probe"], r["readout"])
            for r in read_rows(tracker.rows_path)}
    readouts = [r.name for r in tracker.readouts]
    checked = False
    for step, path in snapshots_or_error(args.run_dir):
        jobs = []  # (setting, the probes it still lacks)
        for cell in targets:
            name = spec.cell_name(cell)
            for s in settings[cell]:
                probes = ProbeSet.build(spec, ecfg.n_probes, run_cfg.tracker.seed, cells=[cell], stream=s.stream)
                keys = {p.index: [row_key(step, name, s.method, s.setting, p.index, ro) for ro in readouts]
                        for p in probes.probes}
                grid_missing = s.method != "naive" and not grid_path(  # naive: the tracker's grid shows it
                    args.run_dir, step, name, s.method, s.setting).exists()
                todo = probes.select(lambda p, keys=keys, done=done, g=grid_missing: any(
                    k not in done for k in keys[p.index]) or (g and p.index < GRID_PROBES))
                if todo.probes:
                    jobs.append((s, todo))
        if not jobs:
            print(f"step {step}: already elicited")
            continue
        model = load_snapshot(path, device)
        tracker.process.load_state(path)  # a learned noise schedule (VDM) travels with the snapshot
        if not checked:
            check_sites(ecfg, model)
            checked = True
        new = [r for r in sample_jobs(tracker, model, step, jobs)
               if row_key(r["step"], r["cell"], r["method"], r["setting"], r["probe"], r["readout"]) not in done]
        append_rows(tracker.rows_path, new)
        done |= {row_key(r["step"], r["cell"], r["method"], r["setting"], r["probe"], r["readout"]) for r in new}
        print(f"elicited step {step}: {sum(len(p.probes) for _, p in jobs)} samples")
    summary = summarise(args.run_dir, spec, targets, ecfg)
    print(json.dumps(summary["lead"], indent=1))
    log_to_wandb(run_cfg, args.run_dir, summary)
    return 0


def sample_jobs(tracker, model, step: int, jobs) -> list[dict]:
    """Rows of every job. Jobs that differ only in prompts and seeds (naive, null, over-prompts) share one
    sampler call (bigger batches); interventions and guidance scales each need their own."""
    plain = [(s, p) for s, p in jobs if s.intervention is None and s.guidance_scale == 1.0]
    rows = []
    if plain:
        probes = ProbeSet(tracker.spec, tuple(pr for _, p in plain for pr in p.probes))
        images = tracker.images(model, torch.cat([s.prompts(p) for s, p in plain]), probes=probes)
        start = 0
        for s, p in plain:
            n = len(p.probes)
            rows += tracker.rows(images[start:start + n], step, s.method, s.setting, p)
            save_grid(tracker, step, s, p, images[start:start + n])
            start += n
    for s, p in jobs:
        if not any(s is q for q, _ in plain):
            new, images = tracker.track(model, step, method=s.method, setting=s.setting, vectors=s.prompts(p),
                                        guidance_scale=s.guidance_scale, intervention=s.intervention, probes=p,
                                        write=False)
            rows += new
            save_grid(tracker, step, s, p, images)
    return rows


GRID_PROBES = 16  # probes shown per setting in elicit/samples/ (the report's explorer reads them)


def grid_path(run_dir: Path, step: int, cell: str, method: str, setting: str) -> Path:
    name = f"{cell}_{method}" + (f"_{setting}" if setting else "")
    return Path(run_dir) / "elicit" / "samples" / f"step_{step:06d}" / f"{name}.png"


def save_grid(tracker, step: int, s, probes: ProbeSet, images) -> None:
    """The first probes of a setting as one row, when this call sampled all of them (a rerun adding probes
    32..63 leaves the grid of an earlier call as it is; a missing grid has its probes resampled)."""
    from torchvision.utils import make_grid, save_image

    keep = [i for i, pr in enumerate(probes.probes) if pr.index < GRID_PROBES]
    if not keep or {probes.probes[i].index for i in keep} != set(range(len(keep))):
        return
    cell = tracker.spec.cell_name(probes.probes[0].cell)
    path = grid_path(tracker.run_dir, step, cell, s.method, s.setting)
    with atomic_output(path) as tmp:
        save_image(make_grid(images[keep], nrow=len(keep), padding=1, pad_value=1.0), tmp)

"""`conceptspace elicit RUN_DIR [key=value ...] [--device D]`: every snapshot x every method and setting on
the held-out cell's fixed probes (the tracker's seeds, so naive rows equal the tracker's), then a table
(step x method x setting -> accuracies), a plot and the elicitation lead. Rows go into the run's
tracker/rows.jsonl; rerunning skips what is already there."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config import config_dir
from ..errors import UserError
from ..run import device_from, load_run_config, load_snapshot, snapshots_or_error
from ..tracker.offline import open_tracker, parse, spec_of
from ..tracker.probes import ProbeSet
from ..tracker.rows import read_rows
from .methods import settings_for
from .summary import log_to_wandb, summarise


def load_elicit_config(overrides: list[str]):
    cfg = OmegaConf.load(config_dir() / "elicit" / "default.yaml")
    OmegaConf.set_struct(cfg, True)
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or str(e).splitlines()[0]
        raise UserError(f"elicit: unknown or bad setting {key!r}; allowed keys: {sorted(cfg.keys())} "
                        "(and their sub-keys in configs/elicit/default.yaml)") from None
    if cfg.out_of_range not in ("error", "skip"):
        raise UserError(f"elicit.out_of_range: got {cfg.out_of_range!r}; allowed: ['error', 'skip']")
    return cfg


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="conceptspace elicit", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("overrides", nargs="*", help="elicit settings, e.g. overprompt.strengths=[1,2]")
    parser.add_argument("--device", default=None)
    args = parse(parser, argv)
    run_cfg = load_run_config(args.run_dir)
    ecfg = load_elicit_config(args.overrides)
    spec = spec_of(args.run_dir)
    targets = [spec.cell(ecfg.target)] if ecfg.target else list(spec.held_out)
    if not targets:
        raise UserError("elicit.target: the run holds no cell out; name a cell, e.g. target=blue-small")
    device = device_from(args.device or run_cfg.device)
    tracker = open_tracker(run_cfg, args.run_dir, device)
    n = run_cfg.tracker.n_probes
    done = {(r["step"], r["cell"], r["method"], r["setting"]) for r in read_rows(tracker.rows_path)}
    trained_with_cfg = bool(run_cfg.train.cfg_dropout)
    if "cfg" in ecfg.methods and not trained_with_cfg:
        print("cfg: skipped (the model was trained without train.cfg_dropout, so it has no null concept)")
    for step, path in snapshots_or_error(args.run_dir):
        model = None
        for cell in targets:
            tracker.probes = ProbeSet.build(spec, n, run_cfg.tracker.seed, cells=[cell])
            name = spec.cell_name(cell)
            if model is None:
                model = load_snapshot(path, device)
                tracker.process.load_state(path)
            for s in settings_for(ecfg, spec, cell, model, trained_with_cfg, n):
                if (step, name, s.method, s.setting) in done:
                    continue
                tracker.track(model, step, method=s.method, setting=s.setting, vectors=s.vectors,
                              guidance_scale=s.guidance_scale, embedding_hook=s.hook, save_grid=False)
        print(f"elicited step {step}")
    summary = summarise(args.run_dir, spec, targets, ecfg.threshold)
    print(json.dumps(summary["lead"], indent=1))
    log_to_wandb(run_cfg, args.run_dir, summary)
    return 0

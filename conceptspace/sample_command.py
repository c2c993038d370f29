"""`conceptspace sample RUN_DIR PROMPT [options] [key=value ...]`: ask a trained model for a cell in words.

    conceptspace sample runs/demo "small blue circle"                        # latest snapshot, naive prompt
    conceptspace sample runs/demo "blue small" --step all --method overprompt  # every snapshot: strip + GIF
    conceptspace sample runs/demo --vector 0.05,0.05,0.95,0.3 --cell blue-small --step 1500
    conceptspace sample runs/demo "small blue" --method intervention intervention.alpha=1 intervention.beta=0.1

Seeds are the tracker's probe seeds for the cell (so at a tracked step the samples are the tracker's), or a
fixed set of `--seed S`. A method's setting comes from key=value overrides in the elicit config's names
(singular forms pick one value: overprompt.offset, overprompt.strength, intervention.alpha/beta, cfg.scale);
by default the setting `elicit` selected for this run (elicit/summary.json), else the config's first.
Writes RUN_DIR/samples/<prompt>_<method>_<setting>_step<N>.png and prints one line per step.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

from .checkpoint import atomic_output, recover
from .errors import UserError
from .prompt import parse_prompt, parse_vector
from .run import device_from, load_run_config, snapshots_or_error

METHODS = ("naive", "overprompt", "intervention", "cfg")
SINGULAR = {"overprompt.offset": ("overprompt.offsets", None), "overprompt.strength": ("overprompt.strengths",
                                                                                       "relative"),
            "intervention.alpha": ("intervention.alphas", None), "intervention.beta": ("intervention.betas", None),
            "cfg.scale": ("cfg.scales", None)}


def elicit_overrides(pairs: list[str]) -> list[str]:
    """Singular keys (one value) -> the elicit config's list keys."""
    out = []
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key in SINGULAR:
            target, grid = SINGULAR[key]
            out.append(f"{target}=[{value}]")
            if grid:
                out.append(f"overprompt.grid={grid}")
        else:
            out.append(pair)
    return out


def choose_steps(found: list[tuple[int, Path]], wanted: str) -> list[tuple[int, Path]]:
    if wanted == "all":
        return found
    if wanted == "latest":
        return found[-1:]
    try:
        step = int(wanted)
    except ValueError:
        raise UserError(f"--step: got {wanted!r}; allowed: latest, all or a saved step") from None
    chosen = [(s, p) for s, p in found if s == step]
    if not chosen:
        nearest = sorted((s for s, _ in found), key=lambda s: abs(s - step))[:3]
        raise UserError(f"--step: {step} was not saved; nearest saved steps: {sorted(nearest)} (to keep a step's "
                        "weights under train.snapshots.keep=tracked|none, name it in train.snapshots.keep_steps)")
    return chosen


def choose_setting(settings, method: str, cell_name: str, run_dir: Path, explicit: bool):
    """The elicit-selected setting of this run when the grid holds it (and none was given), else the first."""
    if not settings:
        raise UserError(f"--method {method}: no setting left (out of range, or the model has no null concept "
                        "for cfg: train.cfg_dropout)")
    summary = Path(run_dir) / "elicit" / "summary.json"
    if not explicit and summary.exists():
        selected = json.loads(summary.read_text()).get("selected", {}).get(f"{cell_name}/{method}")
        for s in settings:
            if s.setting == selected:
                return s
    return settings[0]


def describe(rows: list[dict], spec, cell) -> tuple[int, str]:
    """(joint successes, "11/16 blue, 5/16 small, 3/16 both; 1 without an object")."""
    n = len(rows)
    right = [{c: r.get("found", True) and (r["p"][c] > 0.5) == bool(r["target"][c]) for c in spec.names}
             for r in rows]
    parts = [f"{sum(x[c] for x in right)}/{n} {spec.concept(c).values[v]}" for c, v in zip(spec.names, cell)]
    joint = sum(all(x.values()) for x in right)
    missing = sum(not r.get("found", True) for r in rows)
    text = ", ".join(parts) + f", {joint}/{n} {'both' if len(spec.names) == 2 else 'all'}"
    return joint, text + (f"; {missing} without an object" if missing else "")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.=]+", "-", text.lower()).strip("-") or "prompt"


def main(argv: list[str]) -> int:
    from .tracker.offline import parse

    parser = argparse.ArgumentParser(prog="conceptspace sample", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("words", nargs="*", help="the prompt in words, then key=value setting overrides")
    parser.add_argument("--vector", default=None, help="a raw concept vector, comma-separated")
    parser.add_argument("--cell", default=None, help="the cell a --vector is scored against")
    parser.add_argument("--step", default="latest", help="latest | all | a saved step")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--sample-steps", type=int, default=None)
    parser.add_argument("--weights", choices=["raw", "ema"], default="raw")
    parser.add_argument("--seed", type=int, default=None, help="a fixed seed set other than the tracker's")
    parser.add_argument("--method", choices=list(METHODS), default="naive")
    parser.add_argument("--wandb", action="store_true", help="log the grids to the run's own W&B run")
    parser.add_argument("--device", default=None)
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]  # key=value anywhere on the line
    args = parse(parser, [a for a in argv if a not in overrides])
    prompt_words = list(args.words)
    run_cfg = load_run_config(args.run_dir)
    from .tracker.offline import spec_of

    spec = spec_of(args.run_dir)
    if args.n < 1:
        raise UserError(f"--n: got {args.n}; allowed: an integer >= 1")
    vector = None
    if args.vector is not None:
        if prompt_words:
            raise UserError("PROMPT and --vector: give one of them")
        if args.method != "naive":
            raise UserError(f"--method {args.method}: a --vector is its own prompt; allowed with --vector: naive")
        vector = parse_vector(spec, args.vector)
        cell = spec.cell(args.cell) if args.cell else None
    else:
        if not prompt_words:
            raise UserError("PROMPT: missing; e.g. conceptspace sample RUN_DIR \"small blue circle\" (or --vector)")
        fixed = [run_cfg.data.shape] if run_cfg.data.source == "shapes" and "shape" not in spec.names else []
        cell = parse_prompt(spec, " ".join(prompt_words), fixed)
    recover(args.run_dir)  # the leftovers of a killed earlier call
    steps = choose_steps(snapshots_or_error(args.run_dir, ema=args.weights == "ema"), args.step)
    return run(args, run_cfg, spec, cell, vector, steps, elicit_overrides(overrides), prompt_words)


def run(args, run_cfg, spec, cell, vector, steps, overrides, prompt_words) -> int:
    from torchvision.utils import make_grid, save_image

    from .analysis.curves import wilson
    from .elicit.command import load_elicit_config
    from .elicit.methods import check_sites, settings_for
    from .run import load_snapshot
    from .tracker.offline import open_tracker
    from .tracker.probes import ProbeSet

    seed_cell = cell if cell is not None else tuple(spec.decode(vector[None])[0].tolist())
    base = run_cfg.tracker.seed if args.seed is None else args.seed
    probes = ProbeSet.build(spec, args.n, base, cells=[seed_cell])
    setting = None
    if args.method != "naive":
        ecfg = load_elicit_config([f"methods=[{args.method}]", *overrides])
        settings = settings_for(ecfg, spec, cell, bool(run_cfg.train.cfg_dropout))
        setting = choose_setting(settings, args.method, spec.cell_name(cell), args.run_dir, bool(overrides))
    elif overrides:
        raise UserError(f"settings {overrides}: need a --method other than naive")
    device = device_from(args.device or run_cfg.device)
    tracker = open_tracker(run_cfg, args.run_dir, device)
    if args.sample_steps is not None:
        tracker.sample_steps = args.sample_steps
    name = slug(" ".join(prompt_words) if prompt_words else f"vector-{args.vector}")
    tag = f"{args.method}" + (f"_{slug(setting.setting)}" if setting and setting.setting else "")
    out_dir = Path(args.run_dir) / "samples"
    grids, written = [], []
    for step, path in steps:
        model = load_snapshot(path, device)  # a corrupted snapshot: one line naming it
        tracker.process.load_state(path)
        if setting is not None:
            check_sites(ecfg, model)
        prompts = vector[None].repeat(args.n, 1) if vector is not None else \
            (setting.prompts(probes) if setting is not None else probes.vectors())
        images = tracker.images(model, prompts, guidance_scale=setting.guidance_scale if setting else 1.0,
                                intervention=setting.intervention if setting else None, probes=probes)
        grid = make_grid(images, nrow=min(args.n, 8), padding=1, pad_value=1.0)
        out_dir.mkdir(exist_ok=True)
        target = out_dir / f"{name}_{tag}_step{step:06d}.png"
        with atomic_output(target) as tmp:
            save_image(grid, tmp)
        written.append(target)
        grids.append((step, grid))
        if cell is None:
            print(f"step {step}: wrote {target} (not scored: no --cell)")
            continue
        rows = [r for r in tracker.rows(images, step, args.method, setting.setting if setting else "", probes)
                if r["readout"] == tracker.readouts[0].name]
        joint, text = describe(rows, spec, cell)
        lo, hi = wilson(joint, len(rows))
        print(f"step {step}: {spec.cell_name(cell)} joint accuracy {joint / len(rows):.2f} "
              f"[{float(lo):.2f}, {float(hi):.2f}] ({tracker.readouts[0].name} readout): {text}")
    if len(grids) > 1:
        written += strip_and_gif(grids, out_dir, f"{name}_{tag}_steps")
    if args.wandb:
        log_grids(run_cfg, args.run_dir, grids, f"sample/{name}_{tag}")
    print("\n".join(f"wrote {p}" for p in written[-2:] if len(grids) > 1) or f"wrote {written[-1]}")
    return 0


def strip_and_gif(grids, out_dir: Path, stem: str) -> list[Path]:
    """The run learning the prompt: one labelled frame per snapshot, as a contact sheet (PNG: at most 12
    frames, read left to right and down, in as many columns as make the sheet about twice as wide as
    tall) and a GIF of every frame."""
    from PIL import Image

    from .analysis.figures import labelled_frame
    from .tracker.track import grid_uint8

    frames = [labelled_frame(Image.fromarray(grid_uint8(grid)), step) for step, grid in grids]
    shown = frames if len(frames) <= 12 else [frames[round(i * (len(frames) - 1) / 11)] for i in range(12)]
    w, h = max(f.width for f in shown), max(f.height for f in shown)
    cols = min(len(shown), max(1, round(math.sqrt(2 * len(shown) * h / w))))
    strip = Image.new("RGB", (cols * w, -(-len(shown) // cols) * h), "white")
    for i, f in enumerate(shown):
        strip.paste(f, ((i % cols) * w, (i // cols) * h))
    png, gif = out_dir / f"{stem}.png", out_dir / f"{stem}.gif"  # stems hold dots (offset=0.25)
    with atomic_output(png) as tmp:
        strip.save(tmp)
    with atomic_output(gif) as tmp:
        frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=400, loop=0)
    return [png, gif]


def log_grids(run_cfg, run_dir: Path, grids, key: str) -> None:
    from .logger import reopen
    from .tracker.track import grid_uint8

    logger = reopen(run_cfg, run_dir)
    if not logger.takes_images:
        print("--wandb: this run has no W&B run (logger.kind) to log to; nothing logged")
        return
    # W&B steps only move forward: every grid goes in at the run's last step, named by its own step
    logger.log_images({f"{key}/step_{step:06d}": grid_uint8(grid) for step, grid in grids}, run_cfg.train.steps)
    logger.finish()

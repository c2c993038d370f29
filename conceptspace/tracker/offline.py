"""`conceptspace track RUN_DIR`: probe every saved snapshot of a run, exactly as the training callback does.

    conceptspace track RUN_DIR [--weights raw|ema] [--readouts analytic,learned] [--probe-path DIR]
                               [--rows rows.jsonl] [--device auto] [--precision fp32|bf16|bf16_fp32_input|auto]
Snapshots whose rows are already in the rows file are skipped, so rerunning continues where it stopped.
`--precision` samples in another precision than the run trained in (default: the run's `train.precision`),
e.g. to tell a precision's effect on training from its effect on the tracker's samples; give it its own --rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..devices import PRECISIONS, fp32_input
from ..errors import UserError
from ..run import device_from, load_run_config, load_snapshot, snapshots_or_error
from .rows import read_rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="conceptspace track", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--weights", choices=["raw", "ema"], default=None)
    parser.add_argument("--readouts", default=None, help="comma-separated: analytic,learned")
    parser.add_argument("--probe-path", default=None)
    parser.add_argument("--rows", default="rows.jsonl", help="file name under RUN_DIR/tracker/")
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", choices=PRECISIONS, default=None, help="default: the run's train.precision")
    args = parse(parser, argv)
    cfg = load_run_config(args.run_dir)
    if args.precision:
        cfg.train.precision = args.precision
    if args.readouts:
        cfg.tracker.readouts = args.readouts.split(",")
    if args.probe_path:
        cfg.tracker.probe_path = args.probe_path
    weights = args.weights or cfg.tracker.weights
    device = device_from(args.device or cfg.device)
    tracker = open_tracker(cfg, args.run_dir, device, rows_file=args.rows)
    done = {(r["step"], r["readout"]) for r in read_rows(tracker.rows_path) if r["method"] == "naive"}
    wanted = {r.name for r in tracker.readouts}
    todo = [(s, p) for s, p in snapshots_or_error(args.run_dir, ema=weights == "ema")
            if not wanted <= {ro for st, ro in done if st == s}]
    for step, path in todo:
        model = tracked_model(cfg, path, device)
        tracker.process.load_state(path)  # a learned noise schedule (VDM) travels with the snapshot
        tracker.track(model, step)
        print(f"tracked step {step}")
    print(f"{len(todo)} snapshots tracked, rows in {tracker.rows_path}")
    return 0


def open_tracker(cfg, run_dir: Path, device, rows_file: str = "rows.jsonl"):
    from ..devices import use_bf16
    from ..diffusion import build_process
    from ..member import build_tracker

    process = build_process(cfg.diffusion)
    if list(process.parameters()):
        process.to(device)
    tracker = build_tracker(cfg, spec_of(run_dir), process, run_dir, device, use_bf16(cfg.train.precision, device,
                                                                                  cfg.diffusion.name))
    tracker.rows_file = rows_file
    return tracker


def tracked_model(cfg, snapshot: Path, device):
    """A snapshot's network set up for cfg.train.precision: the run's, unless `--precision` replaced it."""
    model = load_snapshot(snapshot, device)
    keep = fp32_input(cfg.train.precision, torch.device(device), cfg.diffusion.name)
    return model.keep_input_conv_fp32() if keep else model


def spec_of(run_dir: Path):
    import json

    from ..concepts import ConceptSpec

    return ConceptSpec.from_dict(json.loads((Path(run_dir) / "concept_spec.json").read_text()))


def parse(parser: argparse.ArgumentParser, argv: list[str]):
    """argparse, but a bad or missing argument is one line (a UserError), not a usage dump; --help still
    prints the usage and exits 0."""
    def error(message):
        raise UserError(f"{message} (see {parser.prog} --help)")

    parser.exit_on_error = False
    parser.error = error
    try:
        return parser.parse_args(argv)
    except argparse.ArgumentError as e:
        raise UserError(f"{e} (see {parser.prog} --help)") from None

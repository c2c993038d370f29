"""How cost grows (issue "Fast where the researcher is"): training steps/s of the laptop network over batch
size x image size, and the tracker's seconds per snapshot over probes per cell, each in a fresh process.

    python bench/bench_cost.py                                  # batch 16/64/256 x 16/32/64 px; 8/32/128 probes
    python bench/bench_cost.py --batches 16 64 --sizes 16 32 --probes 8 32
Then the tracker's share of a laptop run: its seconds per snapshot x snapshots, against the training loop's
seconds for the preset's steps (experiment=laptop/hidden_capability: 16 snapshots, 16 probes, 25 steps).
"""

from __future__ import annotations

import argparse
import sys

import torch
from child import ROOT, run_child

from conceptspace.devices import cpu_name

PRESET = "experiment=laptop/hidden_capability"
CHILD = """
import json, sys
sys.path[:0] = [{root!r}, {bench!r}]
from bench_train import bench_sampling, bench_training
what = {what!r}
if what == "train":
    print("RESULT " + json.dumps(bench_training({overrides!r}, {steps})))
else:
    print("RESULT " + json.dumps(bench_sampling({overrides!r}, {probes}, {sample_steps})))
"""


def run(what: str, overrides: list[str], steps: int = 0, probes: int = 0, sample_steps: int = 0) -> dict:
    code = CHILD.format(root=str(ROOT), bench=str(ROOT / "bench"), what=what, overrides=[PRESET, *overrides],
                        steps=steps, probes=probes, sample_steps=sample_steps)
    return run_child(code, f"{what} {' '.join(overrides)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--probes", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--images", type=int, default=1600, help="training images per setting (sets the steps)")
    args = parser.parse_args()
    from conceptspace.config import compose
    from conceptspace.schedule import snapshot_steps_of

    preset = compose([PRESET])
    train_rate = {}
    for size in args.sizes:
        for batch in args.batches:
            steps = max(10, args.images // batch)
            r = run("train", [f"data.image_size={size}", f"train.batch_size={batch}", "data.per_cell=256"], steps)
            train_rate[size, batch] = r["steps_per_s"]
            print(f"measured train {size}px batch {batch}: {r['steps_per_s']:.2f} steps/s", file=sys.stderr, flush=True)
    sample_steps = preset.tracker.sample_steps or preset.diffusion.sample_steps
    tracker_s = {}
    for n in args.probes:
        r = run("sample", [], probes=n, sample_steps=sample_steps)
        tracker_s[n] = r["seconds"]
        print(f"measured tracker {n} probes/cell: {r['seconds']:.2f} s", file=sys.stderr, flush=True)

    print(f"cpu {cpu_name()}, {torch.get_num_threads()} threads; torch {torch.__version__}; {PRESET} "
          f"network (tiny U-Net), fp32, tracker off while training")
    print("training steps/s (images/s in brackets)")
    print(f"{'px':>4s} " + " ".join(f"{'batch ' + str(b):>18s}" for b in args.batches))
    for size in args.sizes:
        cells = " ".join(f"{train_rate[size, b]:8.2f} ({train_rate[size, b] * b:7.0f})" for b in args.batches)
        print(f"{size:4d} {cells}")
    cells = len(compose([PRESET]).data.concepts) ** 2
    print(f"tracker: seconds per snapshot ({cells} cells x probes, {sample_steps} sampling steps, 16 px)")
    for n in args.probes:
        print(f"  {n:4d} probes/cell: {tracker_s[n]:7.2f} s")
    snaps = len(snapshot_steps_of(preset.train))
    size, batch, n = preset.data.image_size, preset.train.batch_size, preset.tracker.n_probes
    rate = train_rate.get((size, batch)) or run("train", ["data.per_cell=256"], 200)["steps_per_s"]
    per = tracker_s.get(n) or run("sample", [], probes=n, sample_steps=sample_steps)["seconds"]
    loop, track = preset.train.steps / rate, snaps * per
    print(f"laptop run ({PRESET}: {preset.train.steps} steps at batch {batch}, {size} px, {snaps} snapshots x {n} "
          f"probes/cell): loop {loop:.0f} s + tracking {track:.0f} s -> tracker share {track / (loop + track):.0%}")

if __name__ == "__main__":
    main()

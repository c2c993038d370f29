"""Ensemble throughput: K members in one process (the `loop`, `threads` and `vmap` strategies) against K
separate runs, one after the other and all at once, each in a fresh process (issue "Many runs in one process").

    python bench/bench_ensemble.py                          # laptop F3 preset members, K = 1, 2, 4, 8
    python bench/bench_ensemble.py --k 1 2 4 --steps 60 --preset laptop
Aggregate member-steps per second two ways: the training loop alone (the runs' own steps_per_s over their
second half) and end to end (process start, imports, data, build, loop: what a sweep waits for); with each
mode's peak resident memory (the largest process; for K processes at once, their sum).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from conceptspace.devices import cpu_name

ROOT = Path(__file__).resolve().parent.parent
PRESETS = {  # members differ by seed (and so data order, noise and initial weights), as in a seed sweep
    "laptop_f3": ["experiment=laptop/hidden_capability"],
    "laptop": ["experiment=laptop"],
}
CHILD = """
import json, resource, sys, time
sys.path[:0] = [{root!r}]
from pathlib import Path
from conceptspace.config import compose
from conceptspace.train import train_ensemble
cfgs = [compose({common!r} + [f"seed={{s}}"]) for s in {seeds!r}]
out = train_ensemble(cfgs, [Path({tmp!r}) / f"m{{s}}" for s in {seeds!r}], {strategy!r})
lines = (Path({tmp!r}) / f"m{seeds[0]}" / "metrics.jsonl").read_text().splitlines()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps({{"rate": json.loads(lines[-1])["steps_per_s"], "rss_mb": rss}}))
"""


def common(preset: str, steps: int) -> list[str]:
    return [*PRESETS[preset], "logger=none", "tracker.enabled=false", f"train.steps={steps}",
            f"train.log_every={steps // 2}", "train.snapshots.count=1", f"train.snapshots.start={steps}",
            f"train.checkpoint_every={steps}", "hydra.sweeper.params={}"]


def start(preset, steps, seeds, strategy, threads, tmp):
    code = CHILD.format(root=str(ROOT), common=common(preset, steps), seeds=seeds, strategy=strategy, tmp=tmp)
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc) -> dict:
    out, err = proc.communicate()
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"bench child failed:\n{err[-2000:]}")
    return json.loads(line[len("RESULT "):])


def measure(mode: str, k: int, preset: str, steps: int, cores: int) -> dict:
    """Aggregate member-steps/s (loop and end to end) and peak memory of K members in `mode`."""
    seeds = list(range(k))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if mode in ("loop", "threads", "vmap"):
            results = [finish(start(preset, steps, seeds, mode, cores, tmp))]
            loop_rate = results[0]["rate"] * k  # the ensemble logs ensemble steps/s; each carries k member-steps
            rss = results[0]["rss_mb"]
        elif mode == "sequential":
            results = [finish(start(preset, steps, [s], "loop", cores, tmp)) for s in seeds]
            loop_rate = 1 / sum(1 / r["rate"] for r in results) * k  # k runs, one after the other
            rss = max(r["rss_mb"] for r in results)
        else:  # parallel: k processes sharing the cores
            procs = [start(preset, steps, [s], "loop", max(1, cores // k), tmp) for s in seeds]
            results = [finish(p) for p in procs]
            loop_rate = sum(r["rate"] for r in results)
            rss = sum(r["rss_mb"] for r in results)
        wall = time.perf_counter() - t0
    return {"loop": loop_rate, "end_to_end": k * steps / wall, "rss_mb": rss}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--preset", default="laptop_f3", choices=list(PRESETS))
    parser.add_argument("--modes", nargs="+", default=["sequential", "parallel", "loop", "threads", "vmap"])
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    table = {}
    for k in args.k:
        for mode in args.modes:
            if k == 1 and mode != "sequential":  # one member: every mode is the single run
                continue
            table[k, mode] = measure(mode, k, args.preset, args.steps, cores)
            print(f"measured K={k} {mode}: {table[k, mode]}", file=sys.stderr, flush=True)
    print(f"cpu {cpu_name()}, {cores} cores; torch {torch.__version__}; preset {args.preset} "
          f"({' '.join(PRESETS[args.preset])}), {args.steps} steps per member, tracker off, fp32")
    print("aggregate member-steps/s: loop = training loop only; e2e = end to end incl. process start and data")
    print(f"{'K':>3s} {'mode':>11s} {'loop':>8s} {'e2e':>8s} {'loop/seq':>9s} {'e2e/seq':>8s} {'peak MB':>8s}")
    for (k, mode), r in table.items():
        seq = table.get((k, "sequential"))
        ratio = (f"{r['loop'] / seq['loop']:9.2f}", f"{r['end_to_end'] / seq['end_to_end']:8.2f}") if seq else \
            (f"{'':9s}", f"{'':8s}")
        print(f"{k:3d} {mode:>11s} {r['loop']:8.2f} {r['end_to_end']:8.2f} {ratio[0]} {ratio[1]} {r['rss_mb']:8.0f}")


if __name__ == "__main__":
    main()

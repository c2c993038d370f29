"""What `train.compile` costs and gains on a preset: the real loop eager and compiled, each in a fresh process.

    python bench/bench_compile.py                                   # laptop F3 preset, inductor, 300 steps
    python bench/bench_compile.py --preset experiment=laptop --steps 200 --backend inductor
    python bench/bench_compile.py --precision bf16              # both eager and compiled in bf16 autocast
Prints steady steps/s (the second half of the run), the run's wall time, the compile warm-up (wall time
beyond what the steady rate explains, less eager's own) and the step count after which compiling pays.
"""

from __future__ import annotations

import argparse

import torch
from child import ROOT, run_child

CHILD = """
import json, sys, tempfile, time
sys.path[:0] = [{root!r}]
from pathlib import Path
from conceptspace.config import compose
from conceptspace.train import train
cfg = compose({overrides!r})
with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    train(cfg, Path(tmp))
    wall = time.perf_counter() - t0
    lines = [json.loads(x) for x in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
print("RESULT " + json.dumps({{"rate": lines[-1]["steps_per_s"], "wall": wall}}))
"""


def measure(overrides: list[str]) -> dict:
    return run_child(CHILD.format(root=str(ROOT), overrides=overrides), " ".join(overrides))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="experiment=laptop/hidden_capability")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--mode", default="default")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    args = parser.parse_args()
    base = [args.preset, f"train.precision={args.precision}", "logger=none", "tracker.enabled=false",
            "hydra.sweeper.params={}", f"train.steps={args.steps}",
            f"train.log_every={args.steps // 2}", "train.snapshots.count=1", f"train.snapshots.start={args.steps}",
            f"train.checkpoint_every={args.steps}"]
    eager = measure(base)
    compiled = measure([*base, "train.compile.enabled=true", f"train.compile.backend={args.backend}",
                        f"train.compile.mode={args.mode}"])
    overhead = {k: r["wall"] - args.steps / r["rate"] for k, r in (("eager", eager), ("compiled", compiled))}
    warmup = overhead["compiled"] - overhead["eager"]
    saving = 1 / eager["rate"] - 1 / compiled["rate"]  # seconds a compiled step saves
    print(f"cpu x{torch.get_num_threads()}; torch {torch.__version__}; {args.preset}, tracker off, {args.precision}; "
          f"{args.steps} steps; torch.compile backend {args.backend}, mode {args.mode}")
    print(f"{'':10s} {'steps/s':>8s} {'wall s':>8s}")
    print(f"{'eager':10s} {eager['rate']:8.2f} {eager['wall']:8.1f}")
    print(f"{'compiled':10s} {compiled['rate']:8.2f} {compiled['wall']:8.1f}")
    pays = f"after {warmup / saving:.0f} steps" if saving > 0 else "never (no steady gain)"
    print(f"gain {compiled['rate'] / eager['rate']:.2f}x; warm-up {warmup:.1f} s; compiling pays {pays}")


if __name__ == "__main__":
    main()

"""What `train.compile` costs and gains on a preset: the real loop eager and compiled, each in a fresh process.

    python bench/bench_compile.py                                   # laptop F3 preset, inductor, 300 steps
    python bench/bench_compile.py --preset experiment=laptop --steps 200 --backend inductor
    python bench/bench_compile.py --precision bf16              # both eager and compiled in bf16 autocast
Prints steady steps/s (the second half of the run), the run's wall time, the compile warm-up (wall time
beyond what the steady rate explains, less eager's own) and the step count after which compiling pays. The
compiled run goes twice, in fresh processes sharing one new inductor cache (TORCHINDUCTOR_CACHE_DIR): first
cold, as a machine's first run of a preset, then warm, as every later run of that preset (a sweep's seeds).
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from child import ROOT, run_child

from conceptspace.devices import cpu_name

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


def measure(overrides: list[str], env: dict | None = None) -> dict:
    return run_child(CHILD.format(root=str(ROOT), overrides=overrides), " ".join(overrides), env=env)


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
    flags = [*base, "train.compile.enabled=true", f"train.compile.backend={args.backend}",
             f"train.compile.mode={args.mode}"]
    with tempfile.TemporaryDirectory() as cache:  # empty: the cold run compiles everything
        env = {"TORCHINDUCTOR_CACHE_DIR": cache}
        compiled = {"cold cache": measure(flags, env), "warm cache": measure(flags, env)}
    print(f"cpu {cpu_name()}, {torch.get_num_threads()} threads; torch {torch.__version__}; {args.preset}, "
          f"tracker off, {args.precision}; {args.steps} steps; torch.compile backend {args.backend}, mode {args.mode}")
    print(f"{'':20s} {'steps/s':>8s} {'wall s':>8s} {'gain':>6s} {'warm-up s':>10s}  compiling pays")
    print(f"{'eager':20s} {eager['rate']:8.2f} {eager['wall']:8.1f}")
    eager_overhead = eager["wall"] - args.steps / eager["rate"]
    for name, r in compiled.items():
        warmup = r["wall"] - args.steps / r["rate"] - eager_overhead  # beyond what its steady rate explains
        saving = 1 / eager["rate"] - 1 / r["rate"]  # seconds a compiled step saves
        pays = f"after {warmup / saving:.0f} steps" if saving > 0 else "never (no steady gain)"
        print(f"{'compiled, ' + name:20s} {r['rate']:8.2f} {r['wall']:8.1f} {r['rate'] / eager['rate']:5.2f}x "
              f"{warmup:10.1f}  {pays}")


if __name__ == "__main__":
    main()

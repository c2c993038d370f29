"""Whether glibc's default heap costs this CPU time: glibc's defaults against a heap that keeps freed memory
(mallopt: no mmap, no trim), each measurement in a fresh process, alternating, with the peak resident memory.
The tool does not change the allocator: this says why (issue "Fast where the researcher is").

    python bench/bench_malloc.py                               # every row below
    python bench/bench_malloc.py --repeats 3 --only paper_sampling
glibc gives each freed block over its mmap threshold back to the OS (the threshold follows the largest freed
block up to 32 MiB) and trims the heap's free top, so blocks over 32 MiB land on fresh zeroed pages, faulted in
every time. Rows: the paper network's training loop (batch 64: blocks up to 32 MiB), its sampling in one batch
of 512 (128 MiB activations) and of 128, and the laptop preset's loop (2 MiB).
"""

from __future__ import annotations

import argparse
import statistics

import torch
from child import ROOT, run_child

from conceptspace.devices import cpu_name, native_bf16

# name -> (what bench_train measures, overrides, unit)
SETTINGS = {
    "paper_ddpm": ("train", ["model=paper", "train.batch_size=64"], "steps/s"),
    "paper_sampling": ("sample", ["model=paper"], "images/s"),  # 4 cells x 128 probes: one batch of 512
    "paper_sampling_128": ("sample", ["model=paper", "tracker.batch_size=128"], "images/s"),  # 4 batches
    "laptop": ("train", ["experiment=laptop"], "steps/s"),
}
CHILD = """
import json, resource, sys
sys.path[:0] = [{bench!r}]
import ctypes, ctypes.util, platform
from bench_train import bench_sampling, bench_training
applied = False
if {retain!r} and platform.libc_ver()[0] == "glibc":  # mallopt(M_MMAP_MAX, 0), mallopt(M_TRIM_THRESHOLD, 2^31 - 1)
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    applied = bool(libc.mallopt(-4, 0)) and bool(libc.mallopt(-1, 2**31 - 1))
if {what!r} == "train":
    rate = bench_training({overrides!r} + ["data.per_cell=256"], {steps})["steps_per_s"]
else:  # 4 cells x 128 probes, 5 sampling steps
    r = bench_sampling({overrides!r}, 128, 5)
    rate = r["images"] / r["seconds"]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps({{"rate": rate, "peak_mb": peak, "applied": applied}}))
"""
ARMS = {"glibc default": False, "retain freed memory": True}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20, help="per paper-network training run; the laptop runs 10x")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    precision = "bf16" if native_bf16(torch.device("cpu")) else "fp32"
    results = {(name, arm): [] for name in args.only for arm in ARMS}
    for name in args.only:
        what, overrides, _ = SETTINGS[name]
        steps = args.steps * (10 if name == "laptop" else 1)
        overrides = [*overrides, f"train.precision={precision}"]
        for _ in range(args.repeats):
            for arm, retain in ARMS.items():
                code = CHILD.format(bench=str(ROOT / "bench"), retain=retain, what=what, overrides=overrides,
                                    steps=steps)
                results[name, arm].append(run_child(code, f"{name} {arm}"))
    print(f"cpu {cpu_name()}, {torch.get_num_threads()} threads; torch {torch.__version__}; {precision}; training "
          f"rows: the real loop, tracker off; {args.repeats} fresh processes per row, alternating")
    print(f"{'setting':15s} {'allocator':20s} {'unit':>9s} {'each run':>24s} {'median':>8s} {'gain':>6s} "
          f"{'peak MB':>8s}")
    for name in args.only:
        base = None
        for arm in ARMS:
            runs = results[name, arm]
            rates = sorted(r["rate"] for r in runs)
            median = statistics.median(rates)
            base = base or median
            if ARMS[arm] and not all(r["applied"] for r in runs):
                arm += " (not glibc: n/a)"
            print(f"{name:15s} {arm:20s} {SETTINGS[name][2]:>9s} {' '.join(f'{r:.3f}' for r in rates):>24s} "
                  f"{median:8.3f} {median / base:5.2f}x {max(r['peak_mb'] for r in runs):8.0f}")


if __name__ == "__main__":
    main()

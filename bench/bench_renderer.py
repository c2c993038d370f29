"""Renderer throughput: the vectorised torch renderer vs a per-image numpy/scipy implementation of the same
generator (the paper's approach), in the same process. Prints a table; targets: >= 50k img/s on a 2-core
CPU, >= 5M img/s on an H100.

    python bench/bench_renderer.py [--n 16384] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from synthetic_shapes import ShapesConfig, ShapesWorld
from synthetic_shapes.reference import render_dataset


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=16384)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--reference-n", type=int, default=512)
    args = parser.parse_args()
    rows = []
    for label, kw in [("torch, paper defaults", {}), ("torch, no pixel noise", {"noise_std": 0.0})]:
        chunk = 1024 if args.device == "cpu" else 1 << 20
        world = ShapesWorld(ShapesConfig(**kw), device=args.device, chunk=chunk)
        index = torch.arange(args.n, device=args.device)
        seconds = timed(lambda w=world, i=index: w.train_batch(i, 0), repeats=5)
        rows.append((f"{label} ({args.device})", args.n / seconds))
    seconds = timed(lambda: render_dataset(args.reference_n), repeats=1)
    rows.append(("per-image numpy/scipy (cpu)", args.reference_n / seconds))
    ref = rows[-1][1]
    print(f"threads={torch.get_num_threads()}  images={args.n}  32x32 RGB")
    print(f"{'renderer':40s} {'img/s':>12s} {'vs per-image':>13s}")
    for label, rate in rows:
        print(f"{label:40s} {rate:12,.0f} {rate / ref:12.1f}x")


if __name__ == "__main__":
    main()

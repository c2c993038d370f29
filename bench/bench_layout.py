"""Whether channels_last memory pays for a preset's network on this CPU: per memory layout, the network's
forward + backward + fused AdamW step (steps/s, best of five) and where its operator time goes (torch.profiler
self time per step, grouped as in profile_step.py, with copies split out of "other").

    python bench/bench_layout.py                                     # experiment=laptop, bf16 autocast
    python bench/bench_layout.py --setting model=paper train.batch_size=64 --steps 3 --precision fp32
The training loop runs NCHW (contiguous). This says why: in channels_last PyTorch's CPU group norm is several
times slower, and a U-Net has a group norm before every convolution; a lone 3x3 convolution gains from it, but
inside the network the convolutions' gain swung from -34% to +24% over four runs (2-core Xeon with AMX, bf16,
docs/results/bench/).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch
from bench_ceiling import network
from bench_dropout import ms
from profile_step import kind_of
from torch.profiler import ProfilerActivity, profile

from conceptspace.devices import cpu_name, native_bf16

LAYOUTS = {"NCHW": torch.contiguous_format, "channels_last": torch.channels_last}
COLUMNS = ["convolution (fwd+bwd)", "group norm", "copies", "other"]


def training_step(setting: list[str], layout: torch.memory_format, bf16: bool):
    model, (images, times, vectors) = network(setting)
    model = model.to(memory_format=layout)  # before the optimizer, so AdamW's state takes the same layout
    images = images.contiguous(memory_format=layout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(images, times, vectors)
        out.float().square().mean().backward()
        optimizer.step()

    return step


def ms_per_step(step, steps: int) -> dict[str, float]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue
        kind = "copies" if event.key in ("aten::copy_", "aten::clone") else kind_of(event.key)
        totals[kind if kind in COLUMNS else "other"] += event.self_cpu_time_total / 1e3 / steps
    return totals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--setting", nargs="*", default=["experiment=laptop"])
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--steps", type=int, default=40, help="per timing; the profile takes a quarter")
    args = parser.parse_args()
    bf16 = args.precision == "bf16"
    if bf16 and not native_bf16(torch.device("cpu")):
        raise SystemExit("--precision: bf16 needs a CPU with native bf16 (AMX or avx512_bf16); use fp32")
    print(f"cpu {cpu_name()}, {torch.get_num_threads()} threads; torch {torch.__version__}; "
          f"{' '.join(args.setting)}; {args.precision}; network forward+backward+AdamW, no data or diffusion")
    print("operator self time per step, ms (torch.profiler, which inflates it: compare columns, not with steps/s)")
    print(f"{'layout':14s} {'steps/s':>8s} " + " ".join(f"{c.split(' (')[0]:>12s}" for c in COLUMNS)
          + f" {'total':>8s}")
    for name, layout in LAYOUTS.items():
        step = training_step(args.setting, layout, bf16)
        rate = 1e3 / ms(step, repeats=args.steps)  # best of five timings
        times = ms_per_step(step, max(1, args.steps // 4))
        print(f"{name:14s} {rate:8.2f} " + " ".join(f"{times[c]:12.1f}" for c in COLUMNS)
              + f" {sum(times.values()):8.1f}")


if __name__ == "__main__":
    main()

"""What the paper network's dropout 0.1 costs on this CPU: torch's against the tool's (issue "Fast where the
researcher is"). profile_step showed `aten::bernoulli_` as the largest cost outside the convolutions (8% of a
paper step in fp32, 12% in bf16): torch draws one Mersenne Twister number per element. The networks use
conceptspace.dropout.SplitDrawDropout instead: four 15-bit mask fields from each 64-bit draw.

    python bench/bench_dropout.py
For one activation of 8.4M elements (64 x 128 x 32 x 32, at least the size of any in the network), prints the time of
torch's dropout and of SplitDrawDropout, forward and forward + backward, in fp32 and in bf16 (what the network's
dropouts see under bf16 autocast).
"""

from __future__ import annotations

import time

import torch

from conceptspace.dropout import FIELDS, SplitDrawDropout

P = 0.1
SHAPE = (64, 128, 32, 32)


def ms(fn, repeats: int = 20) -> float:
    """Best-of-5 mean milliseconds of fn over `repeats` calls, after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best * 1e3


def timings(drop, x: torch.Tensor, grad: torch.Tensor) -> tuple[float, float]:
    """(forward, forward + backward) milliseconds of one dropout module on x."""
    with torch.no_grad():
        forward = ms(lambda: drop(x))
    return forward, ms(lambda: torch.autograd.grad(drop(x), x, grad))


def main() -> None:
    torch.manual_seed(0)
    drops = {"torch dropout": torch.nn.Dropout(P), "SplitDrawDropout": SplitDrawDropout(P)}
    print(f"{torch.get_num_threads()} threads; torch {torch.__version__}; one activation {SHAPE}, "
          f"{torch.Size(SHAPE).numel() / 1e6:.1f}M elements, p {P}; ms, best of five")
    print(f"{'':26s} {'forward':>8s} {'fwd+bwd':>8s} {'fwd+bwd vs torch':>17s}")
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(SHAPE, dtype=dtype, requires_grad=True)
        grad = torch.randn_like(x)
        times = {name: timings(drop, x, grad) for name, drop in drops.items()}
        for name, (forward, both) in times.items():
            print(f"{name + ', ' + str(dtype).split('.')[1]:26s} {forward:8.1f} {both:8.1f} "
                  f"{times['torch dropout'][1] / both:16.2f}x")
    print(f"SplitDrawDropout drops {round(P * FIELDS)}/{FIELDS} = {round(P * FIELDS) / FIELDS:.6f} of the elements "
          f"(torch: {P}); kept ones scale by 1/(1 - that)")


if __name__ == "__main__":
    main()

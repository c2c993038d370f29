"""What the paper network's dropout 0.1 costs on this CPU, and what a cheaper mask would save (issue "Fast
where the researcher is"). profile_step shows `aten::bernoulli_` as the largest cost outside the
convolutions (8% of a paper step in fp32, 12% in bf16): torch draws one Mersenne Twister number per element.

    python bench/bench_dropout.py
For one activation of 8.4M elements (64 x 128 x 32 x 32, at least the size of any in the network), prints the time of
torch's dropout in fp32 and bf16, and of a mask cut from half as many 32-bit draws (two 16-bit thresholds per
draw, keep probability 1 - 6554/65536). The cheaper mask is a probe, not used by the tool: it would replace
diffusers' nn.Dropout in every resnet and change every dropout draw of existing paper-network runs.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

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


def split_draw_dropout(x: torch.Tensor, p: float = P) -> torch.Tensor:
    """Dropout whose mask compares 16-bit halves of 32-bit draws with a threshold: half the draws."""
    threshold = round(p * 65536) - 32768
    n = x.numel()
    halves = torch.randint(-2**31, 2**31 - 1, ((n + 1) // 2,), dtype=torch.int32).view(torch.int16)[:n]
    keep = (threshold + 32768) / 65536
    return x * (halves.view(x.shape) >= threshold) * (1 / (1 - keep))


def main() -> None:
    torch.manual_seed(0)
    x32 = torch.randn(SHAPE)
    x16 = x32.bfloat16()
    rows = [
        ("torch dropout, fp32", ms(lambda: F.dropout(x32, P, True))),
        ("torch dropout, bf16", ms(lambda: F.dropout(x16, P, True))),
        ("  its mask alone (bernoulli_)", ms(lambda: torch.empty_like(x16).bernoulli_(1 - P))),
        ("split-draw dropout, bf16", ms(lambda: split_draw_dropout(x16))),
    ]
    print(f"{torch.get_num_threads()} threads; torch {torch.__version__}; one activation {SHAPE}, "
          f"{x32.numel() / 1e6:.1f}M elements, p {P}")
    print(f"{'':32s} {'ms':>7s} {'vs torch bf16':>14s}")
    for name, t in rows:
        print(f"{name:32s} {t:7.1f} {rows[1][1] / t:13.2f}x")
    dropped = (split_draw_dropout(torch.ones(SHAPE)) == 0).float().mean().item()
    print(f"split-draw dropout zeroes {dropped:.4f} of the elements (torch: {P}); kept ones scale by 1/(1-p)")


if __name__ == "__main__":
    main()

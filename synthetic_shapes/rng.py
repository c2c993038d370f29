"""Counter-based random numbers: every draw is a hash of (seed, image index, stream, element).

An image's randomness depends only on its own index, so renders are identical whatever the batch size,
chunking or device (CPU and CUDA run the same int32 two's-complement arithmetic), and two renders with
the same (seed, index) but different cells share every draw, which is what paired concept-signal renders
need.
"""

from __future__ import annotations

import functools

import torch

_MAX_INDEX = 2**31 - 1


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """T. Mueller's 32-bit integer mixer on int32 tensors (multiplication wraps modulo 2^32; the masks make
    the right shifts logical). Mutates and returns x: callers pass fresh temporaries (the hot path)."""
    for _ in range(2):
        x ^= (x >> 16).bitwise_and_(0xFFFF)
        x *= 0x45D9F3B
    x ^= (x >> 16).bitwise_and_(0xFFFF)
    return x


def _key(seed: int, stream: int, device) -> torch.Tensor:
    words = [seed & 0x7FFFFFFF, (seed >> 31) & 0x7FFFFFFF, (stream * 0x9E3779B) & 0x7FFFFFFF]
    key = torch.zeros((), dtype=torch.int32, device=device)
    for w in words:
        key = _hash32(key ^ w)
    return key


def random_bits(seed: int, index: torch.Tensor, stream: int, n: int) -> torch.Tensor:
    """(N,) image indices -> (N, n) int32 of 32 random bits each."""
    if index.numel() and (index.min() < 0 or index.max() > _MAX_INDEX):
        raise ValueError(f"index: image indices must lie in [0, 2^31), got [{index.min()}, {index.max()}]")
    base = _hash32(index.to(torch.int32) ^ _key(seed, stream, index.device))
    element = _hash32(torch.arange(n, device=index.device, dtype=torch.int32) * 0x27D4EB2F)
    return _hash32(base[:, None] ^ element[None, :])


def uniform(seed: int, index: torch.Tensor, stream: int, n: int) -> torch.Tensor:
    """(N, n) float32 uniforms in [0, 1) with 24 bits of resolution."""
    return ((random_bits(seed, index, stream, n) >> 8) & 0xFFFFFF).to(torch.float32) * (1.0 / (1 << 24))


@functools.lru_cache(maxsize=8)
def _normal_table(device) -> torch.Tensor:
    """Standard-normal quantiles at the 65,536 midpoints (k + 0.5) / 65536: indexing it with a uniform
    16-bit integer draws from N(0, 1) to a resolution of 1/65536 in probability (|z| <= 4.17)."""
    p = (torch.arange(65536, dtype=torch.float64) + 0.5) / 65536
    return torch.special.ndtri(p).to(torch.float32).to(device)


def normal(seed: int, index: torch.Tensor, stream: int, n: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """(N, n) standard normals; each 32-bit hash gives two 16-bit uniforms, each mapped through the table.
    (An inverse-CDF lookup costs far less than Box-Muller's log/sqrt/cos/sin on a CPU.) With an even n,
    `out` (a contiguous (N, n) float32 buffer) receives them without an extra copy."""
    half = (n + 1) // 2
    bits = random_bits(seed, index, stream, half)
    codes = torch.empty(index.shape[0], 2, half, dtype=torch.int32, device=index.device)
    torch.bitwise_and(bits >> 16, 0xFFFF, out=codes[:, 0])
    torch.bitwise_and(bits, 0xFFFF, out=codes[:, 1])
    table = _normal_table(index.device)
    if out is not None and n == 2 * half:
        return torch.index_select(table, 0, codes.view(-1), out=out.view(-1)).view(index.shape[0], n)
    z = torch.index_select(table, 0, codes.view(-1)).view(index.shape[0], 2 * half)
    return z[:, :n]

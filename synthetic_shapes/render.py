"""Pure, batched pixel rendering: factors in, images out. No randomness except the noise passed in."""

from __future__ import annotations

import math

import torch

from .config import SHAPES


def canvas(image_size: int, device=None) -> torch.Tensor:
    """Pixel coordinates on [-1, 1], as the paper's `linspace(-1, 1, S)` grid."""
    return torch.linspace(-1.0, 1.0, image_size, device=device)


def blur_matrix(image_size: int, sigma_px: float, device=None) -> torch.Tensor:
    """(S, S) matrix B with B @ x equal to scipy.ndimage.gaussian_filter1d(x, sigma, mode='reflect',
    truncate=4.0) along one axis. A 2-D blur is then B @ M @ B^T (separable)."""
    if sigma_px == 0:
        return torch.eye(image_size, device=device)
    radius = int(4.0 * sigma_px + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (taps / sigma_px) ** 2)
    weights /= weights.sum()
    matrix = torch.zeros(image_size, image_size, dtype=torch.float64)
    for offset, w in zip(taps.long().tolist(), weights.tolist()):
        for i in range(image_size):
            j = i + offset
            period = 2 * image_size  # 'reflect' = half-sample symmetric: (d c b a | a b c d | d c b a)
            j %= period
            if j >= image_size:
                j = period - 1 - j
            matrix[i, j] += w
    return matrix.to(torch.float32).to(device)


def shape_masks(shape_ids: torch.Tensor, center: torch.Tensor, radius: torch.Tensor, image_size: int
                ) -> torch.Tensor:
    """Hard masks (N, S, S) in {0, 1}. Axis 0 of the canvas is x, axis 1 is y (meshgrid indexing='ij').
    circle: distance < radius; square: half-side = radius; triangle: circumradius = radius."""
    grid = canvas(image_size, center.device)
    dx = grid[None, :, None] - center[:, 0, None, None]
    dy = grid[None, None, :] - center[:, 1, None, None]
    r = radius[:, None, None]
    masks = torch.zeros(shape_ids.shape[0], image_size, image_size, device=center.device)
    for sid in shape_ids.unique().tolist():
        sel = shape_ids == sid
        x, y, rr = dx[sel], dy[sel], r[sel]
        name = SHAPES[sid]
        if name == "circle":
            inside = x * x + y * y < rr * rr
        elif name == "square":
            inside = torch.maximum(x.abs(), y.abs()) < rr
        else:  # equilateral triangle, apex along +x: inside all three half-planes at the inradius r/2
            angles = [math.pi + 2 * math.pi * k / 3 for k in range(3)]
            inside = torch.stack([x * math.cos(a) + y * math.sin(a) < rr / 2 for a in angles]).all(0)
        masks[sel] = inside.to(masks.dtype)
    return masks


def composite(mask: torch.Tensor, color: torch.Tensor, background: torch.Tensor, noise: torch.Tensor | None
              ) -> torch.Tensor:
    """img = m * colour + (1 - m) * background (+ pixel noise), clipped to [0, 1]. Returns (N, 3, S, S).
    The image is built in the noise buffer itself (no copy): the renderer's hot path."""
    n, s = mask.shape[0], mask.shape[-1]
    img = noise.view(n, 3, s * s) if noise is not None else torch.zeros(n, 3, s * s, device=mask.device)
    img.add_(background[:, :, None]).addcmul_(mask.reshape(n, 1, s * s), (color - background)[:, :, None])
    return img.clamp_(0.0, 1.0).view(n, 3, s, s)


def render(shape_ids, center, radius, color, background, image_size: int, blur: torch.Tensor,
           noise: torch.Tensor | None = None) -> torch.Tensor:
    """Factors -> images (N, 3, S, S) float32 in [0, 1]; anti-aliased by a Gaussian blur of the hard mask."""
    hard = shape_masks(shape_ids, center, radius, image_size)
    soft = blur @ hard @ blur.T
    return composite(soft, color, background, noise)

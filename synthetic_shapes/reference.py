"""A straightforward per-image numpy/scipy implementation of the paper's generator (`generate_images_1`),
kept as the baseline of `bench/` and as an independent check of the vectorised renderer in the tests."""

from __future__ import annotations

import numpy as np


def render_one(shape: str, center, radius: float, color, background, image_size: int = 32,
               blur_sigma_px: float = 1.0, noise_std: float = 0.0, rng: np.random.Generator | None = None
               ) -> np.ndarray:
    """One image, CHW float32 in [0, 1], the way the paper's code draws it: a hard mask on a
    linspace(-1, 1) grid, scipy's Gaussian blur, alpha compositing, Gaussian pixel noise, clip."""
    from scipy.ndimage import gaussian_filter

    grid = np.linspace(-1, 1, image_size)
    x, y = np.meshgrid(grid, grid, indexing="ij")
    dx, dy = x - center[0], y - center[1]
    if shape == "circle":
        mask = np.sqrt(dx**2 + dy**2) < radius
    elif shape == "square":
        mask = np.maximum(np.abs(dx), np.abs(dy)) < radius
    else:
        angles = np.pi + 2 * np.pi * np.arange(3) / 3
        mask = np.all([dx * np.cos(a) + dy * np.sin(a) < radius / 2 for a in angles], axis=0)
    m = gaussian_filter(mask.astype(np.float64), sigma=blur_sigma_px)[..., None] if blur_sigma_px else \
        mask.astype(np.float64)[..., None]
    img = m * np.asarray(color)[None, None] + (1 - m) * np.asarray(background)[None, None]
    if noise_std:
        img = img + (rng or np.random.default_rng()).normal(0, noise_std, img.shape)
    return np.clip(img, 0, 1).transpose(2, 0, 1).astype(np.float32)


def render_dataset(n: int, sep_col: float = 0.4, sep_size: float = 0.4, image_size: int = 32, seed: int = 0
                   ) -> np.ndarray:
    """n training images of the 2x2 colour x size cube, one Python iteration per image (the paper's way)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, image_size, image_size), np.float32)
    for i in range(n):
        color_idx, size_idx = divmod(i % 3, 2)  # the three training cells
        h = sep_col / 2
        mean = (0.5 + h, 0.5 - h, 0.5 - h) if color_idx == 0 else (0.5 - h, 0.5 - h, 0.5 + h)
        color = np.asarray(mean) + rng.uniform(-sep_col / 8, sep_col / 8, 3)
        radius = max(0.45 + (sep_size / 2 if size_idx == 0 else -sep_size / 2)
                     + rng.uniform(-3 * sep_size / 8, 3 * sep_size / 8), 0.1)
        out[i] = render_one("circle", rng.uniform(-0.5, 0.5, 2), radius, color, rng.uniform(0.8, 1.0, 3),
                            image_size, 1.0, 0.001, rng)
    return out

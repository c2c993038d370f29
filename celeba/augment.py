"""Training-time augmentation, a pure function of (seed, step): a resumed run sees exactly the same batches.

flip     each image mirrored left-right with probability 1/2 (RandomHorizontalFlip)
jitter   ColorJitter(brightness=j, contrast=j, saturation=j, hue=j), the paper's j = 0.1. Factors are drawn per
         image, so the four operations are torchvision.transforms.v2.functional's formulas vectorised over the
         batch (a per-image adjust_hue loop costs ~25x more; tests compare the two). Unlike torchvision they are
         applied in a fixed order (brightness, contrast, saturation, hue) rather than a random one.
"""

from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as F

from conceptspace.seeding import derive_seed


def augment_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, step, "celeba-augment"))


def augment(images: torch.Tensor, seed: int, step: int, flip: bool, jitter: float) -> torch.Tensor:
    """images (B, 3, S, S) float in [0, 1] -> augmented copy (same device)."""
    if not flip and jitter == 0:
        return images
    g = augment_generator(seed, step)
    n = images.shape[0]
    # both draws always happen, so a flip decision does not depend on whether jitter is on
    flips = (torch.rand(n, generator=g) < 0.5).to(images.device)
    uniform = torch.rand(n, 4, generator=g)
    if flip:
        images = torch.where(flips.view(n, 1, 1, 1), images.flip(-1), images)
    if jitter > 0:
        factors = (1 + jitter * (2 * uniform[:, :3] - 1)).to(images.device, images.dtype)
        hues = (jitter * (2 * uniform[:, 3] - 1)).to(images.device, images.dtype)
        images = color_jitter(images, factors, hues)
    return images


def color_jitter(images: torch.Tensor, factors: torch.Tensor, hues: torch.Tensor) -> torch.Tensor:
    """factors (B, 3): brightness, contrast, saturation multipliers; hues (B,): hue shifts in [-0.5, 0.5]."""
    brightness, contrast, saturation = (factors[:, i].view(-1, 1, 1, 1) for i in range(3))
    images = _blend(images, torch.zeros_like(images[:, :1]), brightness)
    mean_grey = F.rgb_to_grayscale(images).mean(dim=(-3, -2, -1), keepdim=True)
    images = _blend(images, mean_grey, contrast)
    images = _blend(images, F.rgb_to_grayscale(images), saturation)
    return shift_hue(images, hues)


# hsv -> rgb: which of (v, p, q, t) each of r, g, b takes in each of the six hue sectors (as torchvision)
_SECTOR_CHANNELS = torch.tensor([[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]])


def shift_hue(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """adjust_hue with one shift per image: rgb -> hsv, h += shift (mod 1), hsv -> rgb."""
    r, g, b = images.unbind(-3)
    value, low = images.amax(-3), images.amin(-3)
    spread = value - low
    grey = spread == 0
    divisor = torch.where(grey, torch.ones_like(spread), spread)
    hue = torch.where(value == r, (g - b) / divisor,
                      torch.where(value == g, (b - r) / divisor + 2, (r - g) / divisor + 4))
    hue = torch.where(grey, torch.zeros_like(hue), hue) / 6
    saturation = spread / torch.where(value == 0, torch.ones_like(value), value)
    hue = (hue + shifts.view(-1, 1, 1)) % 1.0
    sector = (hue * 6).floor()
    frac = hue * 6 - sector
    p = (value * (1 - saturation)).clamp(0, 1)
    q = (value * (1 - saturation * frac)).clamp(0, 1)
    t = (value * (1 - saturation * (1 - frac))).clamp(0, 1)
    select = _SECTOR_CHANNELS.to(images.device)[:, sector.long() % 6].transpose(0, 1)  # (B, 3, H, W)
    return torch.stack((value, p, q, t), dim=-3).gather(-3, select)


def _blend(images: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    return (ratio * images + (1 - ratio) * other).clamp(0, 1)

"""Data sources for training: a stateless map from (seed, step) to a batch, so resume is exact.

Interface every source implements (synthetic shapes here, CelebA in `celeba.source`):
    spec: ConceptSpec            concepts, cells, held-out cells, vector layout
    image_size: int
    train_batch(step, batch_size) -> (images (B, 3, S, S) float32 in [0, 1] on the device, vectors (B, dim))
    prompt_vectors(cell, n) -> (n, dim)   the cell's exact class-mean conditioning vector, repeated
"""

from __future__ import annotations

import functools

import torch

from synthetic_shapes import ShapesConfig, ShapesWorld

from .seeding import derive_seed


@functools.lru_cache(maxsize=32)  # built once per epoch; two per source at a time (a batch straddles two)
def epoch_order(seed: int, epoch: int, n: int, device) -> torch.Tensor:
    """The shuffled order of a finite dataset in one epoch (a pure function of seed and epoch), on `device`."""
    g = torch.Generator().manual_seed(derive_seed(seed, epoch, "order"))
    return torch.randperm(n, generator=g).to(device)


def finite_indices(seed: int, step: int, batch_size: int, n: int, device) -> torch.Tensor:
    """Dataset positions of a step's batch: epochs of shuffled order, consumed batch after batch. Built from
    Python integers and the device-resident epoch order: no host round trip in the training step."""
    start, stop = step * batch_size, (step + 1) * batch_size
    parts = []
    for epoch in range(start // n, (stop - 1) // n + 1):
        lo, hi = max(start, epoch * n) - epoch * n, min(stop, (epoch + 1) * n) - epoch * n
        parts.append(epoch_order(seed, epoch, n, str(device))[lo:hi])
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def train_split(seed: int, n: int, fraction: float) -> torch.Tensor:
    """Image indices of the training part of n rendered images: all of them, or (the paper's 85/15
    random_split of 6,144 into 5,222 + 922) a seeded random int(fraction * n) of them, in index order."""
    if fraction >= 1.0:
        return torch.arange(n)
    g = torch.Generator().manual_seed(derive_seed(seed, 0, "train_split"))
    return torch.randperm(n, generator=g)[: int(fraction * n)].sort().values


class ShapesSource:
    """The paper's generator: a finite set of `per_cell` images per training cell rendered once on the
    device (paper), or fresh renders every step (`mode=online`)."""

    ONLINE_OFFSET = 1 << 24  # online image indices never coincide with the finite set's

    def __init__(self, data_cfg, seed: int, device="cpu"):
        self.cfg = ShapesConfig.from_cfg(data_cfg)
        self.world = ShapesWorld(self.cfg, device=device)
        self.spec, self.image_size, self.seed, self.device = self.cfg.spec, self.cfg.image_size, seed, device
        self.mode = data_cfg.mode
        rendered = int(data_cfg.per_cell) * len(self.spec.train_cells)
        self.kept = train_split(self.seed, rendered, float(data_cfg.get("train_fraction", 1.0)))
        self.size = len(self.kept)
        self._finite = None

    def _dataset(self):
        if self._finite is None:
            b = self.world.train_batch(self.kept.to(self.device), self.seed)
            self._finite = (b.images, b.vectors)
        return self._finite

    def train_batch(self, step: int, batch_size: int):
        if self.mode == "online":
            start = self.ONLINE_OFFSET + step * batch_size
            b = self.world.train_batch(torch.arange(start, start + batch_size, device=self.device), self.seed)
            return b.images, b.vectors
        images, vectors = self._dataset()
        idx = finite_indices(self.seed, step, batch_size, self.size, self.device)
        return images[idx], vectors[idx]

    def prompt_vectors(self, cell, n: int) -> torch.Tensor:
        return self.spec.encode([cell] * n).to(self.device)


def build_source(data_cfg, seed: int, device="cpu"):
    if data_cfg.source == "shapes":
        return ShapesSource(data_cfg, seed, device)
    from celeba.source import CelebASource

    return CelebASource(data_cfg, seed, device)

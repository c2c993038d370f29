"""CelebASource: the training interface of conceptspace.data over a user's local CelebA.

Construction reads and checks the tree (fast); the image cache is built or opened on first use. Training uses
`per_cell` images of each training cell; `labelled` serves every cell, held-out ones included, for the
attribute classifier.
"""

from __future__ import annotations

import torch

from conceptspace.data import finite_indices

from .augment import augment
from .cache import CachedImages, load_or_build
from .config import CelebAConfig
from .index import build_index


class CelebASource:
    def __init__(self, data_cfg, seed: int, device="cpu"):
        self.cfg = CelebAConfig.from_cfg(data_cfg)
        self.index = build_index(self.cfg)
        self.spec, self.image_size, self.seed, self.device = self.cfg.spec, self.cfg.image_size, seed, device
        self._cached: CachedImages | None = None
        self._train: tuple[torch.Tensor, torch.Tensor] | None = None

    def _images(self) -> CachedImages:
        if self._cached is None:
            self._cached = load_or_build(self.index)
        return self._cached

    def _training_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (N, 3, S, S) and conditioning vectors (N, dim) of the training selection, on the device."""
        if self._train is None:
            cached = self._images()
            positions = self.index.training_positions(cached.skipped)
            images = torch.from_numpy(cached.pixels[positions]).to(self.device)
            vectors = self.spec.encode(torch.from_numpy(self.index.cells[positions])).to(self.device)
            self._train = (images, vectors)
        return self._train

    @property
    def size(self) -> int:
        """Number of training images (per_cell per training cell, fewer where a cell is smaller)."""
        return len(self._training_set()[0])

    def train_batch(self, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (B, 3, S, S) float32 in [0, 1], vectors (B, dim)) on the device; a pure function of
        (seed, step), augmentation included."""
        images, vectors = self._training_set()
        idx = finite_indices(self.seed, step, batch_size, len(images), self.device)
        batch = images[idx].float().div_(255)
        return augment(batch, self.seed, step, self.cfg.flip, self.cfg.jitter), vectors[idx]

    def prompt_vectors(self, cell, n: int) -> torch.Tensor:
        """The cell's exact one-hot conditioning vector, repeated: (n, dim) on the device."""
        return self.spec.encode([cell] * n).to(self.device)

    def labelled(self, split: str, n: int | None = None, seed: int = 0,
                 uint8: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Images of eval partition `split` ('train' | 'valid' | 'test' | 'all') from ALL cells, held-out ones
        included, un-augmented: (images (N, 3, S, S) on the CPU, float32 in [0, 1] or with uint8=True the cached
        0..255 bytes (4x less memory: the full train partition at 64 px is 8 GB as float32, 2 GB as uint8),
        cells LongTensor (N, k) of value indices in the concept order of `spec`). n: a random subset (by `seed`)
        of that size; None = the whole partition."""
        cached = self._images()
        positions = self.index.labelled_positions(split, n, seed, cached.skipped)
        images = torch.from_numpy(cached.pixels[positions])
        return (images if uint8 else images.float().div_(255)), torch.from_numpy(self.index.cells[positions])

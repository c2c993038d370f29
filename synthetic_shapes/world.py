"""ShapesWorld: a ground-truth-factor data source (disentanglement_lib style) for the paper's generator.

Every image comes with its continuous factors, its cell and its conditioning vector. Draws are keyed by
(seed, image index), so an image never depends on the batch it is rendered in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from conceptspace.concepts import ConceptError

from . import rng
from .config import RADIUS_CENTRE, RADIUS_FLOOR, SHAPES, TEST_BACKGROUND, ShapesConfig
from .render import blur_matrix, render

SPLITS = ("train", "test")
_COLOR, _RADIUS, _BG, _CENTER, _NOISE = 1, 2, 3, 4, 5  # random streams


@dataclass
class Batch:
    images: torch.Tensor  # (N, 3, S, S) float32 in [0, 1]
    cells: torch.Tensor  # (N, k) long: value index per concept
    vectors: torch.Tensor  # (N, dim) conditioning vectors (layout owned by the ConceptSpec)
    factors: dict  # color (N, 3), radius (N,), bg (N, 3), center (N, 2), shape (N,) long
    index: torch.Tensor  # (N,) image indices (the key of every random draw)


class ShapesWorld:
    def __init__(self, cfg: ShapesConfig, device="cpu", chunk: int = 1024):
        self.cfg, self.spec, self.device, self.chunk = cfg, cfg.spec, torch.device(device), chunk
        self._blur = blur_matrix(cfg.image_size, cfg.blur_sigma_px, self.device)

    # ---- factors -------------------------------------------------------------------------------------
    def factors(self, cells: torch.Tensor, index: torch.Tensor, seed: int, split: str = "train") -> dict:
        cfg, train = self.cfg, split == "train"
        n = index.shape[0]
        col = self._cell_column(cells)

        def around(concept, means, stream, width):
            mean = torch.tensor(means, device=self.device)[col(concept)] if concept in cfg.concepts \
                else torch.tensor(means[0], device=self.device).expand(n, width)
            if not train:
                return mean.clone()
            u = rng.uniform(seed, index, stream, width)
            return mean + (2 * u - 1) * cfg.jitter(concept)

        color = around("color", cfg.means("color"), _COLOR, 3)
        radius = around("size", [(RADIUS_CENTRE + cfg.sep_size / 2,), (RADIUS_CENTRE - cfg.sep_size / 2,)]
                        if "size" in cfg.concepts else [(RADIUS_CENTRE,)], _RADIUS, 1)[:, 0]
        radius = radius.clamp(min=RADIUS_FLOOR) if train else radius
        if "bg" in cfg.concepts:
            bg = around("bg", cfg.means("bg"), _BG, 3)
        elif train:
            bg = 0.8 + 0.2 * rng.uniform(seed, index, _BG, 3)
        else:
            bg = torch.full((n, 3), TEST_BACKGROUND, device=self.device)
        if "shape" in cfg.concepts:
            ids = torch.tensor([SHAPES.index(s) for s in cfg.shape_values], device=self.device)
            shape = ids[col("shape")]
        else:
            shape = torch.full((n,), SHAPES.index(cfg.shape), device=self.device, dtype=torch.long)
        center = (2 * rng.uniform(seed, index, _CENTER, 2) - 1) * cfg.center_range
        return {"color": color, "radius": radius, "bg": bg, "center": center, "shape": shape}

    def _cell_column(self, cells):
        def column(concept):
            return cells[:, self.cfg.concepts.index(concept)]
        return column

    def vectors(self, cells: torch.Tensor, factors: dict) -> torch.Tensor:
        """Conditioning vectors: the sampled factors ('values', the paper) or class one-hots ('onehot')."""
        if self.cfg.conditioning == "onehot":
            return self.spec.encode(cells)
        parts = {"color": factors["color"], "size": factors["radius"][:, None], "bg": factors["bg"]}
        if "shape" in self.cfg.concepts:
            parts["shape"] = self.spec.encode(cells)[:, self.spec.slot("shape")]
        return self.spec.assemble({n: parts[n] for n in self.spec.names})

    # ---- images --------------------------------------------------------------------------------------
    def render(self, factors: dict, index: torch.Tensor, seed: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Images of these factors; with `out` ((N, 3, S, S) float32, contiguous) rendered into it."""
        cfg, s = self.cfg, self.cfg.image_size
        if cfg.noise_std > 0:
            noise = rng.normal(seed, index, _NOISE, 3 * s * s, out=out).mul_(cfg.noise_std)
        else:
            noise = out.zero_() if out is not None else None
        return render(factors["shape"], factors["center"], factors["radius"], factors["color"], factors["bg"],
                      s, self._blur, noise)

    def batch(self, cells, index, seed: int, split: str = "train") -> Batch:
        """Render images of the given cells (N, k) at image indices (N,)."""
        _check_seed(seed)
        if split not in SPLITS:
            raise ConceptError(f"split: got {split!r}; allowed: {list(SPLITS)}")
        cells = torch.as_tensor(cells, dtype=torch.long, device=self.device).reshape(-1, len(self.spec.concepts))
        index = torch.as_tensor(index, dtype=torch.long, device=self.device).reshape(-1)
        if cells.shape[0] != index.shape[0]:
            raise ConceptError(f"batch: {cells.shape[0]} cells for {index.shape[0]} indices")
        if ((cells < 0) | (cells > 1)).any():
            raise ConceptError("cells: value indices must be 0 or 1")
        # chunks keep the working set in cache; each renders straight into its slice of one output buffer
        s = self.cfg.image_size
        images = torch.empty(len(index), 3, s, s, device=self.device)
        parts = []
        for i in range(0, max(len(index), 1), self.chunk):
            sl = slice(i, i + self.chunk)
            f = self.factors(cells[sl], index[sl], seed, split)
            if len(index):
                self.render(f, index[sl], seed, out=images[sl])
            parts.append((f, self.vectors(cells[sl], f)))
        factors = {k: torch.cat([f[k] for f, _ in parts]) for k in parts[0][0]}
        return Batch(images, cells, torch.cat([v for _, v in parts]), factors, index)

    def train_cells_for(self, index: torch.Tensor) -> torch.Tensor:
        """Balanced assignment of training cells to image indices (index mod number of training cells)."""
        train = torch.tensor(self.spec.train_cells, dtype=torch.long, device=self.device)
        return train[torch.as_tensor(index, device=self.device) % len(train)]

    def train_batch(self, index, seed: int) -> Batch:
        index = torch.as_tensor(index, dtype=torch.long, device=self.device).reshape(-1)
        return self.batch(self.train_cells_for(index), index, seed, "train")

    def prompt_batch(self, cell, n: int, seed: int, start: int = 0) -> Batch:
        """Test renders of one cell (any cell, held-out ones included): exact class means, grey background."""
        cells = torch.tensor([self.spec.cell(cell)] * n, dtype=torch.long)
        return self.batch(cells, torch.arange(start, start + n), seed, "test")


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConceptError(f"seed: got {seed!r}; allowed: a non-negative integer")

"""Which images exist, which cell each is in, and which are used: the balanced training set and labelled subsets.

Positions index `CelebAIndex.names` (the annotated images present on disk, sorted by file name); the image
cache stores its rows in the same order.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from conceptspace.errors import UserError

from .config import CelebAConfig
from .tree import PARTITIONS, TreePaths, locate, read_annotations, verify_checksums


@dataclass(frozen=True)
class CelebAIndex:
    cfg: CelebAConfig
    paths: TreePaths
    names: tuple[str, ...]
    cells: np.ndarray  # (N, k) int64: the value index of each concept
    partition: np.ndarray  # (N,) int8: 0 train, 1 valid, 2 test

    def __len__(self) -> int:
        return len(self.names)

    def split_mask(self, split: str) -> np.ndarray:
        if split == "all":
            return np.ones(len(self), dtype=bool)
        if split not in PARTITIONS:
            raise UserError(f"split: got {split!r}; allowed: {[*PARTITIONS, 'all']}")
        return self.partition == PARTITIONS[split]

    def cell_mask(self, cell) -> np.ndarray:
        return (self.cells == np.asarray(self.cfg.spec.cell(cell))).all(axis=1)

    def training_positions(self, skipped=()) -> np.ndarray:
        """`per_cell` images drawn (by selection_seed, not the run seed, so seeds share a set) from each training
        cell of `train_split`; a smaller cell is used whole with a warning. Grouped by cell, sorted by name."""
        spec, cfg = self.cfg.spec, self.cfg
        usable = self.split_mask(cfg.train_split) & _keep(len(self), skipped)
        chosen = []
        for cell in spec.train_cells:
            candidates = np.flatnonzero(usable & self.cell_mask(cell))
            if len(candidates) == 0:
                raise UserError(_empty_training_cell(spec.cell_name(cell), cfg))
            if len(candidates) < cfg.per_cell:
                warnings.warn(f"data.per_cell: training cell {spec.cell_name(cell)} has only {len(candidates)} "
                              f"images (< {cfg.per_cell}); using all of them", stacklevel=2)
            rng = np.random.default_rng([cfg.selection_seed, *cell])
            chosen.append(np.sort(rng.choice(candidates, size=min(cfg.per_cell, len(candidates)), replace=False)))
        return np.concatenate(chosen)

    def labelled_positions(self, split: str, n: int | None = None, seed: int = 0, skipped=()) -> np.ndarray:
        """Images of an eval partition (or 'all'), every cell including held-out ones; a random n of them."""
        positions = np.flatnonzero(self.split_mask(split) & _keep(len(self), skipped))
        if n is None:
            return positions
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UserError(f"n: got {n!r}; allowed: None or an integer >= 1")
        if n >= len(positions):
            if n > len(positions):
                warnings.warn(f"labelled({split!r}, n={n}): only {len(positions)} images; using all", stacklevel=2)
            return positions
        return np.sort(np.random.default_rng(seed).choice(positions, size=n, replace=False))


def build_index(cfg: CelebAConfig) -> CelebAIndex:
    """Read and check the tree: layout, checksums, attribute columns, image files, non-empty cells."""
    paths = locate(cfg.root, cfg.layout)
    if cfg.verify:
        verify_checksums(paths)
    ann = read_annotations(paths)
    for i, c in enumerate(cfg.concepts):
        if c.attribute not in ann.attribute_names:
            raise UserError(f"data.concepts[{i}].attribute: {c.attribute!r} is not a column of "
                            f"{paths.attr_file.name}; allowed: {', '.join(ann.attribute_names[:6])}, ...")
    present = set(os.listdir(paths.image_dir))
    keep = np.array([n in present for n in ann.names], dtype=bool)
    if not keep.all():
        missing = [n for n, k in zip(ann.names, keep) if not k]
        if not cfg.skip_corrupt:
            raise UserError(f"data.root: {len(missing)} annotated images are missing from {str(paths.image_dir)!r} "
                            f"(first: {missing[0]}); set data.skip_corrupt=true to skip them")
        warnings.warn(f"data.skip_corrupt: skipping {len(missing)} annotated images missing from "
                      f"{paths.image_dir} (first: {missing[0]})", stacklevel=2)
    order = sorted(np.flatnonzero(keep), key=lambda i: ann.names[i])
    cells = np.stack([(ann.column(c.attribute)[order] != c.attribute_values[0]).astype(np.int64)
                      for c in cfg.concepts], axis=1)
    index = CelebAIndex(cfg, paths, tuple(ann.names[i] for i in order), cells.reshape(len(order), -1),
                        ann.partition[order])
    _check_cells(index)
    return index


def _check_cells(index: CelebAIndex):
    spec, cfg = index.cfg.spec, index.cfg
    for cell in spec.held_out:
        if not index.cell_mask(cell).any():
            raise UserError(f"data.held_out: cell {spec.cell_name(cell)} has no images in {cfg.root!r} (nothing to "
                            f"evaluate against); allowed: cells with images")
    train = index.split_mask(cfg.train_split)
    for cell in spec.train_cells:
        if not (train & index.cell_mask(cell)).any():
            raise UserError(_empty_training_cell(spec.cell_name(cell), cfg))


def _empty_training_cell(name: str, cfg: CelebAConfig) -> str:
    return (f"data.concepts: training cell {name} has no images in data.train_split={cfg.train_split} of "
            f"{cfg.root!r}; choose other attributes or add the cell to data.held_out")


def _keep(n: int, skipped) -> np.ndarray:
    keep = np.ones(n, dtype=bool)
    keep[np.asarray(list(skipped), dtype=np.int64)] = False
    return keep

"""The fixed probe set: for every cell (training and held-out), N prompts at the cell's exact class mean,
each with its own noise seed, so the same probe is compared at every snapshot."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..concepts import ConceptSpec


@dataclass(frozen=True)
class Probe:
    cell: tuple[int, ...]
    index: int  # probe index within its cell
    seed: int


@dataclass(frozen=True)
class ProbeSet:
    spec: ConceptSpec
    probes: tuple[Probe, ...]

    @classmethod
    def build(cls, spec: ConceptSpec, n_per_cell: int, base_seed: int, cells=None) -> ProbeSet:
        """Seeds depend only on (base seed, cell's position among all cells, probe index)."""
        all_cells = spec.cells
        chosen = all_cells if cells is None else [spec.cell(c) for c in cells]
        probes = tuple(Probe(c, i, base_seed + all_cells.index(c) * n_per_cell + i)
                       for c in chosen for i in range(n_per_cell))
        return cls(spec, probes)

    @property
    def seeds(self) -> list[int]:
        return [p.seed for p in self.probes]

    @property
    def cells(self) -> torch.Tensor:
        return torch.tensor([p.cell for p in self.probes], dtype=torch.long)

    def vectors(self) -> torch.Tensor:
        """Naive prompts: each probe's cell class-mean vector."""
        return self.spec.encode(self.cells)

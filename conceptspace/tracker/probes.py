"""The fixed probe set: for every cell (training and held-out), N prompts at the cell's exact class mean,
each with its own noise seed, so the same probe is compared at every snapshot.

Seed of probe i of a cell: base seed + (stream * number of cells + cell position) * CELL_STRIDE + i. It
does not depend on N, so probe i is the same sample whatever the probe count (elicitation's 64 probes
extend the tracker's 32). Stream 0 is the tracker's (and every elicitation method's, so methods are
compared on the same noise); stream k > 0 is a disjoint fresh set (the null control's settings).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..concepts import ConceptSpec
from ..errors import UserError

CELL_STRIDE = 1_000_000  # seeds reserved per cell and stream: at most this many probes per cell


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
    def build(cls, spec: ConceptSpec, n_per_cell: int, base_seed: int, cells=None, stream: int = 0) -> ProbeSet:
        """Probes 0..n_per_cell-1 of each chosen cell (default: all); seeds as in the module docstring."""
        if isinstance(n_per_cell, bool) or not isinstance(n_per_cell, int) or not 1 <= n_per_cell <= CELL_STRIDE:
            raise UserError(f"n_probes: got {n_per_cell!r}; allowed: an integer in [1, {CELL_STRIDE}]")
        if isinstance(stream, bool) or not isinstance(stream, int) or stream < 0:
            raise UserError(f"probe stream: got {stream!r}; allowed: an integer >= 0")
        all_cells = spec.cells
        chosen = all_cells if cells is None else [spec.cell(c) for c in cells]
        first = base_seed + stream * len(all_cells) * CELL_STRIDE
        probes = tuple(Probe(c, i, first + all_cells.index(c) * CELL_STRIDE + i)
                       for c in chosen for i in range(n_per_cell))
        return cls(spec, probes)

    def select(self, keep) -> ProbeSet:
        """The probes for which keep(probe) is true, in order (e.g. those not sampled yet)."""
        return ProbeSet(self.spec, tuple(p for p in self.probes if keep(p)))

    @property
    def seeds(self) -> list[int]:
        return [p.seed for p in self.probes]

    @property
    def cells(self) -> torch.Tensor:
        return torch.tensor([p.cell for p in self.probes], dtype=torch.long).reshape(-1, len(self.spec.names))

    def vectors(self) -> torch.Tensor:
        """Naive prompts: each probe's cell class-mean vector."""
        return self.spec.encode(self.cells)

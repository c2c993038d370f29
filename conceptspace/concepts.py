"""ConceptSpec: the one place that knows concept names, values, cells and the conditioning-vector layout.

Every other module (renderer, CelebA loader, model, samplers, readouts, plots) asks the spec; nothing else
indexes a concept vector by hand.

A *concept* has two named values (a binary axis of concept space, e.g. colour: red/blue) and a block of
slots in the conditioning vector. Each value has a *prototype*: the slot contents of that value's class
mean (RGB of the mean red, the mean radius, or a one-hot). A *cell* is one value per concept, written as
a tuple of value indices (``(1, 1)`` = blue-small) or a name (``"blue-small"``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import torch

from .errors import UserError


class ConceptError(UserError):
    """A bad concept definition or cell reference (message names the field and the allowed values)."""


@dataclass(frozen=True)
class Concept:
    name: str
    values: tuple[str, str]
    prototypes: tuple[tuple[float, ...], tuple[float, ...]]
    # valid range of every slot of this concept (None = unbounded); used to validate over-prompts
    bounds: tuple[float | None, float | None] = (None, None)

    def __post_init__(self):
        if len(self.values) != 2 or len(self.prototypes) != 2:
            raise ConceptError(f"concept '{self.name}': needs exactly 2 values, got {list(self.values)}")
        if self.values[0] == self.values[1]:
            raise ConceptError(f"concept '{self.name}': values must differ, got {list(self.values)}")
        if len(self.prototypes[0]) != len(self.prototypes[1]) or not self.prototypes[0]:
            raise ConceptError(f"concept '{self.name}': both prototypes need the same non-zero width")
        if math.dist(self.prototypes[0], self.prototypes[1]) == 0:
            raise ConceptError(f"concept '{self.name}': prototypes of {list(self.values)} coincide")

    @property
    def width(self) -> int:
        return len(self.prototypes[0])

    def index(self, value: str | int) -> int:
        if isinstance(value, int) and value in (0, 1):
            return value
        if value in self.values:
            return self.values.index(value)
        raise ConceptError(f"concept '{self.name}': unknown value {value!r}; allowed: {list(self.values)}")


@dataclass(frozen=True)
class ConceptSpec:
    concepts: tuple[Concept, ...]
    held_out: tuple[tuple[int, ...], ...] = ()
    _slices: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not self.concepts:
            raise ConceptError("concepts: need at least one concept")
        names = [c.name for c in self.concepts]
        if len(set(names)) != len(names):
            raise ConceptError(f"concepts: names must be unique, got {names}")
        slices, start = {}, 0
        for c in self.concepts:
            slices[c.name] = slice(start, start + c.width)
            start += c.width
        object.__setattr__(self, "_slices", slices)
        held = tuple(self.cell(h) for h in self.held_out)
        object.__setattr__(self, "held_out", held)
        if len(set(held)) != len(held):
            raise ConceptError(f"held_out: duplicate cells {[self.cell_name(h) for h in held]}")
        if not self.train_cells:
            raise ConceptError("held_out: every cell is held out; at least one training cell is needed")

    # ---- layout -------------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [c.name for c in self.concepts]

    @property
    def dim(self) -> int:
        return sum(c.width for c in self.concepts)

    def concept(self, name: str) -> Concept:
        for c in self.concepts:
            if c.name == name:
                return c
        raise ConceptError(f"unknown concept {name!r}; allowed: {self.names}")

    def slot(self, name: str) -> slice:
        self.concept(name)
        return self._slices[name]

    def split(self, vectors: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, dim) -> {concept name: (N, width)} views."""
        self._check_dim(vectors)
        return {n: vectors[..., s] for n, s in self._slices.items()}

    def assemble(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """{concept name: (N, width)} -> (N, dim); the inverse of `split`."""
        missing = set(self.names) - set(parts)
        if missing:
            raise ConceptError(f"assemble: missing concepts {sorted(missing)}")
        return torch.cat([parts[n].reshape(-1, self.concept(n).width) for n in self.names], dim=-1)

    def _check_dim(self, vectors: torch.Tensor):
        if vectors.shape[-1] != self.dim:
            raise ConceptError(f"concept vectors have width {vectors.shape[-1]}, spec expects {self.dim}")

    # ---- cells --------------------------------------------------------------------------------------
    @property
    def cells(self) -> list[tuple[int, ...]]:
        return list(itertools.product(*[range(2) for _ in self.concepts]))

    @property
    def train_cells(self) -> list[tuple[int, ...]]:
        return [c for c in self.cells if c not in self.held_out]

    def cell(self, ref) -> tuple[int, ...]:
        """Parse a cell given as 'blue-small', ['blue', 'small'], (1, 1) or {'color': 'blue', ...}."""
        if isinstance(ref, str):
            ref = ref.split("-")
        if isinstance(ref, dict):
            unknown = set(ref) - set(self.names)
            if unknown or len(ref) != len(self.concepts):
                raise ConceptError(f"cell {ref}: needs one value for each of {self.names}")
            ref = [ref[n] for n in self.names]
        ref = list(ref)
        if len(ref) != len(self.concepts):
            raise ConceptError(
                f"cell {ref}: needs {len(self.concepts)} values (one per concept {self.names}), got {len(ref)}"
            )
        return tuple(c.index(v) for c, v in zip(self.concepts, ref))

    def cell_name(self, cell) -> str:
        cell = self.cell(cell)
        return "-".join(c.values[i] for c, i in zip(self.concepts, cell))

    def is_held_out(self, cell) -> bool:
        return self.cell(cell) in self.held_out

    # ---- vectors ------------------------------------------------------------------------------------
    def prototype(self, name: str) -> torch.Tensor:
        """(2, width) slot contents of the two class means of a concept."""
        return torch.tensor(self.concept(name).prototypes, dtype=torch.float32)

    def encode(self, cells) -> torch.Tensor:
        """Class-mean conditioning vectors of cells: LongTensor (N, k) or list of cell refs -> (N, dim)."""
        if not isinstance(cells, torch.Tensor):
            cells = torch.tensor([self.cell(c) for c in cells], dtype=torch.long)
        cells = cells.reshape(-1, len(self.concepts))
        parts = {c.name: self.prototype(c.name).to(cells.device)[cells[:, i]] for i, c in enumerate(self.concepts)}
        return self.assemble(parts)

    def coordinates(self, vectors: torch.Tensor) -> torch.Tensor:
        """Concept-space coordinates of vectors: per concept, the projection of its slots on the axis from
        value 0's prototype (-> 0) to value 1's prototype (-> 1). (N, dim) -> (N, k)."""
        parts = self.split(vectors)
        coords = []
        for c in self.concepts:
            p = self.prototype(c.name).to(vectors.device, vectors.dtype)
            axis = p[1] - p[0]
            coords.append(((parts[c.name] - p[0]) @ axis) / (axis @ axis))
        return torch.stack(coords, dim=-1)

    def decode(self, vectors: torch.Tensor) -> torch.Tensor:
        """Nearest cell of each vector (per-concept threshold at 0.5 on `coordinates`). (N, dim) -> (N, k)."""
        return (self.coordinates(vectors) > 0.5).long()

    def check_bounds(self, vectors: torch.Tensor, what: str = "concept vector"):
        """Raise if any slot leaves its concept's valid range (used for over-prompts)."""
        for c in self.concepts:
            part = self.split(vectors)[c.name]
            lo, hi = c.bounds
            if (lo is not None and (part < lo).any()) or (hi is not None and (part > hi).any()):
                raise ConceptError(
                    f"{what}: concept '{c.name}' leaves its valid range [{lo}, {hi}] "
                    f"(got min {part.min().item():.3g}, max {part.max().item():.3g})"
                )

    # ---- serialisation (saved with every model) -----------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "concepts": [
                {"name": c.name, "values": list(c.values), "prototypes": [list(p) for p in c.prototypes],
                 "bounds": list(c.bounds)}
                for c in self.concepts
            ],
            "held_out": [self.cell_name(h) for h in self.held_out],
        }

    @classmethod
    def from_dict(cls, d: dict) -> ConceptSpec:
        concepts = tuple(
            Concept(c["name"], tuple(c["values"]), tuple(tuple(p) for p in c["prototypes"]),
                    tuple(c.get("bounds", (None, None))))
            for c in d["concepts"]
        )
        return cls(concepts, tuple(d.get("held_out", ())))

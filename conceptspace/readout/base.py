"""What every readout is: images in, per-concept probabilities and continuous coordinates out.

Rows of the tracker (`conceptspace.tracker.rows`) store exactly these two numbers per sample and concept:
`p` = P(concept takes its value index 1) and `coords` (0 at value 0's class mean, 1 at value 1's), plus one
flag per sample: `found`, whether there is an object to read at all (a blank image is no evidence for any
value, so it must not count as correct on the value-0 targets its chance p = 0.5 would "match").
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from conceptspace.concepts import ConceptSpec
from conceptspace.errors import UserError

# Width of the sigmoid that turns an analytic coordinate into a probability: a sample at its class mean
# (coordinate 0 or 1) gets p = sigmoid(±5) (0.007 / 0.993); the training jitter (±1/8 of the class gap in
# colour, ±3/8 in size) still lands on the right side of 0.5 with p beyond 0.07 / 0.93.
TEMPERATURE = 0.1
CHANCE = 0.5


@runtime_checkable
class Readout(Protocol):
    name: str  # "analytic" | "learned"
    spec: ConceptSpec

    def read(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (N, 3, S, S) float in [0, 1] -> {"p": (N, k) P(value index 1) per concept in spec order,
        "coords": (N, k) continuous concept coordinates (0 at value 0's class mean, 1 at value 1's),
        "found": (N,) bool, an object was found (p and coords of the others are chance)}."""
        ...


def probability(coords: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """A smooth, monotone map from a concept coordinate to P(value index 1), 0.5 at the midpoint 0.5."""
    return torch.sigmoid((coords - 0.5) / temperature)


def check_images(images, what: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3 \
            or images.shape[2] != images.shape[3] or images.shape[2] < 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UserError(f"{what}: got {shape}; allowed: a float tensor (N, 3, S, S) with values in [0, 1]")
    return images.float()

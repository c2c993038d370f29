"""The learned readout: a trained concept classifier (`conceptspace train-probe`) loaded from its folder.

p is the classifier's softmax probability of value index 1 per concept. The classifier has no notion of a
class mean, so its coordinate is p itself (the paper's concept-space coordinate, paper_setup.md §3.2):
0 for a confident value 0, 1 for a confident value 1. `found` is always true. For CelebA the same class
trained on CelebA images is the attribute classifier.
"""

from __future__ import annotations

from pathlib import Path

import torch

from conceptspace.concepts import ConceptSpec
from conceptspace.errors import UserError

from .base import check_images
from .classifier import ConceptClassifier

CHUNK = 1024  # images per forward pass


def load_probe(path, device="cpu") -> ConceptClassifier:
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise UserError(f"probe path: {str(path)!r} is not a saved probe (no config.json); allowed: the folder "
                        "`conceptspace train-probe` saved (it prints the path; tracker.probe_path=<that folder>)")
    try:
        model = ConceptClassifier.from_pretrained(folder, low_cpu_mem_usage=False)
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"probe path: {str(path)!r} could not be loaded as a concept classifier: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return model.to(device).eval()


def _signature(spec: ConceptSpec) -> list:
    return [(c.name, list(c.values)) for c in spec.concepts]


class LearnedReadout:
    name = "learned"

    def __init__(self, path, device="cpu", expected_spec: ConceptSpec | None = None):
        self.model = load_probe(path, device)
        self.spec = self.model.spec
        self.device = torch.device(device)
        if expected_spec is not None and _signature(expected_spec) != _signature(self.spec):
            raise UserError(f"probe path: {str(path)!r} classifies {_signature(self.spec)}, but the run's concepts "
                            f"are {_signature(expected_spec)}; train a probe on this data config")

    @torch.no_grad()
    def read(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        images = check_images(images)
        chunks = [self.model.probabilities(chunk.to(self.device)).to(images.device) for chunk in images.split(CHUNK)]
        p = torch.cat(chunks) if chunks else images.new_zeros(0, len(self.spec.concepts))
        # a classifier always answers: "no object" is not one of its outputs
        return {"p": p, "coords": p.clone(), "found": torch.ones(len(p), dtype=torch.bool, device=p.device)}

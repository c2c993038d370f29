"""Concept signal: how much the pixels change when one concept changes (paper_setup.md §4).

For each concept, render pairs of images that share every random draw (same seed and image index) and
differ only in that concept (the all-first-values cell vs the same cell with that concept flipped); the
raw signal is the mean squared pixel difference, the normalised signal is the raw vector over its norm.
"""

from __future__ import annotations

import torch

from .world import ShapesWorld


def concept_signal(world: ShapesWorld, n: int = 256, seed: int = 0, split: str = "train") -> dict:
    spec = world.spec
    base = [0] * len(spec.concepts)
    index = torch.arange(n)
    reference = world.batch(torch.tensor([base] * n), index, seed, split).images
    raw = {}
    for i, name in enumerate(spec.names):
        flipped = list(base)
        flipped[i] = 1
        images = world.batch(torch.tensor([flipped] * n), index, seed, split).images
        raw[name] = ((images - reference) ** 2).mean().item()
    norm = sum(v * v for v in raw.values()) ** 0.5
    return {"raw": raw, "normalised": {k: v / norm for k, v in raw.items()}}


def format_signal_table(rows: list[tuple[dict, dict]]) -> str:
    """rows: (settings, concept_signal result) -> a fixed-width text table."""
    if not rows:
        return ""
    setting_keys = list(rows[0][0])
    names = list(rows[0][1]["raw"])
    head = setting_keys + [f"raw {n}" for n in names] + [f"norm {n}" for n in names]
    lines = ["  ".join(f"{h:>12s}" for h in head)]
    for settings, sig in rows:
        vals = [settings[k] for k in setting_keys] + [sig["raw"][n] for n in names] + \
               [sig["normalised"][n] for n in names]
        lines.append("  ".join(f"{v:>12.4f}" if isinstance(v, float) else f"{v!s:>12s}" for v in vals))
    return "\n".join(lines)

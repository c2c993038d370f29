"""Labelled images for training and validating the concept classifier (`train_probe`).

Both sources label every cell, held-out cells included: the probe must recognise the cells the diffusion
model never saw. Interface:
    spec: ConceptSpec
    batch(step, batch_size) -> (images (B, 3, S, S) in [0, 1], cells (B, k) long), a pure function of step
    validation_sets() -> [(settings dict, images, cells)]
"""

from __future__ import annotations

import dataclasses
import itertools

import torch

from synthetic_shapes import ShapesConfig, ShapesWorld

# generator knob of each concept whose class gap the probe is trained across
SEPARATION_KNOBS = {"color": "sep_col", "size": "sep_size", "bg": "sep_bg"}
VALIDATION_SEED_OFFSET = 1  # validation renders use seed + 1: no image shared with training


def _generator(seed: int, step: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7_919 + stream) & 0x7FFFFFFFFFFF)


class ShapesProbeData:
    """Fresh renders on the fly: uniform random cells, the generator's training distribution (jittered factors,
    random backgrounds), and per batch new class gaps drawn uniformly from `probe.ranges`."""

    def __init__(self, data_cfg, probe_cfg, seed: int, device="cpu"):
        self.base = ShapesConfig.from_cfg(data_cfg)
        self.spec, self.seed, self.device = self.base.spec, seed, device
        self.knobs = [SEPARATION_KNOBS[n] for n in self.spec.names if n in SEPARATION_KNOBS]
        self.ranges = {k: tuple(float(v) for v in probe_cfg.ranges[k]) for k in self.knobs}
        self.eval_values = {k: [float(v) for v in probe_cfg.eval[k]] for k in self.knobs}
        self.per_cell = int(probe_cfg.eval.per_cell)

    def world(self, **separations) -> ShapesWorld:
        return ShapesWorld(dataclasses.replace(self.base, **separations), device=self.device)

    def batch(self, step: int, batch_size: int):
        g = _generator(self.seed, step, 0)
        draws = torch.rand(len(self.knobs), generator=g).tolist()
        gaps = {k: lo + u * (hi - lo) for (k, (lo, hi)), u in zip(self.ranges.items(), draws)}
        cells = torch.randint(0, 2, (batch_size, len(self.spec.concepts)), generator=g)
        index = torch.arange(step * batch_size, (step + 1) * batch_size)
        b = self.world(**gaps).batch(cells, index, self.seed, "train")
        return b.images, b.cells

    def validation_sets(self):
        """Clean renders (class means, grey background) of every cell on the grid of `probe.eval` gaps."""
        cells = torch.tensor(self.spec.cells).repeat_interleave(self.per_cell, 0)
        index = torch.arange(len(cells))
        sets = []
        for values in itertools.product(*self.eval_values.values()):
            gaps = dict(zip(self.eval_values, values))
            b = self.world(**gaps).batch(cells, index, self.seed + VALIDATION_SEED_OFFSET, "test")
            sets.append((gaps, b.images, b.cells))
        return sets


class CelebAProbeData:
    """CelebA images with their attribute cells (`celeba.source.CelebASource.labelled`), all cells included;
    random minibatches of the train split with horizontal flips (the attributes are mirror-symmetric). Images
    stay uint8 on the CPU (the train split is 2 GB at 64 px) and become floats one batch at a time."""

    def __init__(self, data_cfg, probe_cfg, seed: int, device="cpu"):
        from celeba.source import CelebASource

        source = CelebASource(data_cfg, seed, device)
        self.spec, self.seed, self.device = source.spec, seed, device
        self.images, self.cells = source.labelled("train", seed=seed, uint8=True)
        self._valid = source.labelled("valid", seed=seed, uint8=True)

    def batch(self, step: int, batch_size: int):
        g = _generator(self.seed, step, 1)
        pick = torch.randint(0, len(self.images), (batch_size,), generator=g)
        images = as_unit_float(self.images[pick].to(self.device))
        flip = (torch.rand(batch_size, generator=g) < 0.5).to(self.device)
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        return images, self.cells[pick].to(self.device)

    def validation_sets(self):
        images, cells = self._valid
        return [({"split": "valid"}, images, cells)]


def as_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 or float images -> float32 in [0, 1]."""
    return images.float().div_(255) if images.dtype == torch.uint8 else images.float()


def build_probe_data(data_cfg, probe_cfg, seed: int, device="cpu"):
    if data_cfg.source == "shapes":
        return ShapesProbeData(data_cfg, probe_cfg, seed, device)
    return CelebAProbeData(data_cfg, probe_cfg, seed, device)

"""`conceptspace render`: a PNG grid per cell (training and held-out) and the concept-signal table."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import save_image

from synthetic_shapes import ShapesConfig, ShapesWorld
from synthetic_shapes.signal import concept_signal, format_signal_table

from .errors import UserError


def render(cfg, out_dir: Path) -> dict:
    if cfg.data.source != "shapes":
        raise UserError(f"data.source: render needs the synthetic 'shapes' source, got {cfg.data.source!r}")
    shapes = ShapesConfig.from_cfg(cfg.data)
    world = ShapesWorld(shapes)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = int(cfg.render.per_cell)
    for cell in world.spec.cells:
        name = world.spec.cell_name(cell)
        split = "test" if world.spec.is_held_out(cell) else "train"
        cells = torch.tensor([cell] * n)
        images = world.batch(cells, torch.arange(n), cfg.seed, split).images
        tag = "heldout" if split == "test" else "train"
        save_image(images, out_dir / f"cell_{name}_{tag}.png", nrow=int(n**0.5))
    signal = concept_signal(world, n=int(cfg.render.signal_pairs), seed=cfg.seed)
    settings = {k: getattr(shapes, k) for k in ("sep_col", "sep_size", "sep_bg") if
                {"sep_col": "color", "sep_size": "size", "sep_bg": "bg"}[k] in shapes.concepts}
    print(f"cells: {[world.spec.cell_name(c) for c in world.spec.cells]} "
          f"(held out: {[world.spec.cell_name(c) for c in world.spec.held_out]})")
    print(format_signal_table([(settings, signal)]))
    print(f"wrote {len(world.spec.cells)} cell grids to {out_dir}")
    return signal

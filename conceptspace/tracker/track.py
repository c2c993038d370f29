"""Sample a model's probe set, read the images out, and turn them into raw rows (see rows.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid, save_image

from ..checkpoint import atomic_output
from ..sampling import sample
from .probes import ProbeSet
from .rows import append_rows


class Tracker:
    def __init__(self, spec, process, readouts: list, probes: ProbeSet, run_dir: Path | None, *,
                 sample_steps: int | None = None, batch_size: int = 512, autocast: bool = False,
                 rows_file: str = "rows.jsonl"):
        self.spec, self.process, self.readouts, self.probes = spec, process, readouts, probes
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.sample_steps, self.batch_size, self.autocast = sample_steps, batch_size, autocast
        self.rows_file = rows_file

    @property
    def rows_path(self) -> Path:
        return self.run_dir / "tracker" / self.rows_file

    def images(self, model, vectors=None, *, guidance_scale=1.0, intervention=None, probes: ProbeSet | None = None
               ) -> torch.Tensor:
        probes = self.probes if probes is None else probes
        vectors = probes.vectors() if vectors is None else vectors
        return sample(model, self.process, vectors, probes.seeds, steps=self.sample_steps,
                      guidance_scale=guidance_scale, intervention=intervention, batch_size=self.batch_size,
                      autocast=self.autocast)

    def rows(self, images: torch.Tensor, step: int, method: str = "naive", setting: str = "",
             probes: ProbeSet | None = None) -> list[dict]:
        probes = self.probes if probes is None else probes
        rows = []
        for readout in self.readouts:
            out = readout.read(images)
            p, coords, found = out["p"].tolist(), out["coords"].tolist(), out["found"].tolist()
            for i, probe in enumerate(probes.probes):
                rows.append({
                    "step": step, "cell": self.spec.cell_name(probe.cell),
                    "held_out": self.spec.is_held_out(probe.cell), "probe": probe.index, "seed": probe.seed,
                    "readout": readout.name, "method": method, "setting": setting,
                    "p": dict(zip(self.spec.names, p[i])), "coords": dict(zip(self.spec.names, coords[i])),
                    "target": dict(zip(self.spec.names, probe.cell)), "found": bool(found[i]),
                })
        return rows

    def track(self, model, step: int, *, method: str = "naive", setting: str = "", vectors=None,
              guidance_scale: float = 1.0, intervention=None, probes: ProbeSet | None = None, write: bool = True,
              save_grid: bool = True, images: torch.Tensor | None = None) -> tuple[list[dict], torch.Tensor]:
        """Sample `probes` (default: the tracker's own; a subset or another seed stream for elicitation)
        with prompts `vectors` (default: their class means) and turn the images into rows. `images`: the
        probes already sampled (an ensemble samples all members' at once)."""
        if images is None:
            images = self.images(model, vectors, guidance_scale=guidance_scale, intervention=intervention,
                                 probes=probes)
        rows = self.rows(images, step, method, setting, probes)
        if write and self.run_dir is not None:
            append_rows(self.rows_path, rows)
            if method == "naive" and save_grid:
                with atomic_output(self.run_dir / "tracker" / "samples" / f"step_{step:06d}.png", "grid") as tmp:
                    save_image(self.grid(images), tmp)
        return rows, images

    def grid(self, images: torch.Tensor) -> torch.Tensor:
        """One row of probe samples per cell (at most 16 per row)."""
        per_cell = len(self.probes.probes) // max(len({p.cell for p in self.probes.probes}), 1)
        shown = min(per_cell, 16)
        keep = [i for i, p in enumerate(self.probes.probes) if p.index < shown]
        (self.run_dir / "tracker" / "samples").mkdir(parents=True, exist_ok=True)
        return make_grid(images[keep], nrow=shown, padding=1, pad_value=1.0)


def grid_uint8(grid: torch.Tensor) -> np.ndarray:
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def held_out_summary(rows: list[dict], spec) -> dict:
    """Scalars for the live log: per-concept and joint accuracy, and mean P, of the held-out cells. A sample
    without an object is wrong on every concept."""
    out = {}
    for cell in spec.held_out:
        name = spec.cell_name(cell)
        mine = [r for r in rows if r["cell"] == name and r["method"] == "naive"]
        if not mine:
            continue
        readout = mine[0]["readout"]
        mine = [r for r in mine if r["readout"] == readout]
        correct = np.array([[r["found"] and (r["p"][c] > 0.5) == bool(r["target"][c]) for c in spec.names]
                            for r in mine])
        for j, c in enumerate(spec.names):
            out[f"heldout/{name}/acc_{c}"] = float(correct[:, j].mean())
            out[f"heldout/{name}/p_{c}"] = float(np.mean([r["p"][c] for r in mine]))
        out[f"heldout/{name}/acc_joint"] = float(correct.all(1).mean())
    return out

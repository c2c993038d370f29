"""The analytic readout: read the generator's factors straight off the pixels (synthetic shapes only).

Per image (`disc_fit`): background colour, object colour, radius. Each concept's coordinate is the projection
of its measured factor on the axis between its two class means (`ShapesConfig.means`, whatever the
conditioning), so 0 is value 0's class mean and 1 is value 1's:

    color: object RGB on the red -> blue axis        size: radius on the large -> small axis
    bg:    background RGB on the light -> dark axis   shape: not measurable here (use the learned readout)

The object must be a circle (data.shape=circle, the paper's setting); other shapes need the learned readout.

p = sigmoid((coord - 0.5) / temperature), temperature 0.1 by default (`base.TEMPERATURE`).
When no object is found (uniform image, noise) `found` is false and the object concepts read chance: coord
0.5, p 0.5 (so scorers must use `found`, not p alone). The background is read from the border pixels even
then.
"""

from __future__ import annotations

import torch

from conceptspace.errors import UserError
from synthetic_shapes import ShapesConfig

from .base import CHANCE, TEMPERATURE, check_images, probability
from .disc_fit import DiscFit, DiscFitter

OBJECT_CONCEPTS = ("color", "size")  # measured on the object, chance when there is none
SCENE_CONCEPTS = ("bg",)  # measured on the background


class AnalyticReadout:
    name = "analytic"

    def __init__(self, shapes_cfg: ShapesConfig, temperature: float = TEMPERATURE):
        if not isinstance(shapes_cfg, ShapesConfig):
            raise UserError("readout 'analytic': needs the synthetic shapes generator config (data.source=shapes);"
                            " other sources need the learned readout")
        unsupported = [n for n in shapes_cfg.concepts if n not in OBJECT_CONCEPTS + SCENE_CONCEPTS]
        if unsupported:
            raise UserError(f"readout 'analytic': concept(s) {unsupported} cannot be measured from pixels; "
                            f"allowed: {list(OBJECT_CONCEPTS + SCENE_CONCEPTS)}. Use the learned readout "
                            "(train one with `conceptspace train-probe`, pass it as tracker.probe_path)")
        if shapes_cfg.shape != "circle":  # the pixel model is a disc: radius and small-object colour need it
            raise UserError(f"readout 'analytic': data.shape got {shapes_cfg.shape!r}; allowed: 'circle' (the "
                            "paper's shape). Use the learned readout for other shapes")
        if not temperature > 0:
            raise UserError(f"readout 'analytic': temperature got {temperature!r}; allowed: a number > 0")
        self.cfg, self.spec, self.temperature = shapes_cfg, shapes_cfg.spec, float(temperature)
        self._fitters: dict = {}

    def measure(self, images: torch.Tensor) -> DiscFit:
        """The raw pixel measurements (background, colour, radius, centre, fit quality) of each image."""
        images = check_images(images)
        key = (images.shape[-1], images.device)
        if key not in self._fitters:
            self._fitters[key] = DiscFitter(images.shape[-1], self.cfg.blur_sigma_px, images.device)
        return self._fitters[key](images)

    def read(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        fit = self.measure(images)
        factors = {"color": fit.color, "size": fit.radius[:, None], "bg": fit.background}
        coords = []
        for name in self.spec.names:
            coord = self._coordinate(name, factors[name])
            if name in OBJECT_CONCEPTS:
                coord = torch.where(fit.found, coord, torch.full_like(coord, CHANCE))
            coords.append(coord)
        coords = torch.stack(coords, dim=-1)
        return {"p": probability(coords, self.temperature), "coords": coords, "found": fit.found.bool()}

    def _coordinate(self, name: str, values: torch.Tensor) -> torch.Tensor:
        """Projection on the axis from value 0's class mean (-> 0) to value 1's (-> 1)."""
        means = torch.tensor(self.cfg.means(name), dtype=values.dtype, device=values.device)
        axis = means[1] - means[0]
        return ((values - means[0]) @ axis) / (axis @ axis)

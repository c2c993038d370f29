"""Generator settings (the paper's `generate_images_1` semantics) and the ConceptSpec they define."""

from __future__ import annotations

from dataclasses import dataclass, field

from conceptspace.concepts import Concept, ConceptError, ConceptSpec

SHAPES = ("circle", "square", "triangle")
CONCEPTS = ("color", "size", "bg", "shape")
CONDITIONING = ("values", "onehot")
RADIUS_CENTRE, RADIUS_FLOOR = 0.45, 0.1  # paper: radius means 0.45 ± Δsize/2, jittered radii floored at 0.1
TEST_BACKGROUND = 0.9  # paper: prompt/test renders use a 0.9 grey background when bg is no concept


@dataclass(frozen=True)
class ShapesConfig:
    concepts: tuple[str, ...] = ("color", "size")
    held_out: tuple = (("blue", "small"),)
    image_size: int = 32
    sep_col: float = 0.4
    sep_size: float = 0.4
    sep_bg: float = 0.4
    shape: str = "circle"  # the shape when "shape" is not a concept
    shape_values: tuple[str, str] = ("circle", "square")  # the two shapes when it is
    conditioning: str = "values"  # values: the sampled continuous factors (paper); onehot: class ids
    noise_std: float = 0.001
    blur_sigma_px: float = 1.0
    center_range: float = 0.5  # centre ~ U(-r, r)^2 in canvas units on [-1, 1]
    spec: ConceptSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "concepts", tuple(self.concepts))
        object.__setattr__(self, "shape_values", tuple(self.shape_values))
        object.__setattr__(self, "held_out", tuple(tuple(h) if not isinstance(h, str) else h
                                                   for h in self.held_out))
        self._validate()
        concepts = tuple(self._concept(n) for n in self.concepts)
        try:
            spec = ConceptSpec(concepts, self.held_out)
        except ConceptError as e:
            raise ConceptError(f"data.held_out: {e}") from None
        object.__setattr__(self, "spec", spec)

    # ---- validation: one clear line naming the field and what is allowed ----------------------------
    def _validate(self):
        bad = [c for c in self.concepts if c not in CONCEPTS]
        if bad or not self.concepts or len(set(self.concepts)) != len(self.concepts):
            raise ConceptError(f"data.concepts: got {list(self.concepts)}; "
                               f"allowed: distinct names from {list(CONCEPTS)}")
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 8:
            raise ConceptError(f"data.image_size: got {self.image_size!r}; allowed: an integer >= 8")
        _check_range("data.sep_col", self.sep_col, 0.0, 0.8)  # 0.5 + Δ/2 + Δ/8 <= 1
        _check_range("data.sep_size", self.sep_size, 0.0, 0.7, hi_open=True)  # small mean 0.45-Δ/2 > floor 0.1
        _check_range("data.sep_bg", self.sep_bg, 0.0, 0.8)
        _check_range("data.noise_std", self.noise_std, 0.0, 0.5, lo_open=False)
        _check_range("data.blur_sigma_px", self.blur_sigma_px, 0.0, 8.0, lo_open=False)
        _check_range("data.center_range", self.center_range, 0.0, 1.0, lo_open=False)
        if self.shape not in SHAPES:
            raise ConceptError(f"data.shape: got {self.shape!r}; allowed: {list(SHAPES)}")
        if len(self.shape_values) != 2 or any(s not in SHAPES for s in self.shape_values):
            raise ConceptError(f"data.shape_values: got {list(self.shape_values)}; allowed: two of {list(SHAPES)}")
        if self.conditioning not in CONDITIONING:
            raise ConceptError(f"data.conditioning: got {self.conditioning!r}; allowed: {list(CONDITIONING)}")

    # ---- class means ---------------------------------------------------------------------------------
    def means(self, concept: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Slot contents of the two class means of a concept, in 'values' conditioning."""
        if concept == "color":
            h = self.sep_col / 2
            return (0.5 + h, 0.5 - h, 0.5 - h), (0.5 - h, 0.5 - h, 0.5 + h)  # red, blue
        if concept == "size":
            h = self.sep_size / 2
            return (RADIUS_CENTRE + h,), (RADIUS_CENTRE - h,)  # large, small
        if concept == "bg":
            h = self.sep_bg / 2
            return (0.5 + h,) * 3, (0.5 - h,) * 3  # light, dark
        return (1.0, 0.0), (0.0, 1.0)  # shape: one-hot in either conditioning

    def jitter(self, concept: str) -> float:
        """Half-width of the uniform training jitter around a class mean."""
        return {"color": self.sep_col / 8, "size": 3 * self.sep_size / 8, "bg": self.sep_bg / 8}.get(concept, 0.0)

    def _concept(self, name: str) -> Concept:
        values = {"color": ("red", "blue"), "size": ("large", "small"), "bg": ("light", "dark"),
                  "shape": self.shape_values}[name]
        if self.conditioning == "onehot":
            return Concept(name, values, ((1.0, 0.0), (0.0, 1.0)), (0.0, 1.0))
        bounds = (0.0, None) if name == "size" else (0.0, 1.0)
        return Concept(name, values, self.means(name), bounds)

    @classmethod
    def from_cfg(cls, cfg) -> ShapesConfig:
        """Build from a (Hydra) mapping, ignoring keys that belong to the data pipeline, not the generator."""
        import dataclasses

        known = {f.name for f in dataclasses.fields(cls) if f.init}
        kwargs = {k: (list(v) if hasattr(v, "__iter__") and not isinstance(v, str) else v)
                  for k, v in dict(cfg).items() if k in known}
        if "held_out" in kwargs:
            kwargs["held_out"] = tuple(h if isinstance(h, str) else tuple(h) for h in kwargs["held_out"])
        return cls(**kwargs)


def _check_range(name, value, lo, hi, lo_open=True, hi_open=False):
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok_type and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConceptError(f"{name}: got {value!r}; allowed: a number in {interval}")

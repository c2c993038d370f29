"""CelebA data settings (configs/data/celeba.yaml), their one-line validation, and `check` for conceptspace.validate.

Concepts are CelebA attributes. Each has two named values; `values[i]` names concept value index i and
`attribute_values[i]` is the CelebA label (1 = attribute present, -1 = absent) it stands for. Value index 1
is the positive end of the concept-space axis, so {attribute: Male, values: [male, female],
attribute_values: [1, -1]} gives the paper's P(female) axis. Conditioning is one-hot per concept.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields

from conceptspace.concepts import Concept, ConceptError, ConceptSpec
from conceptspace.errors import UserError

from .tree import ATTRIBUTES, LAYOUTS, PARTITIONS

RESIZES = ("center_crop", "squash")
TRAIN_SPLITS = ("all", *PARTITIONS)
ONE_HOT = ((1.0, 0.0), (0.0, 1.0))


@dataclass(frozen=True)
class AttributeConcept:
    attribute: str
    values: tuple[str, str]
    attribute_values: tuple[int, int] = (-1, 1)  # CelebA label of values[0], values[1]
    name: str = ""  # concept name; defaults to the attribute

    @property
    def concept_name(self) -> str:
        return self.name or self.attribute

    def concept(self) -> Concept:
        return Concept(self.concept_name, tuple(self.values), ONE_HOT, (0.0, 1.0))


@dataclass(frozen=True)
class CelebAConfig:
    root: str = "data/celeba"
    layout: str = "auto"
    verify: bool = False
    concepts: tuple[AttributeConcept, ...] = (
        AttributeConcept("Male", ("male", "female"), (1, -1)),
        AttributeConcept("Smiling", ("not_smiling", "smiling"), (-1, 1)),
    )
    held_out: tuple = (("female", "smiling"),)
    image_size: int = 64
    resize: str = "center_crop"
    mode: str = "finite"
    per_cell: int = 30000
    train_split: str = "all"
    selection_seed: int = 0
    flip: bool = True
    jitter: float = 0.0
    cache_dir: str = ".cache/conceptspace"
    skip_corrupt: bool = False
    spec: ConceptSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        self._validate()
        try:
            spec = ConceptSpec(tuple(c.concept() for c in self.concepts), self.held_out)
        except ConceptError as e:
            raise UserError(f"data.held_out: {e}") from None
        object.__setattr__(self, "spec", spec)

    @property
    def preprocessing(self) -> dict:
        """Everything that changes the cached pixels (part of the cache key)."""
        return {"image_size": self.image_size, "resize": self.resize}

    def _validate(self):
        _choice("data.layout", self.layout, LAYOUTS)
        _choice("data.resize", self.resize, RESIZES)
        _choice("data.mode", self.mode, ("finite",))
        _choice("data.train_split", self.train_split, TRAIN_SPLITS)
        for name in ("verify", "flip", "skip_corrupt"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"data.{name}: got {getattr(self, name)!r}; allowed: true, false")
        _integer("data.image_size", self.image_size, 8, 512)
        _integer("data.per_cell", self.per_cell, 1)
        _integer("data.selection_seed", self.selection_seed, 0)
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, (int, float)) or not 0 <= self.jitter <= 0.5:
            raise UserError(f"data.jitter: got {self.jitter!r}; allowed: a number in [0, 0.5] (0 = off)")
        for name in ("root", "cache_dir"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise UserError(f"data.{name}: got {getattr(self, name)!r}; allowed: a directory path")
        if not self.concepts:
            raise UserError("data.concepts: got []; allowed: a list of {attribute, values, attribute_values}")
        for i, c in enumerate(self.concepts):
            _check_concept(f"data.concepts[{i}]", c)
        attributes = [c.attribute for c in self.concepts]
        names = [c.concept_name for c in self.concepts]
        if len(set(attributes)) != len(attributes) or len(set(names)) != len(names):
            raise UserError(f"data.concepts: each attribute and concept name at most once, got {attributes}")

    @classmethod
    def from_cfg(cls, cfg) -> CelebAConfig:
        """Build from the (Hydra) data config; keys that are not CelebA settings (e.g. `source`) are ignored."""
        from omegaconf import DictConfig, OmegaConf

        raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        known = {f.name for f in fields(cls) if f.init}
        kwargs = {k: v for k, v in raw.items() if k in known}
        if "concepts" in kwargs:
            kwargs["concepts"] = tuple(_attribute_concept(i, c) for i, c in enumerate(_as_list("concepts",
                                                                                               kwargs["concepts"])))
        if "held_out" in kwargs:
            kwargs["held_out"] = tuple(h if isinstance(h, str) else tuple(h)
                                       for h in _as_list("held_out", kwargs["held_out"] or []))
        return cls(**kwargs)


def check(data_cfg) -> None:
    """Validate the settings and the data tree before anything is written (one-line UserError)."""
    from .index import build_index

    build_index(CelebAConfig.from_cfg(data_cfg))


def _attribute_concept(i: int, c) -> AttributeConcept:
    allowed = {"attribute", "values", "attribute_values", "name"}
    if not isinstance(c, dict) or "attribute" not in c or "values" not in c or set(c) - allowed:
        raise UserError(f"data.concepts[{i}]: got {c!r}; allowed: a mapping with keys attribute, values and "
                        f"optionally attribute_values, name")
    values = tuple(_as_list(f"concepts[{i}].values", c["values"]))
    labels = tuple(_as_list(f"concepts[{i}].attribute_values", c.get("attribute_values", (-1, 1))))
    return AttributeConcept(c["attribute"], values, labels, c.get("name") or "")


def _check_concept(where: str, c: AttributeConcept):
    if c.attribute not in ATTRIBUTES:
        close = difflib.get_close_matches(str(c.attribute), ATTRIBUTES, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"{where}.attribute: unknown CelebA attribute {c.attribute!r}{hint}; allowed: one of the "
                        f"40, e.g. Male, Smiling, Wearing_Hat, Eyeglasses, Black_Hair, Young")
    if len(c.values) != 2 or len(set(c.values)) != 2 or not all(
            isinstance(v, str) and v and "-" not in v for v in c.values):
        raise UserError(f"{where}.values: got {list(c.values)}; allowed: two distinct names without '-' "
                        f"(e.g. [male, female])")
    if sorted(c.attribute_values) != [-1, 1]:
        raise UserError(f"{where}.attribute_values: got {list(c.attribute_values)}; allowed: [-1, 1] or [1, -1] "
                        f"(the CelebA label of values[0] and values[1])")
    if not isinstance(c.name, str) or "-" in c.name:
        raise UserError(f"{where}.name: got {c.name!r}; allowed: a name without '-'")


def _as_list(name: str, value) -> list:
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise UserError(f"data.{name}: got {value!r}; allowed: a list")
    return list(value)


def _choice(name: str, value, allowed):
    if value not in allowed:
        raise UserError(f"{name}: got {value!r}; allowed: {list(allowed)}")


def _integer(name: str, value, lo: int, hi: int | None = None):
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise UserError(f"{name}: got {value!r}; allowed: an integer {bound}")

"""Readouts: what a generated image says about each concept (the tracker's eyes).

    build_readout("analytic", shapes_cfg)              pixels -> factors; synthetic shapes only, needs no training
    build_readout("learned", spec_or_cfg, path=probe)   a concept classifier trained by `conceptspace train-probe`

Both return {"p": (N, k) P(value index 1), "coords": (N, k) concept coordinates} per concept in spec order,
and "found": (N,) bool, whether the image holds an object to read (the learned readout: always true).
A trained probe is a folder (config.json + safetensors, the ConceptSpec inside); the tracker takes it as
`tracker.probe_path`, so one probe serves every run on the same concepts.
"""

from __future__ import annotations

from conceptspace.errors import UserError

from .base import Readout, probability

KINDS = ("analytic", "learned")

__all__ = ["KINDS", "Readout", "build_readout", "probability"]


def build_readout(kind: str, shapes_cfg_or_spec, path: str | None = None, device="cpu") -> Readout:
    """kind "analytic" needs a `synthetic_shapes.ShapesConfig`; kind "learned" needs the probe folder `path`
    and checks that the probe classifies the same concepts and values as the given spec/config."""
    from synthetic_shapes import ShapesConfig

    if kind not in KINDS:
        raise UserError(f"readout: got {kind!r}; allowed: {list(KINDS)}")
    if kind == "analytic":
        from .analytic import AnalyticReadout

        return AnalyticReadout(shapes_cfg_or_spec)
    if path is None or str(path) == "":
        raise UserError("readout 'learned': needs a probe path (tracker.probe_path); allowed: the folder saved by "
                        "`conceptspace train-probe`")
    from .learned import LearnedReadout

    spec = shapes_cfg_or_spec.spec if isinstance(shapes_cfg_or_spec, ShapesConfig) else shapes_cfg_or_spec
    return LearnedReadout(path, device=device, expected_spec=spec)


def __getattr__(name):  # heavy classes (torch nn, diffusers) load on first use
    if name == "AnalyticReadout":
        from .analytic import AnalyticReadout

        return AnalyticReadout
    if name in ("LearnedReadout", "ConceptClassifier"):
        from . import classifier, learned

        return getattr(learned if name == "LearnedReadout" else classifier, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

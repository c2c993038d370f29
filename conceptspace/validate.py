"""Semantic checks of a composed config, run before anything is written (one-line UserError on failure)."""

from __future__ import annotations

import importlib

from .errors import UserError

SOURCES = ("shapes", "celeba")
DEVICES = ("auto", "cpu", "cuda")

# each verb's own checks: verb -> [module:function(cfg)], imported only for that verb
CHECKS = {
    "render": [],
    "train": ["conceptspace.model_check:check", "conceptspace.train:check"],
    "train-probe": ["conceptspace.readout.train_probe:check"],
}


def validate(verb: str, cfg) -> None:
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise UserError(f"seed: got {cfg.seed!r}; allowed: a non-negative integer")
    device = str(cfg.device)
    if device.split(":")[0] not in DEVICES:
        raise UserError(f"device: got {device!r}; allowed: {list(DEVICES)} (cuda:N for a given GPU)")
    check_data(cfg.data)
    for target in CHECKS.get(verb, []):
        module, fn = target.split(":")
        getattr(importlib.import_module(module), fn)(cfg)


def check_data(data) -> None:
    if data.source not in SOURCES:
        raise UserError(f"data.source: got {data.source!r}; allowed: {list(SOURCES)}")
    if data.source == "shapes":
        from synthetic_shapes import ShapesConfig

        ShapesConfig.from_cfg(data)
        if data.mode not in ("finite", "online"):
            raise UserError(f"data.mode: got {data.mode!r}; allowed: ['finite', 'online']")
        if isinstance(data.per_cell, bool) or not isinstance(data.per_cell, int) or data.per_cell < 1:
            raise UserError(f"data.per_cell: got {data.per_cell!r}; allowed: an integer >= 1")
        frac = data.get("train_fraction", 1.0)
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac <= 1:
            raise UserError(f"data.train_fraction: got {frac!r}; allowed: a number in (0, 1] (the paper: 0.85)")
    else:
        from celeba.config import check as check_celeba

        check_celeba(data)


def concept_names(data) -> list[str]:
    """Concept names of a data config, without loading any data."""
    if data.source == "shapes":
        return list(data.concepts)
    return [c.get("name") or c["attribute"] for c in data.concepts]

"""`conceptspace train [-m] OVERRIDES --dry-run`: compose and validate every job of a (multi)run, build each
job's model and print one line per job, writing nothing (no run dir, no Hydra output folder).

The jobs are the cartesian product of the sweeper's params (an experiment preset's hydra.sweeper.params)
and the command line's sweep overrides (a=1,2), the command line winning for a key both set, as Hydra's
basic sweeper does."""

from __future__ import annotations

import itertools
from pathlib import Path

from . import disk
from .config import compose
from .errors import UserError


def expand_jobs(overrides: list[str]) -> list[list[str]]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = compose(overrides, return_hydra_config=True).hydra.sweeper.params or {}
    lines = [f"{k}={v}" for k, v in params.items()] + list(overrides)
    by_key: dict[str, list[str]] = {}
    for o in OverridesParser.create().parse_overrides(lines):
        key = o.get_key_element()
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else None
        by_key[key] = [f"{key}={v}" for v in values] if values is not None else [o.input_line]
    return [list(job) for job in itertools.product(*by_key.values())]


def dry_run(verb: str, overrides: list[str], multirun: bool, ensemble: int | None = None) -> int:
    """`ensemble`: members per ensemble under hydra/launcher=ensemble (prints how the jobs would group)."""
    from .model import build_model, count_parameters
    from .validate import validate

    if verb != "train":
        raise UserError(f"--dry-run: supported for 'train'; got {verb!r}")
    jobs = expand_jobs(overrides) if multirun else [overrides]
    cfgs = []
    total = 0
    sizes: dict[str, int] = {}  # one model build per distinct model config (sweeps share theirs)
    for i, job in enumerate(jobs):
        cfg = compose(job)
        cfgs.append(cfg)
        try:
            validate(verb, cfg)
        except UserError as e:
            raise UserError(f"job {i} ({' '.join(job)}): {e}") from None
        spec = spec_of_config(cfg)
        key = f"{cfg.model}|{cfg.data.image_size}|{spec.dim}"
        if key not in sizes:
            sizes[key] = count_parameters(build_model(cfg.model, spec, cfg.data.image_size))
        params = sizes[key]
        est = disk.estimate(cfg, params, len(spec.cells))
        total += est["bytes"]
        print(f"job {i}: ok  {' '.join(job) or '(defaults)'}  [{cfg.model.preset}, {params / 1e6:.2f}M params, "
              f"{cfg.diffusion.name}, {cfg.train.steps} steps, disk ~{disk.human(est['bytes'])}]")
    if ensemble is not None:
        from .ensemble import group_key
        from .launcher import describe, group_jobs

        print(describe(group_jobs(cfgs, ensemble), len({group_key(c) for c in cfgs})))
    print(f"dry run: {len(jobs)} job{'s' if len(jobs) != 1 else ''} validated, nothing written; disk for all: "
          f"about {disk.human(total)} (free: {disk.human(disk.free_bytes(Path('.')) or 0)})")
    return 0


def spec_of_config(cfg):
    """The ConceptSpec a composed config trains on, without rendering or loading any data."""
    if cfg.data.source == "shapes":
        from synthetic_shapes import ShapesConfig

        return ShapesConfig.from_cfg(cfg.data).spec
    from celeba.config import CelebAConfig

    return CelebAConfig.from_cfg(cfg.data).spec

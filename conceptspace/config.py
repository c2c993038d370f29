"""Where the Hydra configs live, composing them outside @hydra.main, and one-line validation of overrides."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .errors import UserError, first_line

MAX_NAME_BYTES = 200  # file systems allow 255 per path component; leave room for Hydra's suffixes


def short_dirname(name: str) -> str:
    """A run-dir name from the overrides that fits one path component: long ones keep their first part and
    gain a hash of the whole, so the same command still maps to the same dir (rerun = resume). The full
    overrides are in the run dir's config.yaml and .hydra/overrides.yaml."""
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    import hashlib

    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    return name.encode()[: MAX_NAME_BYTES - 14].decode(errors="ignore") + "~" + digest


if not OmegaConf.has_resolver("cs_dirname"):
    OmegaConf.register_new_resolver("cs_dirname", short_dirname)


def config_dir() -> Path:
    """`configs/` at the top of the checkout (or $CONCEPTSPACE_CONFIG_DIR)."""
    path = Path(os.environ.get("CONCEPTSPACE_CONFIG_DIR") or Path(__file__).resolve().parents[1] / "configs")
    if not (path / "config.yaml").is_file():
        raise UserError(f"config dir {path} has no config.yaml; set CONCEPTSPACE_CONFIG_DIR to the configs/ folder")
    return path


def group_options(group: str) -> list[str]:
    folder = config_dir() / group
    return sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml"))


def compose(overrides: list[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """Compose the config for these overrides; any Hydra error becomes one line naming the key and the
    valid options. Sweep overrides (a=1,2 or glob/range) are checked with their first value."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as e:
        raise UserError(f"bad override: {first_line(e)}") from None
    firsts = []
    for o in parsed:
        if o.is_sweep_override():
            value = next(iter(o.sweep_string_iterator()))
            firsts.append(f"{o.get_key_element()}={value}")
        else:
            firsts.append(o.input_line)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
            return hydra_compose("config", overrides=firsts, return_hydra_config=return_hydra_config)
    except HydraException as e:
        raise UserError(_explain(e, parsed)) from None
    finally:
        GlobalHydra.instance().clear()


def _explain(error, parsed) -> str:
    msg = first_line(error)
    for o in parsed:
        key = o.get_key_element().lstrip("+~")
        group = key.split("@")[0]
        if (config_dir() / group).is_dir() and (group in msg or "Could not find" in msg):
            return f"{key}: unknown option {o.value()!r}; allowed: {group_options(group)}"
    if "not in struct" in msg or "Could not override" in msg or "Could not append" in msg:
        bad = next((o.get_key_element() for o in parsed if o.get_key_element() in msg), None)
        return f"unknown config key {bad or msg!r} (prefix it with '+' only to add a new key on purpose)"
    return msg



def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)

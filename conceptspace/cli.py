"""The `conceptspace` command. Hydra verbs take config overrides; run-dir verbs take a path and options.

    conceptspace render [overrides]          PNG grid per cell + concept-signal table
    conceptspace train [-m] [overrides]      train (rerun the same command to resume); --dry-run validates
    conceptspace train-probe [overrides]     train the learned concept classifier used as a readout
    conceptspace track RUN_DIR               probe every saved snapshot of a run
    conceptspace elicit RUN_DIR              naive vs over-prompting vs latent intervention vs CFG
    conceptspace report RUN_DIR              one self-contained HTML page per run
    conceptspace aggregate SWEEP_DIR         seeds -> conditions -> one verdict per claim of the paper
    conceptspace sample RUN_DIR PROMPT       ask a model for "small blue circle" at any snapshot, by any method
"""

from __future__ import annotations

import importlib
import sys

from . import config as _config  # noqa: F401  (registers the run-dir resolver before Hydra resolves paths)
from .errors import UserError

# verb -> (module, function); hydra verbs are called as fn(cfg, out_dir), path verbs as fn(argv)
HYDRA_VERBS = {
    "render": ("conceptspace.render", "render"),
    "train": ("conceptspace.train", "train"),
    "train-probe": ("conceptspace.readout.train_probe", "train_probe"),
}
DEFAULT_NAMES = {"render": "render", "train-probe": "probe"}
PATH_VERBS = {
    "track": ("conceptspace.tracker.offline", "main"),
    "elicit": ("conceptspace.elicit.command", "main"),
    "report": ("conceptspace.analysis.report", "main"),
    "aggregate": ("conceptspace.analysis.aggregate", "main"),
    "sample": ("conceptspace.sample_command", "main"),
}


def _load(target):
    module, fn = target
    return getattr(importlib.import_module(module), fn)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    verb, rest = argv[0], argv[1:]
    from .devices import configure_threads

    configure_threads()
    try:
        if verb in HYDRA_VERBS:
            return _run_hydra(verb, rest)
        if verb in PATH_VERBS:
            return _load(PATH_VERBS[verb])(rest) or 0
        raise UserError(f"unknown command {verb!r}; allowed: {sorted([*HYDRA_VERBS, *PATH_VERBS])}")
    except UserError as e:
        print(f"conceptspace {verb}: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # argparse's --help (0); a hydra task's one-line error (2, already printed)
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 1


def _run_hydra(verb: str, rest: list[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from .config import compose, config_dir
    from .validate import validate

    if verb in DEFAULT_NAMES and not any(a.startswith("name=") for a in rest):
        rest = [f"name={DEFAULT_NAMES[verb]}", *rest]  # runs/probe/..., runs/render/...: apart from training runs
    overrides = [a for a in rest if not a.startswith("-") and not a.startswith("hydra.")
                 and not a.startswith("hydra/")]
    for a in rest:
        if a.startswith("experiment=sweep/"):
            new = {"color": "col_sweep", "size": "size_sweep", "grid": "grid"}.get(a.split("/", 1)[1], "...")
            print(f"note: experiment=sweep/* is now ddpm/* ({a} -> experiment=ddpm/{new})", file=sys.stderr)
    if "--dry-run" in rest:  # validate every job, write nothing (not even Hydra's output folder)
        from .dryrun import dry_run

        return dry_run(verb, overrides, multirun="-m" in rest or "--multirun" in rest, ensemble=ensemble_members(rest))
    # Check everything before Hydra creates a run dir: bad input writes nothing.
    cfg = compose(overrides)
    validate(verb, cfg)
    if verb == "train" and ("-m" in rest or "--multirun" in rest):
        from pathlib import Path

        from .disk import describe, estimate_cfg
        from .dryrun import expand_jobs

        print(describe(estimate_cfg(cfg), Path("multirun"), jobs=len(expand_jobs(overrides))))
    fn = _load(HYDRA_VERBS[verb])

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
    def task(cfg):
        from pathlib import Path

        try:
            return fn(cfg, Path(HydraConfig.get().runtime.output_dir))
        except UserError as e:
            print(f"conceptspace {verb}: error: {e}", file=sys.stderr)
            sys.exit(2)

    saved = sys.argv
    sys.argv = [f"conceptspace {verb}", *rest]
    try:
        task()
    finally:
        sys.argv = saved
    return 0


def ensemble_members(rest: list[str]) -> int | None:
    """`hydra.launcher.members` (checked as the launcher checks it) when the command picks the ensemble launcher."""
    if "hydra/launcher=ensemble" not in rest:
        return None
    from .launcher import MEMBERS, check_launcher

    raw = next((a.split("=", 1)[1] for a in rest if a.startswith("hydra.launcher.members=")), str(MEMBERS))
    members = int(raw) if raw.lstrip("-").isdigit() else raw
    check_launcher(members, "auto", "local")
    return members


if __name__ == "__main__":
    sys.exit(main())

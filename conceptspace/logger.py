"""Run logging: scalars to `metrics.jsonl` always (nothing depends on W&B), and to W&B when enabled
(offline by default, online when the user has a key). Images are logged as uint8."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .checkpoint import append_text
from .errors import UserError

KINDS = ("wandb", "none")
RUN_ID_FILE = "wandb_run_id.txt"
WANDB_MODES = ("auto", "offline", "online", "disabled")


def check(cfg) -> None:
    if cfg.kind not in KINDS:
        raise UserError(f"logger.kind: got {cfg.kind!r}; allowed: {list(KINDS)}")
    if cfg.kind == "wandb" and cfg.mode not in WANDB_MODES:
        raise UserError(f"logger.mode: got {cfg.mode!r}; allowed: {list(WANDB_MODES)}")


class RunLogger:
    def __init__(self, cfg, run_dir: Path, config: dict, run_id: str | None, name: str):
        check(cfg)
        self.run_dir = Path(run_dir)
        self.metrics = self.run_dir / "metrics.jsonl"
        self.wandb = None
        if cfg.kind == "wandb":
            import wandb

            mode = cfg.mode
            if mode == "auto":
                mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
            mode = os.environ.get("WANDB_MODE", mode)  # the environment wins (tests: disabled)
            self.wandb = wandb.init(project=cfg.project, entity=cfg.entity, group=name, dir=str(self.run_dir),
                                    id=run_id, resume="allow", mode=mode, config=config,
                                    name=self.run_dir.name, reinit="create_new")  # ensembles: K runs at once
            (self.run_dir / RUN_ID_FILE).write_text(self.wandb.id)  # for later verbs (elicit) to log to

    @property
    def run_id(self) -> str | None:
        return self.wandb.id if self.wandb is not None else None

    @property
    def takes_images(self) -> bool:
        return self.wandb is not None

    def log(self, scalars: dict, step: int) -> None:
        append_text(self.metrics, json.dumps({"step": step, **scalars}) + "\n", fault="metrics")
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def log_images(self, images: dict[str, np.ndarray], step: int) -> None:
        """{name: uint8 HxWx3 array}."""
        if self.wandb is not None:
            import wandb

            self.wandb.log({k: wandb.Image(v) for k, v in images.items()}, step=step)

    def log_table(self, name: str, rows: list[dict], step: int) -> None:
        if self.wandb is not None and rows:
            import wandb

            columns = list(rows[0])
            data = [[json.dumps(r[c]) if isinstance(r[c], dict) else r[c] for c in columns] for r in rows]
            self.wandb.log({name: wandb.Table(columns=columns, data=data)}, step=step)

    def finish(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


class NullLogger:
    """What ranks other than 0 log: nothing."""

    run_id = None
    takes_images = False

    def log(self, *args, **kwargs):
        pass

    log_images = log_table = log

    def finish(self):
        pass


def reopen(cfg, run_dir: Path) -> RunLogger | NullLogger:
    """The logger of a finished run, resumed (same W&B run), for verbs that add results to it."""
    from omegaconf import OmegaConf

    path = Path(run_dir) / RUN_ID_FILE
    if cfg.logger.kind != "wandb" or not path.exists():
        return NullLogger()
    return RunLogger(cfg.logger, run_dir, OmegaConf.to_container(cfg, resolve=True), path.read_text().strip(),
                     cfg.name)


def truncate_jsonl(path: Path, last_step: int) -> None:
    """On resume, drop lines written after the checkpoint's step (they will be written again)."""
    from .checkpoint import atomic_write_text

    path = Path(path)
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= last_step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError):
            continue
    atomic_write_text(path, "".join(k + "\n" for k in kept), fault="truncate")

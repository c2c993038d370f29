"""`conceptspace train`: the training story, top to bottom.

build each run's data, model, diffusion process and optimiser (`member.Member`) -> resume from its run dir's
checkpoint if there is one -> loop: batch (a pure function of seed and step) -> loss -> step -> log, snapshot
+ track, checkpoint. Rerunning the same command resumes; every random draw is re-derived from (seed, step),
so a killed and resumed run ends bitwise identical to an uninterrupted one on the CPU.

One run is the common case; several runs whose shapes agree can train together in one process as an
ensemble (`train_ensemble`, `hydra/launcher=ensemble`). Each member keeps its own everything and writes
exactly the run dir it would write alone; `ensemble.py` says how their steps are computed together.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from . import disk, distributed
from .devices import PRECISIONS, precision_note, resolve_device
from .diffusion import check_any as check_diffusion
from .errors import UserError
from .logger import check as check_logger
from .member import Clock, Member, TrainingDiverged

__all__ = ["train", "train_ensemble", "check", "TrainingDiverged"]


def train(cfg, out_dir: Path) -> dict:
    return train_ensemble([cfg], [out_dir])[0]


def train_ensemble(cfgs: list, out_dirs: list[Path], strategy: str = "loop") -> list[dict]:
    """Train runs together, one step of each in turn, each to its own run dir. Returns one summary per run."""
    from .ensemble import check_members, resolve_strategy, stepper

    for cfg in cfgs:
        check(cfg)
    check_members(cfgs, strategy)
    cfg0 = cfgs[0]
    device = distributed.local_device(resolve_device(cfg0.device))
    world = distributed.init(device, cfg0.train.batch_size)  # torchrun: N ranks share each global batch
    if world.size > 1 and len(cfgs) > 1:
        raise UserError(f"hydra/launcher=ensemble: {len(cfgs)} members under torchrun ({world.size} ranks); allowed: "
                        "one run per torchrun job, or an ensemble in one process")
    strategy = resolve_strategy(strategy, device, cfgs)  # an impossible one is one line, before any write
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False

    # ---- build and resume ----------------------------------------------------------------------------
    members = [Member(cfg, Path(d), device, world) for cfg, d in zip(cfgs, out_dirs)]
    if world.is_main and (note := precision_note(cfg0.train.precision, device)):
        print(note)
    for m in members:
        m.resume()
        if m.done:
            print(f"{m.run_dir} is complete ({m.step} steps); nothing to do")
    todo = [m for m in members if not m.done]
    for m in todo:
        m.open()
    step_all = stepper(strategy)

    # ---- loop ----------------------------------------------------------------------------------------
    failed: list[tuple[Member, UserError]] = []
    step = min((m.step for m in todo), default=0)
    end = max((m.tc.steps for m in todo), default=0)
    name = cfg0.name if len(cfgs) == 1 else f"{cfg0.name} (ensemble of {len(cfgs)}, {step_all.name})"
    bar = tqdm(total=end, initial=step, desc=name, unit="step", dynamic_ncols=True, disable=not world.is_main)
    clock = Clock(step)
    try:
        while todo and step < end:
            active = [m for m in todo if m.step == step]  # a member ahead after a kill waits for the others
            step_all(active)
            step += 1
            bar.update(1)
            due = [(m, m.due()) for m in active]
            for m, what in due:
                if not any(what.values()):
                    continue
                try:  # on every rank (the loss is all-reduced, so all ranks stop together); before any write
                    m.check_finite()
                except TrainingDiverged as e:
                    if world.is_main:
                        m.fail(e)
                    m.finish(ok=False)
                    failed.append((m, e))
                    todo.remove(m)
            if not world.is_main:  # only rank 0 logs, snapshots, tracks and checkpoints
                continue
            due = [(m, what) for m, what in due if m in todo]
            logging = [m for m, what in due if what["log"]]
            rate = clock.rate(step) if logging else None
            for m in logging:
                m.log(rate)
                bar.set_postfix(loss=f"{m.last_loss.item():.4f}")
            tracked = [m for m, what in due if what["snapshot"]]
            for m, images in zip(tracked, step_all.probe_images(tracked)):
                m.snapshot(images)
            for m in [m for m, what in due if what["checkpoint"]]:
                m.checkpoint()
            for m in [m for m in todo if m.done]:
                m.finish(ok=True)
                todo.remove(m)
    except UserError as e:  # out of disk: the last good checkpoints are kept
        for m in todo:
            if world.is_main:
                m.fail(e)
        raise
    finally:
        step_all.close()
        bar.close()
        for m in todo:
            m.logger.finish()
    distributed.shutdown(world)
    if failed:
        if len(cfgs) == 1:
            raise failed[0][1]
        names = "; ".join(f"{m.run_dir}: {e}" for m, e in failed)
        raise TrainingDiverged(f"{len(failed)} of {len(cfgs)} ensemble members diverged (the others finished): {names}")
    return [{"step": m.step, "run_dir": str(m.run_dir),
             "loss": m.last_loss.item() if m.last_loss is not None else None} for m in members]


def check(cfg) -> None:
    """Everything about the training config, before anything is written."""
    tc = cfg.train
    for key in ("steps", "batch_size", "checkpoint_every", "log_every"):
        if isinstance(tc[key], bool) or not isinstance(tc[key], int) or tc[key] < 1:
            raise UserError(f"train.{key}: got {tc[key]!r}; allowed: an integer >= 1")
    for key in ("lr", "weight_decay"):
        if isinstance(tc[key], bool) or not isinstance(tc[key], (int, float)) or tc[key] < 0 \
                or (key == "lr" and tc[key] == 0):
            raise UserError(f"train.{key}: got {tc[key]!r}; allowed: a number > 0" + (" or = 0" if key != "lr" else ""))
    if tc.precision not in PRECISIONS:
        raise UserError(f"train.precision: got {tc.precision!r}; allowed: {list(PRECISIONS)}")
    allowed = {"mode": ["default", "reduce-overhead", "max-autotune"], "backend": ["inductor", "aot_eager"]}
    for key, values in allowed.items():
        if tc.compile[key] not in values:
            raise UserError(f"train.compile.{key}: got {tc.compile[key]!r}; allowed: {values}")
    if tc.grad_clip is not None and (not isinstance(tc.grad_clip, (int, float)) or tc.grad_clip <= 0):
        raise UserError(f"train.grad_clip: got {tc.grad_clip!r}; allowed: a number > 0 or null")
    for key in ("cfg_dropout",):
        if not 0 <= tc[key] < 1:
            raise UserError(f"train.{key}: got {tc[key]!r}; allowed: a number in [0, 1)")
    disk.kept_steps(tc)
    check_diffusion(cfg.diffusion)
    check_logger(cfg.logger)
    if cfg.model.preset is None:
        raise UserError("model.preset: missing; allowed: a model config from configs/model")
    from .validate import concept_names

    names = concept_names(cfg.data)
    for name, p in dict(tc.concept_dropout or {}).items():
        if name not in names:
            raise UserError(f"train.concept_dropout: unknown concept {name!r}; allowed: {names}")
        if not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise UserError(f"train.concept_dropout.{name}: got {p!r}; allowed: a number in [0, 1]")
    tk = cfg.tracker
    if tk.weights not in ("raw", "ema") or (tk.weights == "ema" and not tc.ema.enabled):
        raise UserError(f"tracker.weights: got {tk.weights!r}; allowed: ['raw'] or 'ema' with train.ema.enabled=true")
    if isinstance(tk.n_probes, bool) or not isinstance(tk.n_probes, int) or tk.n_probes < 1:
        raise UserError(f"tracker.n_probes: got {tk.n_probes!r}; allowed: an integer >= 1")
    if tk.enabled:
        check_readouts(list(tk.readouts), cfg.data.source, tk.probe_path)


def check_readouts(kinds: list[str], source: str, probe_path) -> None:
    allowed = ("analytic", "learned")
    if not kinds or any(k not in allowed for k in kinds):
        raise UserError(f"tracker.readouts: got {kinds}; allowed: a non-empty list from {list(allowed)}")
    if "analytic" in kinds and source != "shapes":
        raise UserError(f"tracker.readouts: 'analytic' reads synthetic shapes only; data.source={source!r} "
                        "needs ['learned'] with tracker.probe_path")
    if "learned" in kinds and (probe_path is None or not (Path(probe_path) / "config.json").is_file()):
        raise UserError(f"tracker.probe_path: got {probe_path!r}; allowed: a folder written by "
                        "`conceptspace train-probe` (needed by the 'learned' readout)")

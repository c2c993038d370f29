"""One training run's state and its step's work: data, network, diffusion process, optimiser, EMA, outputs.

`train.py` drives one of these (a single run, possibly data-parallel) or several (an ensemble, `ensemble.py`
computes their steps together). Everything a run writes goes through its Member, so a member of an ensemble
writes exactly the run dir the same config writes alone.

The step never waits on the host: whether a loss or gradient norm was non-finite is kept in a device-side
flag, read only where something is about to be logged or saved (`check_finite`), so no non-finite value
reaches a file and the run stops with its last good checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from omegaconf import OmegaConf

from . import checkpoint as ckpt
from . import disk, distributed, provenance
from .concepts import ConceptSpec
from .data import build_source
from .devices import fp32_input, use_bf16
from .diffusion import build_process
from .errors import UserError, first_line
from .logger import NullLogger, RunLogger, truncate_jsonl
from .model import build_model, count_parameters
from .schedule import snapshot_steps_of
from .seeding import derive_seed


class TrainingDiverged(UserError):
    pass


class Member:
    def __init__(self, cfg, run_dir: Path, device: torch.device, world: distributed.World):
        tc = cfg.train
        self.cfg, self.tc, self.run_dir, self.device, self.world = cfg, tc, Path(run_dir), device, world
        self.source = build_source(cfg.data, cfg.seed, device)
        self.spec = self.source.spec
        torch.manual_seed(cfg.seed)  # initial weights
        self.model = build_model(cfg.model, self.spec, self.source.image_size).to(device)
        self.fp32_input = fp32_input(tc.precision, device, cfg.diffusion.name)
        if self.fp32_input:
            self.model.keep_input_conv_fp32()
        self.process = build_process(cfg.diffusion)
        self.learned_schedule = list(self.process.parameters())  # VDM learns its noise schedule with the network
        if self.learned_schedule:
            self.process.to(device)
        self.params = [*self.model.parameters(), *self.learned_schedule]
        # fused on the CPU too (torch >= 2.4): one kernel over all tensors, 1.5 ms a step against 15 ms for the
        # per-tensor loop on the laptop preset's 146 tensors (1 thread), about 8% of its training step
        self.optimizer = torch.optim.AdamW(self.params, lr=tc.lr, weight_decay=tc.weight_decay,
                                           betas=tuple(tc.betas), fused=True)
        self.ema = make_ema(self.model, tc.ema) if tc.ema.enabled else None
        self.snapshots, self.kept = snapshot_steps_of(tc), disk.kept_steps(tc)
        self.autocast = use_bf16(tc.precision, device, cfg.diffusion.name)
        self.step, self.run_id = 0, None
        self.net, self.logger, self.tracker = self.model, NullLogger(), None
        self.last_loss = self.last_norm = None
        # the first non-finite step, its loss and gradient norm (-1: none yet); device tensors, read lazily
        self.bad_step = torch.full((), -1, dtype=torch.long, device=device)
        self.bad_values = torch.zeros(2, device=device)

    @property
    def main(self) -> bool:
        return self.world.is_main

    @property
    def done(self) -> bool:
        return self.step >= self.tc.steps

    # ---- resume ------------------------------------------------------------------------------------------
    def resume(self) -> None:
        """Pick up the run dir's checkpoint if there is one; cut logs past it; write the run's own files."""
        run_dir = self.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        if self.main:
            for p in ckpt.recover(run_dir):  # what a kill inside a write left behind
                print(f"removed the leftover of an interrupted write: {p}")
        state = ckpt.load_checkpoint(run_dir, self.device)
        if state is not None:
            restore(state, self.model, self.process if self.learned_schedule else None, self.optimizer, self.ema,
                    run_dir)
            torch.set_rng_state(state["rng"]["torch"])
            if "cuda" in state["rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
            self.step, self.run_id = state["step"], state["wandb_run_id"]
            if self.main:
                print(f"resuming {run_dir} at step {self.step}/{self.tc.steps}")
        if self.main:  # lines past the checkpoint (all of them, when a kill came before the first) go
            for f in ("metrics.jsonl", "tracker/rows.jsonl"):
                truncate_jsonl(run_dir / f, self.step)
            write_run_files(run_dir, self.cfg, self.spec)
            provenance.record(run_dir, self.device, self.autocast, self.fp32_input)

    def open(self) -> None:
        """Logger, tracker and the network the step calls (DDP-wrapped, compiled), for a run with steps left."""
        cfg, tc = self.cfg, self.tc
        if self.main:
            self.logger = RunLogger(cfg.logger, self.run_dir, OmegaConf.to_container(cfg, resolve=True),
                                    self.run_id, cfg.name)
            if cfg.tracker.enabled:
                self.tracker = build_tracker(cfg, self.spec, self.process, self.run_dir, self.device, self.autocast)
        self.net = distributed.wrap(self.model, self.world, self.device)
        if tc.compile.enabled:  # the training step only; snapshots and checkpoints keep the plain module's names
            self.net = torch.compile(self.net, mode=None if tc.compile.mode == "default" else tc.compile.mode,
                                     backend=tc.compile.backend, dynamic=False)
        if self.main:
            n = count_parameters(self.model)
            print(f"model: {n / 1e6:.2f}M parameters; device {self.device}; bf16 {self.autocast}; "
                  f"ranks {self.world.size}")
            print(disk.describe(disk.estimate(cfg, n, len(self.spec.cells)), self.run_dir))
            ckpt.write_status(self.run_dir, "running", self.step, tc.steps)

    # ---- the step ----------------------------------------------------------------------------------------
    def batch(self):
        """This step's batch, conditioning (after CFG and concept dropout) and loss generator; reseeds dropout."""
        generator = step_generator(self.cfg.seed, self.step, self.device)
        torch.manual_seed(step_seed(self.cfg.seed, self.step, "dropout"))  # dropout draws, reproducible per step
        images, vectors = self.source.train_batch(self.step, self.tc.batch_size)
        return images, drop_concepts(vectors, self.spec, self.tc, generator), generator

    def autocast_context(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.autocast else nullcontext()

    def train_step(self) -> None:
        """One optimiser step on its own: loss, backward, the update."""
        images, vectors, generator = self.batch()
        shard = self.world.shard if self.world.size > 1 else None
        with self.autocast_context():
            loss = self.process.loss(self.net, images, vectors, generator, shard)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.learned_schedule, self.world)  # DDP syncs the network's only
        self.update(distributed.mean(loss, self.world))  # the loss a single process would report

    def update(self, loss: torch.Tensor) -> None:
        """With the gradients in place: clip (this run's own norm), AdamW, EMA, the non-finite flag."""
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.tc.grad_clip or math.inf)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.step(self.model.parameters())
        first = ~(torch.isfinite(loss) & torch.isfinite(norm)) & (self.bad_step < 0)
        self.bad_step = torch.where(first, self.step, self.bad_step)
        self.bad_values = torch.where(first, torch.stack([loss.detach().float(), norm.detach().float()]),
                                      self.bad_values)
        self.last_loss, self.last_norm = loss, norm
        self.step += 1

    def check_finite(self) -> None:
        """Raise at the first non-finite step since the start (one host read): called before anything is saved."""
        bad = int(self.bad_step)
        if bad < 0:
            return
        loss, norm = self.bad_values.tolist()
        what = f"loss is {loss}" if not math.isfinite(loss) else f"gradient norm is {norm} (loss {loss:.4g})"
        raise TrainingDiverged(f"{what} at step {bad}; the last good checkpoint is kept in {self.run_dir} "
                               "(lower train.lr or set train.grad_clip)")

    # ---- outputs -----------------------------------------------------------------------------------------
    def due(self) -> dict:
        """What this step (just taken) writes: log line, snapshot, checkpoint."""
        s, tc = self.step, self.tc
        return {"log": s % tc.log_every == 0 or s == tc.steps, "snapshot": s in self.snapshots,
                "checkpoint": s % tc.checkpoint_every == 0 or s == tc.steps}

    def log(self, steps_per_s: float) -> None:
        self.logger.log({"loss": self.last_loss.item(), "lr": self.tc.lr, "grad_norm": self.last_norm.item(),
                         "steps_per_s": steps_per_s, **self.process.scalars()}, self.step)

    def snapshot(self, images=None) -> None:
        """Save the raw weights (and EMA weights, and a learned noise schedule) when train.snapshots.keep keeps
        this step's, then track the weights the tracker is set to read (`images`: already sampled for it)."""
        step, shadow = self.step, None
        if step in self.kept:
            ckpt.save_snapshot(self.model, self.run_dir, step, extra=self.process.save_state)
            if self.ema is not None:
                shadow = ema_copy(self.model, self.ema)
                ckpt.save_snapshot(shadow, self.run_dir, step, ema=True, extra=self.process.save_state)
        if self.tracker is None:
            return
        from .tracker.track import grid_uint8, held_out_summary

        model = None if images is not None else self.tracked_model(shadow)
        rows, images = self.tracker.track(model, step, images=images)
        self.logger.log(held_out_summary(rows, self.spec), step)
        logged = {"probe_samples": grid_uint8(self.tracker.grid(images))}
        if self.logger.takes_images:
            logged.update(live_figures(self.tracker))
        self.logger.log_images(logged, step)
        if self.cfg.tracker.log_tables:
            self.logger.log_table("tracker_rows", rows, step)

    def tracked_model(self, shadow=None):
        """The weights the tracker reads at a snapshot: raw, or EMA (`tracker.weights`; `shadow`: the EMA
        weights already copied out for this step's snapshot)."""
        if self.ema is not None and self.cfg.tracker.weights == "ema":
            return shadow if shadow is not None else ema_copy(self.model, self.ema)
        return self.model

    def checkpoint(self) -> None:
        ckpt.save_checkpoint(self.run_dir, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "process": self.process.state_dict() if self.learned_schedule else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": rng_states(), "step": self.step, "data_position": self.step * self.tc.batch_size,
            "wandb_run_id": self.logger.run_id,
        })
        ckpt.write_status(self.run_dir, "running", self.step, self.tc.steps)

    def fail(self, error: Exception) -> None:
        try:
            ckpt.write_status(self.run_dir, "failed", self.step, self.tc.steps, str(error))
        except UserError:  # no space even for the status line
            pass

    def finish(self, ok: bool) -> None:
        self.logger.finish()
        if ok and self.main:
            ckpt.write_status(self.run_dir, "done", self.step, self.tc.steps)


class Clock:
    """Steps per second between log lines."""

    def __init__(self, step: int):
        self.tick, self.step = time.perf_counter(), step

    def rate(self, step: int) -> float:
        now = time.perf_counter()
        rate = (step - self.step) / max(now - self.tick, 1e-9)
        self.tick, self.step = now, step
        return rate


def live_figures(tracker) -> dict:
    """The trajectory and accuracy plots of every row so far, as uint8 images for the live dashboard."""
    from .analysis import figures as plots
    from .analysis import run_figures as run_plots
    from .analysis.stats import cell_stats, pick_readout
    from .tracker.rows import read_rows

    stats = cell_stats(read_rows(tracker.rows_path), tracker.spec)
    readout = pick_readout(stats)
    figures = {"concept_space": run_plots.trajectory_figure(stats, tracker.spec, readout=readout),
               "heldout_accuracy": run_plots.accuracy_figure(stats, tracker.spec, readout=readout)}
    out = {}
    for name, fig in figures.items():
        out[name] = plots.figure_to_uint8(fig)
        plots.plt.close(fig)
    return out


def build_tracker(cfg, spec, process, run_dir, device, autocast):
    from .readout import build_readout
    from .tracker.probes import ProbeSet
    from .tracker.track import Tracker

    target = readout_target(cfg, spec)
    readouts = [build_readout(kind, target, cfg.tracker.probe_path, device) for kind in cfg.tracker.readouts]
    probes = ProbeSet.build(spec, cfg.tracker.n_probes, cfg.tracker.seed)
    return Tracker(spec, process, readouts, probes, run_dir, sample_steps=cfg.tracker.sample_steps,
                   batch_size=cfg.tracker.batch_size, autocast=autocast)


def readout_target(cfg, spec: ConceptSpec):
    """What a readout is built from: the generator settings for shapes, the run's ConceptSpec otherwise."""
    if cfg.data.source == "shapes":
        from synthetic_shapes import ShapesConfig

        return ShapesConfig.from_cfg(cfg.data)
    return spec


# ---- small pieces ------------------------------------------------------------------------------------
def rng_states() -> dict:
    """Every global RNG state (each step reseeds anyway; kept so the checkpoint is the whole state)."""
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def step_seed(seed: int, step: int, stream: str) -> int:
    return derive_seed(seed, step, stream)


def step_generator(seed: int, step: int, device) -> torch.Generator:
    return torch.Generator(device).manual_seed(step_seed(seed, step, "loss"))


def drop_concepts(vectors, spec: ConceptSpec, tc, generator) -> torch.Tensor:
    """CFG dropout (whole vector -> null = zeros) and per-concept dropout (that concept's slots -> 0)."""
    if not tc.cfg_dropout and not tc.concept_dropout:
        return vectors
    vectors = vectors.clone()
    n = vectors.shape[0]
    for name, p in dict(tc.concept_dropout or {}).items():
        mask = torch.rand(n, generator=generator, device=generator.device).to(vectors.device) < p
        vectors[mask, spec.slot(name)] = 0.0
    if tc.cfg_dropout:
        mask = torch.rand(n, generator=generator, device=generator.device).to(vectors.device) < tc.cfg_dropout
        vectors[mask] = 0.0
    return vectors


def make_ema(model, ema_cfg):
    from diffusers.training_utils import EMAModel

    from .model import ConceptUNet

    return EMAModel(model.parameters(), decay=ema_cfg.decay, model_cls=ConceptUNet, model_config=model.config)


def ema_copy(model, ema):
    import copy

    shadow = copy.deepcopy(model)
    ema.copy_to(shadow.parameters())
    return shadow


def restore(state: dict, model, process, optimizer, ema, run_dir: Path) -> None:
    """Load a checkpoint's state; one written under another model or optimiser config is one line."""
    try:
        model.load_state_dict(state["model"])
        if process is not None:
            process.load_state_dict(state["process"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise UserError(f"{run_dir / ckpt.CHECKPOINT}: written under a different config ({first_line(e, 160)}); "
                        "pass the run's own settings (its config.yaml), or remove the checkpoint to restart") from None


def write_run_files(run_dir: Path, cfg, spec: ConceptSpec) -> None:
    """The resolved config and the ConceptSpec, next to everything the run writes."""
    ckpt.atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True), fault="run_files")
    ckpt.atomic_write_text(run_dir / "concept_spec.json", json.dumps(spec.to_dict(), indent=1), fault="run_files")

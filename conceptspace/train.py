"""`conceptspace train`: the training story, top to bottom.

build data, model, diffusion process, optimiser -> resume from the run dir's checkpoint if there is one
-> loop: batch (a pure function of seed and step) -> loss -> step -> snapshot + track -> checkpoint.
Rerunning the same command resumes; every random draw is re-derived from (seed, step), so a killed and
resumed run ends bitwise identical to an uninterrupted one on the CPU.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from . import checkpoint as ckpt
from . import disk, distributed, provenance
from .concepts import ConceptSpec
from .data import build_source
from .devices import precision_note, resolve_device, use_bf16
from .diffusion import build_process
from .diffusion import check_any as check_diffusion
from .errors import UserError, first_line
from .logger import NullLogger, RunLogger, truncate_jsonl
from .logger import check as check_logger
from .model import build_model, count_parameters
from .schedule import snapshot_steps_of
from .seeding import derive_seed


class TrainingDiverged(UserError):
    pass


def train(cfg, out_dir: Path) -> dict:
    check(cfg)
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tc = cfg.train
    device = distributed.local_device(resolve_device(cfg.device))
    world = distributed.init(device, tc.batch_size)  # torchrun: N ranks share each global batch
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False

    # ---- build ---------------------------------------------------------------------------------------
    source = build_source(cfg.data, cfg.seed, device)
    spec = source.spec
    torch.manual_seed(cfg.seed)  # initial weights
    model = build_model(cfg.model, spec, source.image_size).to(device)
    process = build_process(cfg.diffusion)
    learned_schedule = list(process.parameters())  # VDM learns its noise schedule with the network
    if learned_schedule:
        process.to(device)
    params = [*model.parameters(), *learned_schedule]
    # fused on the CPU too (torch >= 2.4): one kernel over all tensors, 1.5 ms a step against 15 ms for the
    # per-tensor loop on the laptop preset's 146 tensors (1 thread), about 8% of its training step
    optimizer = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay, betas=tuple(tc.betas), fused=True)
    ema = make_ema(model, tc.ema) if tc.ema.enabled else None
    snapshots = snapshot_steps_of(tc)
    autocast = use_bf16(tc.precision, device, cfg.diffusion.name)
    if world.is_main and (note := precision_note(tc.precision, device)):
        print(note)

    # ---- resume --------------------------------------------------------------------------------------
    if world.is_main:
        for p in ckpt.recover(run_dir):  # what a kill inside a write left behind
            print(f"removed the leftover of an interrupted write: {p}")
    step, run_id = 0, None
    state = ckpt.load_checkpoint(run_dir, device)
    if state is not None:
        restore(state, model, process if learned_schedule else None, optimizer, ema, run_dir)
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        step, run_id = state["step"], state["wandb_run_id"]
        if world.is_main:
            print(f"resuming {run_dir} at step {step}/{tc.steps}")
    if world.is_main:  # lines past the checkpoint (all of them, when a kill came before the first) go
        for f in ("metrics.jsonl", "tracker/rows.jsonl"):
            truncate_jsonl(run_dir / f, step)
    if world.is_main:
        write_run_files(run_dir, cfg, spec)
        provenance.record(run_dir, device, autocast)
    if step >= tc.steps:
        print(f"{run_dir} is complete ({step} steps); nothing to do")
        distributed.shutdown(world)
        return {"step": step, "run_dir": str(run_dir)}
    main = world.is_main  # only rank 0 logs, snapshots, tracks and checkpoints
    logger = RunLogger(cfg.logger, run_dir, OmegaConf.to_container(cfg, resolve=True), run_id, cfg.name) \
        if main else NullLogger()
    tracker = build_tracker(cfg, spec, process, run_dir, device, autocast) if cfg.tracker.enabled and main \
        else None
    net = distributed.wrap(model, world, device)
    if tc.compile.enabled:  # the training step only; snapshots and checkpoints keep the plain module's names
        net = torch.compile(net, mode=None if tc.compile.mode == "default" else tc.compile.mode,
                            backend=tc.compile.backend, dynamic=False)
    shard = world.shard if world.size > 1 else None
    if main:
        print(f"model: {count_parameters(model) / 1e6:.2f}M parameters; device {device}; bf16 {autocast}; "
              f"ranks {world.size}")
        print(disk.describe(disk.estimate(cfg, count_parameters(model), len(spec.cells)), run_dir))
    kept = disk.kept_steps(tc)

    # ---- loop ----------------------------------------------------------------------------------------
    if main:
        ckpt.write_status(run_dir, "running", step, tc.steps)
    bar = tqdm(total=tc.steps, initial=step, desc=cfg.name, unit="step", dynamic_ncols=True, disable=not main)
    tick, tick_step = time.perf_counter(), step
    try:
        while step < tc.steps:
            generator = step_generator(cfg.seed, step, device)
            torch.manual_seed(step_seed(cfg.seed, step, "dropout"))  # dropout draws, reproducible per step
            images, vectors = source.train_batch(step, tc.batch_size)
            vectors = drop_concepts(vectors, spec, tc, generator)
            with torch.autocast(device.type, dtype=torch.bfloat16) if autocast else nullcontext():
                loss = process.loss(net, images, vectors, generator, shard)
            global_loss = distributed.mean(loss, world)  # what a single process would report
            if not torch.isfinite(global_loss):
                raise TrainingDiverged(f"loss is {global_loss.item()} at step {step}; the last good checkpoint is kept "
                                       f"in {run_dir} (lower train.lr or set train.grad_clip)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(learned_schedule, world)  # DDP syncs the network's only
            grad_norm = torch.nn.utils.clip_grad_norm_(params, tc.grad_clip or math.inf)
            optimizer.step()
            if ema is not None:
                ema.step(model.parameters())
            step += 1
            bar.update(1)

            if not main:
                continue
            if step % tc.log_every == 0 or step == tc.steps:
                now = time.perf_counter()
                rate = (step - tick_step) / max(now - tick, 1e-9)
                tick, tick_step = now, step
                logger.log({"loss": global_loss.item(), "lr": tc.lr, "grad_norm": grad_norm.item(),
                            "steps_per_s": rate, **process.scalars()}, step)
                bar.set_postfix(loss=f"{global_loss.item():.4f}")
            if step in snapshots:
                snapshot(model, ema, process, tracker, logger, run_dir, step, cfg, keep_weights=step in kept)
            if step % tc.checkpoint_every == 0 or step == tc.steps:
                ckpt.save_checkpoint(run_dir, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "process": process.state_dict() if learned_schedule else None,
                    "ema": ema.state_dict() if ema is not None else None,
                    "rng": rng_states(), "step": step, "data_position": step * tc.batch_size,
                    "wandb_run_id": logger.run_id,
                })
                ckpt.write_status(run_dir, "running", step, tc.steps)
    except UserError as e:  # diverged, or out of disk: the last good checkpoint is kept
        if main:
            try:
                ckpt.write_status(run_dir, "failed", step, tc.steps, str(e))
            except UserError:  # no space even for the status line
                pass
        raise
    finally:
        bar.close()
        logger.finish()
    if main:
        ckpt.write_status(run_dir, "done", step, tc.steps)
    distributed.shutdown(world)
    return {"step": step, "run_dir": str(run_dir), "loss": global_loss.item()}


def snapshot(model, ema, process, tracker, logger, run_dir, step, cfg, keep_weights: bool = True):
    """Save the raw weights (and EMA weights, and a learned noise schedule) when train.snapshots.keep keeps
    this step's, then track the weights the tracker is set to read."""
    if keep_weights:
        ckpt.save_snapshot(model, run_dir, step, extra=process.save_state)
    tracked = model
    if ema is not None:
        ema_model = ema_copy(model, ema)
        if keep_weights:
            ckpt.save_snapshot(ema_model, run_dir, step, ema=True, extra=process.save_state)
        tracked = ema_model if cfg.tracker.weights == "ema" else model
    if tracker is None:
        return
    from .tracker.track import grid_uint8, held_out_summary

    rows, images = tracker.track(tracked, step)
    logger.log(held_out_summary(rows, tracker.spec), step)
    images = {"probe_samples": grid_uint8(tracker.grid(images))}
    if logger.takes_images:
        images.update(live_figures(tracker))
    logger.log_images(images, step)
    if cfg.tracker.log_tables:
        logger.log_table("tracker_rows", rows, step)


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
    if tc.precision not in ("auto", "fp32", "bf16"):
        raise UserError(f"train.precision: got {tc.precision!r}; allowed: ['auto', 'fp32', 'bf16']")
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

"""The diffusion process (diffusers schedulers): data range, training loss, sampling schedulers.
It knows nothing about concepts; the network knows nothing about diffusion."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler

from .errors import UserError

SAMPLERS = ("ddim", "ddpm")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


class DDPMProcess:
    """DDPM with ε-prediction. Images live in [0, 1] everywhere outside this class; the model sees [-1, 1]."""

    def __init__(self, cfg):
        check(cfg)
        self.cfg = cfg
        self.train_scheduler = DDPMScheduler(
            num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
            beta_start=cfg.beta_start, beta_end=cfg.beta_end, prediction_type="epsilon",
            clip_sample=cfg.clip_sample,
        )

    @staticmethod
    def to_model(images01: torch.Tensor) -> torch.Tensor:
        return images01 * 2 - 1

    @staticmethod
    def from_model(x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) / 2).clamp(0, 1)

    def loss(self, model, images01: torch.Tensor, vectors: torch.Tensor, generator: torch.Generator,
             shard=None) -> torch.Tensor:
        """Mean ε-MSE; timesteps and noise come from `generator` (seeded per step by the driver). They are
        drawn for the whole (global) batch; `shard` (a function tensor -> this rank's slice) then keeps
        this rank's part, so data-parallel ranks together see exactly what one process would."""
        return loss_with_draws(self, model, images01, vectors, generator, shard)

    def draw(self, shape, generator: torch.Generator, device) -> dict:
        """A step's random draws for a batch of `shape`: timesteps and noise."""
        t = torch.randint(0, self.cfg.num_train_timesteps, (shape[0],), generator=generator,
                          device=generator.device).to(device)
        noise = torch.randn(shape, generator=generator, device=generator.device).to(device)
        return {"t": t, "noise": noise}

    def loss_from(self, model, images01, vectors, draws: dict) -> torch.Tensor:
        """The loss given the draws: a pure function of its inputs (torch.func batches it over an ensemble)."""
        x0, t, noise = self.to_model(images01), draws["t"], draws["noise"]
        xt = self.train_scheduler.add_noise(x0, noise, t)
        return F.mse_loss(model(xt, t, vectors).float(), noise)

    def sampling_scheduler(self, steps: int | None = None):
        kind = DDIMScheduler if self.cfg.sampler == "ddim" else DDPMScheduler
        sched = kind.from_config(self.train_scheduler.config)
        sched.set_timesteps(steps or self.cfg.sample_steps)
        return sched

    def timesteps_for_model(self, sched, t, n: int, device) -> torch.Tensor:
        return torch.full((n,), int(t), device=device, dtype=torch.long)

    def scalars(self) -> dict:
        return {}

    def save_state(self, folder) -> None:  # nothing learned: the schedule is fixed
        pass

    def load_state(self, folder) -> None:
        pass

    def parameters(self):
        return iter(())

    def step(self, sched, eps, t, x, generators):
        """One reverse step; DDPM's fresh noise comes from the per-sample generators."""
        if isinstance(sched, DDIMScheduler):
            return sched.step(eps, t, x, eta=0.0).prev_sample
        return sched.step(eps, t, x, generator=generators).prev_sample


def loss_with_draws(process, model, images01, vectors, generator: torch.Generator, shard=None) -> torch.Tensor:
    """Either process's `loss`: the step's draws for the whole (global) batch from `generator`, this rank's
    shard of everything, then the pure `loss_from` (which an ensemble's vmap calls directly)."""
    draws = process.draw(images01.shape, generator, images01.device)
    if shard is not None:
        images01, vectors, draws = shard(images01), shard(vectors), {k: shard(v) for k, v in draws.items()}
    return process.loss_from(model, images01, vectors, draws)


def check(cfg) -> None:
    if cfg.sampler not in SAMPLERS:
        raise UserError(f"diffusion.sampler: got {cfg.sampler!r}; allowed: {list(SAMPLERS)}")
    if cfg.beta_schedule not in BETA_SCHEDULES:
        raise UserError(f"diffusion.beta_schedule: got {cfg.beta_schedule!r}; allowed: {list(BETA_SCHEDULES)}")
    for key in ("num_train_timesteps", "sample_steps"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"diffusion.{key}: got {value!r}; allowed: an integer >= 1")
    if cfg.sample_steps > cfg.num_train_timesteps:
        raise UserError(f"diffusion.sample_steps: got {cfg.sample_steps}; allowed: <= num_train_timesteps "
                        f"({cfg.num_train_timesteps})")


def build_process(cfg):
    if cfg.name == "ddpm":
        return DDPMProcess(cfg)
    if cfg.name == "vdm":
        from .vdm import VDMProcess

        return VDMProcess(cfg)
    raise UserError(f"diffusion.name: got {cfg.name!r}; allowed: ['ddpm', 'vdm']")


def check_any(cfg) -> None:
    """The checks of whichever process the config names."""
    if cfg.name == "vdm":
        from .vdm import check as check_vdm

        return check_vdm(cfg)
    if cfg.name != "ddpm":
        raise UserError(f"diffusion.name: got {cfg.name!r}; allowed: ['ddpm', 'vdm']")
    return check(cfg)

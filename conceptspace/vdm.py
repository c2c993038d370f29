"""The paper's diffusion: a continuous-time variational diffusion model (Kingma et al. 2021) with a learned
linear log-SNR schedule γ(t) = b + |w|·t, initialised from γ_min = −5 to γ_max = 10 with both ends
trainable, ε-prediction, the full VLB in bits/dim (diffusion + latent + reconstruction with data noise
1e-3), and ancestral sampling on a uniform t grid (paper_setup.md §2). Images stay in [0, 1] (the paper
does not rescale). The schedule's two parameters train with the network and are saved with snapshots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from .diffusion import loss_with_draws
from .errors import UserError

STATE_FILE = "vdm_schedule.json"


class VDMSampling:
    """The reverse-time grid: t = 1, 1 − 1/T, ..., 1/T; each step goes from t to s = t − 1/T."""

    def __init__(self, steps: int):
        self.steps = steps
        self.timesteps = [1.0 - i / steps for i in range(steps)]


class VDMProcess(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        check(cfg)
        self.cfg = cfg
        self.gamma_min_cfg, self.gamma_max_cfg = float(cfg.gamma_min), float(cfg.gamma_max)
        self.b = nn.Parameter(torch.tensor(self.gamma_min_cfg))
        self.w = nn.Parameter(torch.tensor(self.gamma_max_cfg - self.gamma_min_cfg))

    # ---- schedule --------------------------------------------------------------------------------------
    def gamma(self, t: torch.Tensor) -> torch.Tensor:
        return self.b + self.w.abs() * t

    def model_timesteps(self, gamma_t: torch.Tensor) -> torch.Tensor:
        """What the network's time embedding sees: γ normalised with the *config* ends, x1000 (as the
        paper's code; the learned ends drift, so this input drifts below 0 as b falls)."""
        return (gamma_t - self.gamma_min_cfg) / (self.gamma_max_cfg - self.gamma_min_cfg) * 1000

    def scalars(self) -> dict:
        with torch.no_grad():
            return {"gamma_0": (self.b).item(), "gamma_1": (self.b + self.w.abs()).item()}

    # ---- data range --------------------------------------------------------------------------------------
    @staticmethod
    def to_model(images01: torch.Tensor) -> torch.Tensor:
        return images01

    @staticmethod
    def from_model(x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0, 1)

    # ---- training ------------------------------------------------------------------------------------------
    def loss(self, model, images01, vectors, generator: torch.Generator, shard=None) -> torch.Tensor:
        """The VLB in bits per dimension, with antithetic time sampling over the (global) batch."""
        return loss_with_draws(self, model, images01, vectors, generator, shard)

    @staticmethod
    def draw(shape, generator: torch.Generator, device) -> dict:
        """A step's random draws for a batch of `shape`: antithetic times, diffusion and reconstruction noise."""
        n, dev = shape[0], generator.device
        u0 = torch.rand((), generator=generator, device=dev)
        t = ((u0 + torch.arange(n, device=dev) / n) % 1.0).to(device)
        eps = torch.randn(shape, generator=generator, device=dev).to(device)
        eps0 = torch.randn(shape, generator=generator, device=dev).to(device)
        return {"t": t, "eps": eps, "eps0": eps0}

    def loss_from(self, model, images01, vectors, draws: dict) -> torch.Tensor:
        """The loss given the draws: a pure function of its inputs and (b, w) (torch.func batches it)."""
        x, t, eps, eps0 = self.to_model(images01), draws["t"], draws["eps"], draws["eps0"]
        dims = x[0].numel()
        g_t = self.gamma(t)
        z_t = _view(torch.sigmoid(-g_t).sqrt()) * x + _view(torch.sigmoid(g_t).sqrt()) * eps
        eps_hat = model(z_t, self.model_timesteps(g_t), vectors).float()
        diffusion = 0.5 * self.w.abs() * ((eps - eps_hat) ** 2).flatten(1).sum(1)
        g_1 = self.gamma(torch.ones((), device=x.device))
        var_1 = torch.sigmoid(g_1)
        latent = 0.5 * (var_1 + torch.sigmoid(-g_1) * x**2 - torch.log(var_1) - 1).flatten(1).sum(1)
        noise_to_signal_0 = torch.exp(self.gamma(torch.zeros((), device=x.device)) / 2)  # σ0/α0
        dn = float(self.cfg.data_noise)
        recon = (0.5 * (noise_to_signal_0 * eps0 / dn) ** 2 + math.log(dn) + 0.5 * math.log(2 * math.pi)
                 ).flatten(1).sum(1)
        return ((diffusion + latent + recon) / (dims * math.log(2))).mean()

    # ---- sampling -------------------------------------------------------------------------------------------
    def sampling_scheduler(self, steps: int | None = None) -> VDMSampling:
        return VDMSampling(steps or self.cfg.sample_steps)

    def timesteps_for_model(self, sched, t, n: int, device) -> torch.Tensor:
        return self.model_timesteps(self.gamma(torch.full((n,), float(t), device=device)))

    @torch.no_grad()
    def step(self, sched: VDMSampling, eps_hat, t, z_t, generators):
        """One ancestral step t -> s = t − 1/T (VDM eq. 34), fresh noise from the per-sample generators."""
        s = float(t) - 1.0 / sched.steps
        g_s = self.gamma(torch.tensor(max(s, 0.0), device=z_t.device))
        g_t = self.gamma(torch.tensor(float(t), device=z_t.device))
        alpha_sq_s, alpha_sq_t = torch.sigmoid(-g_s), torch.sigmoid(-g_t)
        c = -torch.expm1(g_s - g_t)
        mean = (alpha_sq_s / alpha_sq_t).sqrt() * (z_t - torch.sigmoid(g_t).sqrt() * c * eps_hat)
        noise = randn_tensor(z_t.shape, generator=generators, device=torch.device("cpu")).to(z_t.device)
        # σ²_s = sigmoid(γ_s), not 1 − α²_s: the difference loses all precision in fp32 at low γ
        return mean + (torch.sigmoid(g_s) * c).sqrt() * noise

    # ---- snapshots ------------------------------------------------------------------------------------------
    def save_state(self, folder: Path) -> None:
        (Path(folder) / STATE_FILE).write_text(json.dumps({"b": self.b.item(), "w": self.w.item()}))

    def load_state(self, folder: Path) -> None:
        path = Path(folder) / STATE_FILE
        if not path.exists():
            raise UserError(f"snapshot {folder} has no {STATE_FILE}; it was not trained with diffusion=vdm")
        try:
            state = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise UserError(f"snapshot {folder}: {STATE_FILE} does not parse; remove that folder (the run's other "
                            "snapshots stay usable)") from None
        with torch.no_grad():
            self.b.fill_(state["b"])
            self.w.fill_(state["w"])


def _view(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def check(cfg) -> None:
    if not cfg.gamma_min < cfg.gamma_max:
        raise UserError(f"diffusion.gamma_min/gamma_max: got {cfg.gamma_min}/{cfg.gamma_max}; allowed: min < max")
    if not cfg.data_noise > 0:
        raise UserError(f"diffusion.data_noise: got {cfg.data_noise!r}; allowed: a number > 0")
    if isinstance(cfg.sample_steps, bool) or not isinstance(cfg.sample_steps, int) or cfg.sample_steps < 1:
        raise UserError(f"diffusion.sample_steps: got {cfg.sample_steps!r}; allowed: an integer >= 1")

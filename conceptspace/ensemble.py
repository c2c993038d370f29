"""How an ensemble's members take their steps together, and which runs may share an ensemble.

Every member keeps its own state (`member.Member`: data, weights, AdamW, EMA, learned VDM schedule, run dir);
a strategy only decides how their losses and gradients are computed:

- `loop`: one member after the other, each exactly as it trains alone (bitwise the single run).
- `threads`: the members' steps concurrently, one Python thread per core, each kernel on one intra-op
  thread (PyTorch releases the GIL inside kernels). The laptop network runs as fast on one intra-op thread
  as on two, so on the 2-core CPU members two at a time reach 1.2-1.4x the member-steps/s of sequential
  runs, 1.6-2.4x end to end (bench/bench_ensemble.py, K = 2..8). A member is bitwise its single run at one
  intra-op thread. Needs dropout 0 (dropout draws from the one global RNG,
  which concurrent members would race for). `auto` on a CPU: `threads` for K >= 2 members without dropout,
  else `loop`; the probe of 2026-11-24 measured vmap 2.3x slower than a loop there (batched convolutions
  become grouped convolutions).
- `vmap`: the members' parameters stacked (`torch.func.stack_module_state`) and one `vmap(grad_and_value)`
  of diffusers' UNet2DModel through `functional_call` for all of them; then each member clips its own
  gradient norm and steps its own AdamW. Equal to the single runs to fp32 rounding (gradients ~1e-7), not
  bitwise; 0.7-0.95x the sequential runs' loop on the 2-core CPU.
  `auto` picks it on a GPU, where one small model leaves the device mostly idle.

Tracking at a shared snapshot step samples every member's probes in one batched call under `vmap` (the
same per-probe noise seeds as alone), concurrently under `threads`, and member by member under `loop`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import torch
from omegaconf import OmegaConf
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from .errors import UserError
from .seeding import derive_seed

STRATEGIES = ("auto", "loop", "threads", "vmap")
# what must agree for runs to share an ensemble: the network's shapes, the batch, the formulation, the device
SHARED = ("model", "data.image_size", "train.batch_size", "train.precision", "train.compile", "diffusion", "device")


def group_key(cfg) -> str:
    """Runs with equal keys can share an ensemble; seeds, Δ values, lr, steps, ... may differ."""
    return repr([(k, OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v)
                 for k in SHARED for v in [OmegaConf.select(cfg, k)]])


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise UserError(f"hydra.launcher.strategy: got {strategy!r}; allowed: {list(STRATEGIES)}")


def check_members(cfgs: list, strategy: str) -> None:
    check_strategy(strategy)
    keys = {group_key(c) for c in cfgs}
    if len(keys) > 1:
        raise UserError(f"an ensemble's members must agree on {list(SHARED)}; these {len(cfgs)} runs do not "
                        "(the ensemble launcher groups a sweep by them)")


def resolve_strategy(strategy: str, device: torch.device, cfgs: list) -> str:
    dropout = any(float(c.model.get("dropout", 0.0)) > 0 for c in cfgs)
    if strategy == "threads" and (dropout or device.type != "cpu"):
        raise UserError(f"hydra.launcher.strategy: got 'threads' with {'model.dropout > 0' if dropout else device}; "
                        "allowed: 'threads' on a CPU with model.dropout=0, else 'loop' or 'vmap'")
    if strategy == "auto":
        if device.type == "cuda":
            return "vmap"
        return "threads" if len(cfgs) > 1 and not dropout and cpu_cores() > 1 else "loop"
    return strategy


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def stepper(kind: str):
    """The step of a strategy `resolve_strategy` returned."""
    return {"loop": LoopStep, "threads": ThreadStep, "vmap": VmapStep}[kind]()


class LoopStep:
    """Each member's step on its own: the single run's code, member after member."""

    name = "loop"

    def __call__(self, members: list) -> None:
        for m in members:
            m.train_step()

    def probe_images(self, members: list) -> list:
        return [None] * len(members)  # each member's tracker samples its own probes

    def close(self) -> None:
        pass


class ThreadStep(LoopStep):
    """Members' steps and probe sampling concurrently on one-thread kernels, a worker per core."""

    name = "threads"

    def __init__(self):
        self.threads = torch.get_num_threads()
        self.pool = ThreadPoolExecutor(max(1, min(self.threads, cpu_cores())))
        torch.set_num_threads(1)

    def __call__(self, members: list) -> None:
        list(self.pool.map(lambda m: m.train_step(), members))  # list(): re-raise a member's error here

    def probe_images(self, members: list) -> list:
        tracked = [m for m in members if m.tracker is not None]
        images = dict(zip(map(id, tracked), self.pool.map(lambda m: m.tracker.images(m.tracked_model()), tracked)))
        return [images.get(id(m)) for m in members]

    def close(self) -> None:
        self.pool.shutdown()
        torch.set_num_threads(self.threads)


class LossOf(nn.Module):
    """A member's network and diffusion process as one module, so functional_call swaps both at once (the
    VDM's learned schedule is a parameter of the process)."""

    def __init__(self, net: nn.Module, process):
        super().__init__()
        self.net = net
        self.process = process  # a submodule when it learns something (VDM); a plain attribute for DDPM

    def forward(self, images, vectors, draws):
        return self.process.loss_from(self.net, images, vectors, draws)


class VmapStep(LoopStep):
    """All members' losses and gradients in one vmapped call; then each member's own clip and AdamW."""

    name = "vmap"

    def __call__(self, members: list) -> None:
        if len(members) == 1:
            return members[0].train_step()
        pairs = [LossOf(m.model, m.process) for m in members]
        params, buffers = stack_module_state(pairs)  # copies: each member's optimiser owns its own tensors
        batches = [m.batch() for m in members]
        # one global RNG feeds dropout inside vmap (randomness="different"); seeded from every member's
        # (seed, step), so a resumed ensemble draws what the uninterrupted one drew
        torch.manual_seed(derive_seed(*[(m.cfg.seed, m.step) for m in members], "dropout"))
        images = torch.stack([b[0] for b in batches])
        vectors = torch.stack([b[1] for b in batches])
        draws = [m.process.draw(b[0].shape, b[2], b[0].device) for m, b in zip(members, batches)]
        draws = {k: torch.stack([d[k] for d in draws]) for k in draws[0]}
        template = pairs[0]

        def loss(p, b, x, v, d):
            return functional_call(template, (p, b), (x, v, d))

        with members[0].autocast_context():
            grads, losses = vmap(grad_and_value(loss), randomness="different")(params, buffers, images, vectors, draws)
        for i, (m, pair) in enumerate(zip(members, pairs)):
            for name, p in pair.named_parameters():
                p.grad = grads[name][i].to(p.dtype)
            m.update(losses[i].detach())

    def probe_images(self, members: list) -> list:
        if len(members) < 2 or any(m.tracker is None for m in members) \
                or len({len(m.tracker.probes.seeds) for m in members}) > 1:
            return [None] * len(members)
        from .sampling import sample_members

        t0 = members[0].tracker
        return sample_members([m.tracked_model() for m in members], [m.process for m in members],
                              [m.tracker.probes.vectors() for m in members],
                              [m.tracker.probes.seeds for m in members], steps=t0.sample_steps,
                              autocast=t0.autocast)

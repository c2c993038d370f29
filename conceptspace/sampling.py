"""The one sampler. Prompt edits are arguments, not copies of the loop:
    - concept vectors: naive prompts, or over-prompts (vectors pushed past the training range);
    - guidance_scale w: classifier-free guidance against the null concept (the zero vector); w = 1 is the
      plain conditional model (no unconditional pass at all, so it equals naive sampling exactly);
    - intervention: an edit of the network's concept tensors (latent intervention), an object whose
      `attach(model)` context manager hooks the model while sampling (elicit.methods.LatentIntervention).
Each sample has its own noise generator seeded by its probe seed, so sample i is the same at every
snapshot and does not depend on the batch it is drawn in.
"""

from __future__ import annotations

import contextlib

import torch
from diffusers.utils.torch_utils import randn_tensor


@torch.no_grad()
def sample(model, process, vectors: torch.Tensor, seeds: list[int], *, steps: int | None = None,
           guidance_scale: float = 1.0, intervention=None, batch_size: int = 512,
           autocast: bool = False) -> torch.Tensor:
    """Images (N, 3, S, S) float32 in [0, 1] on the CPU for concept vectors (N, dim) and N seeds."""
    if len(seeds) != vectors.shape[0]:
        raise ValueError(f"sample: {len(seeds)} seeds for {vectors.shape[0]} concept vectors")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        with intervention.attach(model) if intervention is not None else contextlib.nullcontext():
            for i in range(0, len(seeds), batch_size):
                out.append(_sample_batch(model, process, vectors[i:i + batch_size].to(device),
                                         seeds[i:i + batch_size], steps, guidance_scale, autocast))
    finally:
        model.train(was_training)
    return torch.cat(out)


def _sample_batch(model, process, vectors, seeds, steps, guidance_scale, autocast):
    device = vectors.device
    size = model.config.sample_size
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]  # CPU: same noise on any device
    x = randn_tensor((len(seeds), 3, size, size), generator=generators, device=torch.device("cpu")).to(device)
    sched = process.sampling_scheduler(steps)
    null = torch.zeros_like(vectors)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        for t in sched.timesteps:
            tt = process.timesteps_for_model(sched, t, x.shape[0], device)
            eps = model(x, tt, vectors).float()
            if guidance_scale != 1.0:
                eps_null = model(x, tt, null).float()
                eps = eps_null + guidance_scale * (eps - eps_null)
            x = process.step(sched, eps, t, x, generators)
    return process.from_model(x.float()).cpu()


@torch.no_grad()
def sample_members(models: list, processes: list, vectors: list, seeds: list, *, steps: int | None = None,
                   autocast: bool = False) -> list[torch.Tensor]:
    """Naive samples of several networks of one architecture in one batched call per reverse step
    (torch.func.vmap over their stacked weights): model k's images equal `sample(models[k], ...)` with the
    same seeds to fp32 rounding. Each model keeps its own process (a VDM's learned schedule)."""
    from torch.func import functional_call, stack_module_state, vmap

    template = models[0]
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        params, buffers = stack_module_state(models)
        device = next(template.parameters()).device
        size = template.config.sample_size
        generators = [[torch.Generator().manual_seed(int(s)) for s in member] for member in seeds]
        x = torch.stack([randn_tensor((len(g), 3, size, size), generator=g, device=torch.device("cpu"))
                         for g in generators]).to(device)
        v = torch.stack([vec.to(device) for vec in vectors])
        scheds = [p.sampling_scheduler(steps) for p in processes]
        network = vmap(lambda p, b, xk, tk, vk: functional_call(template, (p, b), (xk, tk, vk)))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            for i in range(len(scheds[0].timesteps)):
                ts = [s.timesteps[i] for s in scheds]
                tt = torch.stack([p.timesteps_for_model(s, t, x.shape[1], device)
                                  for p, s, t in zip(processes, scheds, ts)])
                eps = network(params, buffers, x, tt, v).float()
                x = torch.stack([p.step(s, eps[k], t, x[k], generators[k])
                                 for k, (p, s, t) in enumerate(zip(processes, scheds, ts))])
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)
    return [p.from_model(xk.float()).cpu() for p, xk in zip(processes, x)]

"""The elicitation methods as (name, setting, sampler arguments) for a target cell. None copies the
sampler: over-prompting changes the prompt vectors, latent intervention passes an embedding hook, CFG a
guidance scale."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..concepts import ConceptError, ConceptSpec
from ..errors import UserError

METHODS = ("naive", "overprompt", "intervention", "cfg")


@dataclass
class Setting:
    method: str
    setting: str
    vectors: torch.Tensor | None = None  # None: the naive prompts
    guidance_scale: float = 1.0
    hook: object = None
    extra: dict = field(default_factory=dict)


def overprompt_vector(spec: ConceptSpec, cell, concepts: list[str], strength: float, anchors: dict) -> torch.Tensor:
    """The target cell's class mean pushed by `strength` away from each concept's anchor: (dim,)."""
    base = spec.encode([cell])[0]
    parts = spec.split(base[None].clone())
    for name in concepts:
        proto = spec.prototype(name)
        anchor = torch.tensor(anchors[name], dtype=torch.float32) if name in anchors else proto.mean(0)
        if anchor.shape != proto[0].shape:
            raise UserError(f"overprompt.anchor.{name}: needs {proto.shape[1]} values, got {anchor.numel()}")
        parts[name][0] = parts[name][0] + strength * (parts[name][0] - anchor)
    return spec.assemble(parts)[0]


def concept_direction(model, spec: ConceptSpec, concept: str, value: int) -> torch.Tensor:
    """The normalised concept-MLP output for an input holding only this concept's class-mean slots."""
    x = torch.zeros(1, spec.dim, device=next(model.parameters()).device)
    x[0, spec.slot(concept)] = spec.prototype(concept)[value].to(x.device)
    with torch.no_grad():
        e = model.concept_embedding(x)[0]
    return e / e.norm().clamp_min(1e-12)


class InterventionHook:
    """e' = e + α (e·â) â, e'' = e' − β (e'·ŝ) ŝ, at timesteps inside t_range (all if None)."""

    def __init__(self, amplify: list[torch.Tensor], suppress: list[torch.Tensor], alpha: float, beta: float,
                 t_range=None):
        self.amplify, self.suppress, self.alpha, self.beta = amplify, suppress, alpha, beta
        self.t_range = t_range

    def __call__(self, e: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.alpha == 0 and self.beta == 0:
            return e  # exactly the naive embedding
        edited = e
        for d in self.amplify:
            edited = edited + self.alpha * (edited @ d)[:, None] * d
        for d in self.suppress:
            edited = edited - self.beta * (edited @ d)[:, None] * d
        if self.t_range is None:
            return edited
        inside = ((t >= self.t_range[0]) & (t <= self.t_range[1]))[:, None]
        return torch.where(inside, edited, e)


def resolve_value(spec: ConceptSpec, concept: str, value: str, cell) -> int:
    own = cell[spec.names.index(concept)]
    if value == "target":
        return own
    if value == "other":
        return 1 - own
    return spec.concept(concept).index(value)


def settings_for(cfg, spec: ConceptSpec, cell, model, trained_with_cfg: bool, n_probes: int) -> list[Setting]:
    """Every (method, setting) of the grids for one target cell, in a stable order."""
    out = []
    methods = list(cfg.methods)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise UserError(f"elicit.methods: unknown {bad}; allowed: {list(METHODS)}")
    if "naive" in methods:
        out.append(Setting("naive", ""))
    if "overprompt" in methods:
        for name in cfg.overprompt.concepts:
            spec.concept(name)
        anchors = {k: list(v) for k, v in dict(cfg.overprompt.anchor or {}).items()}
        for s in cfg.overprompt.strengths:
            v = overprompt_vector(spec, cell, list(cfg.overprompt.concepts), float(s), anchors)
            try:
                spec.check_bounds(v[None], what=f"overprompt strength {s}")
            except ConceptError as e:
                if cfg.out_of_range == "skip":
                    print(f"skipping: {e}")
                    continue
                raise UserError(f"{e} (set elicit out_of_range=skip to skip such settings)") from None
            out.append(Setting("overprompt", f"strength={s:g}", vectors=v[None].repeat(n_probes, 1)))
    if "intervention" in methods:
        iv = cfg.intervention
        amplify = [concept_direction(model, spec, c, resolve_value(spec, c, v, cell))
                   for c, v in dict(iv.amplify).items()]
        suppress = [concept_direction(model, spec, c, resolve_value(spec, c, v, cell))
                    for c, v in dict(iv.suppress).items()]
        t_range = tuple(iv.t_range) if iv.t_range is not None else None
        for a in iv.alphas:
            for b in iv.betas:
                out.append(Setting("intervention", f"alpha={a:g},beta={b:g}",
                                   hook=InterventionHook(amplify, suppress, float(a), float(b), t_range)))
    if "cfg" in methods and trained_with_cfg:  # else skipped: no null concept was trained (the caller says so)
        for w in cfg.cfg.scales:
            out.append(Setting("cfg", f"w={w:g}", guidance_scale=float(w)))
    return out

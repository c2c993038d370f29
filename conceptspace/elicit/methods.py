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
    x = prototype_input(spec, concept, value, next(model.parameters()).device)
    with torch.no_grad():
        return _unit(model.concept_embedding(x[None])[0])


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


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-12)


class BlockIntervention:
    """The same edit in every resnet block: on a per-block model (the paper's sep_mlp) the output of each
    block's concept MLP, exactly the paper's site; on a shared-embedding model each block's projection of
    the embedding (`time_emb_proj`, the channel bias it adds). Directions: each block's response to the
    prototypical concept inputs.
    Used by the sampler as an embedding hook (to learn the timestep) plus forward hooks it attaches."""

    def __init__(self, model, amplify_inputs: list[torch.Tensor], suppress_inputs: list[torch.Tensor],
                 alpha: float, beta: float, t_range=None):
        self.alpha, self.beta, self.t_range, self._t = alpha, beta, t_range, None
        if getattr(model, "per_block", False):  # the paper's sep_mlp: edit each block's own concept MLP output
            self.blocks = list(model.block_mlps)

            def project(block, x):
                return block(x[None])[0]
        else:  # shared embedding: edit each block's projection of it
            self.blocks = [m for name, m in model.unet.named_modules() if name.endswith("time_emb_proj")]

            def project(block, x):  # diffusers' resnets project silu(temb)
                return block(torch.nn.functional.silu(model.concept_embedding(x[None])))[0]
        with torch.no_grad():
            def directions(inputs):
                return [[_unit(project(b, x)) for b in self.blocks] for x in inputs]
            self.amplify, self.suppress = directions(amplify_inputs), directions(suppress_inputs)

    def __call__(self, e: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self._t = t  # remembered for the block hooks; the embedding itself is untouched
        return e

    def attach(self, model):
        import contextlib

        @contextlib.contextmanager
        def attached():
            handles = [b.register_forward_hook(self._edit(i)) for i, b in enumerate(self.blocks)]
            try:
                yield
            finally:
                for h in handles:
                    h.remove()
        return attached()

    def _edit(self, i: int):
        def hook(module, inputs, p):
            if self.alpha == 0 and self.beta == 0:
                return p
            edited = p
            for d in self.amplify:
                edited = edited + self.alpha * (edited @ d[i])[:, None] * d[i]
            for d in self.suppress:
                edited = edited - self.beta * (edited @ d[i])[:, None] * d[i]
            if self.t_range is None or self._t is None:
                return edited
            inside = ((self._t >= self.t_range[0]) & (self._t <= self.t_range[1]))[:, None]
            return torch.where(inside, edited, p)
        return hook


def prototype_input(spec: ConceptSpec, concept: str, value: int, device) -> torch.Tensor:
    """A concept vector holding only this concept's class-mean slots (the paper's prototypical input)."""
    x = torch.zeros(spec.dim, device=device)
    x[spec.slot(concept)] = spec.prototype(concept)[value].to(device)
    return x


def resolve_value(spec: ConceptSpec, concept: str, value: str, cell) -> int:
    own = cell[spec.names.index(concept)]
    if value == "target":
        return own
    if value == "other":
        return 1 - own
    return spec.concept(concept).index(value)


SITES = ("embedding", "blocks")


def intervention_settings(iv, spec: ConceptSpec, cell, model) -> list[Setting]:
    if iv.site not in SITES:
        raise UserError(f"intervention.site: got {iv.site!r}; allowed: {list(SITES)}")
    device = next(model.parameters()).device
    pick = {"amplify": dict(iv.amplify), "suppress": dict(iv.suppress)}
    values = {k: [(c, resolve_value(spec, c, v, cell)) for c, v in d.items()] for k, d in pick.items()}
    t_range = tuple(iv.t_range) if iv.t_range is not None else None
    out = []
    for a in iv.alphas:
        for b in iv.betas:
            if iv.site == "embedding":
                hook = InterventionHook([concept_direction(model, spec, c, v) for c, v in values["amplify"]],
                                        [concept_direction(model, spec, c, v) for c, v in values["suppress"]],
                                        float(a), float(b), t_range)
            else:
                hook = BlockIntervention(model, [prototype_input(spec, c, v, device) for c, v in values["amplify"]],
                                         [prototype_input(spec, c, v, device) for c, v in values["suppress"]],
                                         float(a), float(b), t_range)
            out.append(Setting("intervention", f"alpha={a:g},beta={b:g}", hook=hook))
    return out


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
        out += intervention_settings(cfg.intervention, spec, cell, model)
    if "cfg" in methods and trained_with_cfg:  # else skipped: no null concept was trained (the caller says so)
        for w in cfg.cfg.scales:
            out.append(Setting("cfg", f"w={w:g}", guidance_scale=float(w)))
    return out

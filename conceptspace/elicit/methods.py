"""The elicitation methods as settings (method, setting name, what the sampler gets) for a target cell. None
copies the sampler: over-prompting changes the prompt vector, latent intervention passes an intervention
that hooks the network, CFG a guidance scale, the null control only fresh noise seeds.

    naive         the target cell's class-mean prompt on the tracker's probe seeds
    null          K settings that are all the naive prompt, each on its own fresh probe seeds: what a
                  max over K settings gains by chance (the control for over-prompting's K prompts)
    overprompt    prompt vectors pushed toward and past the target's class mean (paper_setup.md §5.3)
    intervention  e' = e + α (e·â) â, e'' = e' − β (e'·ŝ) ŝ on the network's concept tensors (§5.4)
    cfg           classifier-free guidance (needs a model trained with train.cfg_dropout)
Every method but null uses the naive seeds, so methods are compared on the same noise.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from omegaconf import OmegaConf

from ..concepts import ConceptError, ConceptSpec
from ..errors import UserError
from ..model import SITES
from ..tracker.probes import CELL_STRIDE, ProbeSet

METHODS = ("naive", "null", "overprompt", "intervention", "cfg")
GRIDS = ("absolute", "relative")
OUT_OF_RANGE = ("skip", "error")


@dataclass
class Setting:
    method: str
    setting: str  # its name in the rows, e.g. "offset=0.25"
    vector: torch.Tensor | None = None  # (dim,) every probe's prompt; None: each probe's class mean (naive)
    guidance_scale: float = 1.0
    intervention: LatentIntervention | None = None
    stream: int = 0  # probe seed stream (tracker.probes): 0 = the tracker's seeds, k > 0 fresh ones

    def prompts(self, probes: ProbeSet) -> torch.Tensor:
        """(N, dim) prompt vectors for these probes."""
        if self.vector is None:
            return probes.vectors()
        return self.vector[None].repeat(len(probes.probes), 1)


# ---- config checks: one line naming the field and the allowed values ------------------------------------
def check_config(cfg) -> None:
    bad = [m for m in cfg.methods if m not in METHODS]
    if bad:
        raise UserError(f"elicit.methods: unknown {bad}; allowed: {list(METHODS)}")
    _check_int("elicit.n_probes", cfg.n_probes, 1, CELL_STRIDE)
    _check_int("elicit.null.settings", cfg.null.settings, 1, CELL_STRIDE)
    for key, value, allowed in (("out_of_range", cfg.out_of_range, OUT_OF_RANGE),
                                ("overprompt.grid", cfg.overprompt.grid, GRIDS),
                                ("intervention.site", cfg.intervention.site, SITES)):
        if value not in allowed:
            raise UserError(f"elicit.{key}: got {value!r}; allowed: {list(allowed)}")
    for key in ("overprompt.offsets", "overprompt.strengths", "intervention.alphas", "intervention.betas",
                "cfg.scales"):
        values = OmegaConf.select(cfg, key)
        if not OmegaConf.is_list(values) or not values or not all(_is_number(v) for v in values):
            raise UserError(f"elicit.{key}: got {values!r}; allowed: a non-empty list of numbers")
    t_range = cfg.intervention.t_range
    if t_range is not None and (len(t_range) != 2 or not all(_is_number(v) for v in t_range)
                                or not t_range[0] <= t_range[1]):
        raise UserError(f"elicit.intervention.t_range: got {list(t_range)}; allowed: null or [t_lo, t_hi], "
                        "t_lo <= t_hi")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_int(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UserError(f"{name}: got {value!r}; allowed: an integer in [{lo}, {hi}]")


def _concept_names(spec: ConceptSpec, names, field: str) -> list[str]:
    try:
        return [spec.concept(n).name for n in (names or [])]
    except ConceptError as e:
        raise UserError(f"elicit.{field}: {e}") from None


def _slots(spec: ConceptSpec, concept: str, values, field: str) -> torch.Tensor:
    width = spec.concept(concept).width
    if values is None or len(values) != width:
        raise UserError(f"elicit.{field}: needs {width} number(s) for concept '{concept}', got "
                        f"{None if values is None else list(values)}")
    return torch.tensor([float(v) for v in values])


def _per_value(spec: ConceptSpec, table, field: str) -> dict[tuple[str, int], torch.Tensor]:
    """{concept: {value name: slots}} -> {(concept, value index): slots}, every name checked."""
    out = {}
    for concept, by_value in dict(table or {}).items():
        _concept_names(spec, [concept], field)
        for value, slots in dict(by_value or {}).items():
            try:
                index = spec.concept(concept).index(value)
            except ConceptError as e:
                raise UserError(f"elicit.{field}.{concept}: {e}") from None
            out[concept, index] = _slots(spec, concept, slots, f"{field}.{concept}.{value}")
    return out


# ---- over-prompting ---------------------------------------------------------------------------------------
def overprompt_vector(spec: ConceptSpec, cell, grid: str, amount: float, concepts: list[str],
                      anchors: dict[str, torch.Tensor], fixed: dict[tuple[str, int], torch.Tensor]
                      ) -> torch.Tensor:
    """One over-prompt of `cell`, (dim,). On each pushed concept, with p its class mean and a its anchor:
        absolute  a + amount * u, u = (p - a) / max|p - a|  (the paper's grid: blue with a grey anchor gives
                  (0.5 - k, 0.5 - k, 0.5 + k) at any Δcolor)
        relative  p + amount * (p - a)                     (always beyond the class mean)
    then `fixed` slots where the cell has that value (the paper's size 0.3 for small); the rest: class mean."""
    cell = spec.cell(cell)
    parts = {name: part.clone() for name, part in spec.split(spec.encode([cell])).items()}
    for name in concepts:
        mean, anchor = parts[name][0], anchors[name]
        if grid == "absolute":
            scale = (mean - anchor).abs().max()
            if scale == 0:
                raise UserError(f"elicit.overprompt.anchor.{name}: equals the target's class mean, so it gives "
                                "no direction to push; allowed: any other point")
            parts[name][0] = anchor + amount * (mean - anchor) / scale
        else:
            parts[name][0] = mean + amount * (mean - anchor)
    for (name, value), slots in fixed.items():
        if cell[spec.names.index(name)] == value:
            parts[name][0] = slots
    return spec.assemble(parts)[0]


def overprompt_settings(cfg, spec: ConceptSpec, cell) -> list[Setting]:
    op = cfg.overprompt
    concepts = _concept_names(spec, op.concepts, "overprompt.concepts")
    given = {}
    for name, slots in dict(op.anchor or {}).items():
        _concept_names(spec, [name], "overprompt.anchor")
        given[name] = _slots(spec, name, slots, f"overprompt.anchor.{name}")
    anchors = {name: given.get(name, spec.prototype(name).mean(0)) for name in concepts}  # default: midpoint
    fixed = _per_value(spec, op.fixed, "overprompt.fixed")
    clash = sorted({name for name, _ in fixed} & set(concepts))
    if clash:
        raise UserError(f"elicit.overprompt.fixed: {clash} are also in overprompt.concepts; a concept is either "
                        "pushed or fixed")
    amounts, label = (op.offsets, "offset") if op.grid == "absolute" else (op.strengths, "strength")
    out = []
    for amount in amounts:
        name = f"{label}={float(amount):g}"
        v = overprompt_vector(spec, cell, op.grid, float(amount), concepts, anchors, fixed)
        try:
            spec.check_bounds(v[None], what=f"overprompt {name}")
        except ConceptError as e:
            if cfg.out_of_range == "skip":
                print(f"elicit: skipping {e}")
                continue
            raise UserError(f"elicit: {e} (out_of_range=skip skips such settings)") from None
        out.append(Setting("overprompt", name, vector=v))
    return out


# ---- latent intervention ----------------------------------------------------------------------------------
def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _along(e: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    return (e * d).sum(-1, keepdim=True) * d


class LatentIntervention:
    """e' = e + α (e·â) â for each amplify direction, then e'' = e' − β (e'·ŝ) ŝ for each suppress
    direction, on every site tensor e of the model (`model.intervention_sites(site)`), at the timesteps
    inside t_range (all if None). â, ŝ: unit responses of the same site, at the same timestep, to the
    prototypical inputs, so a direction lives in the space of the tensor it edits. `attach(model)` hooks the
    model while the sampler runs (it holds no model: one setting serves every snapshot)."""

    def __init__(self, amplify: list[torch.Tensor], suppress: list[torch.Tensor], alpha: float, beta: float,
                 site: str = "auto", t_range=None):
        self.amplify, self.suppress, self.alpha, self.beta = amplify, suppress, alpha, beta
        self.site, self.t_range = site, t_range

    def edit(self, e: torch.Tensor, t: torch.Tensor, amplify: list[torch.Tensor], suppress: list[torch.Tensor]
             ) -> torch.Tensor:
        """The edit of site outputs e (B, C) at timesteps t (B,) along unit directions (1 or B, C)."""
        edited = e
        for d in amplify:
            edited = edited + self.alpha * _along(edited, d)
        for d in suppress:
            edited = edited - self.beta * _along(edited, d)
        if self.t_range is None:
            return edited
        t = t.reshape(-1).expand(e.shape[0])
        inside = ((t >= self.t_range[0]) & (t <= self.t_range[1])).reshape(-1, *[1] * (e.dim() - 1))
        return torch.where(inside, edited, e)

    @contextlib.contextmanager
    def attach(self, model):
        sites = model.intervention_sites(self.site)
        device = next(model.parameters()).device
        amplify = [x.to(device)[None] for x in self.amplify]
        suppress = [x.to(device)[None] for x in self.suppress]
        state = {"t": None, "measuring": False}

        def remember_t(module, args, kwargs):  # the network is called as model(x, t, concepts)
            state["t"] = args[1] if len(args) > 1 else kwargs["t"]

        def edit_site(response):
            def hook(module, inputs, e):
                if state["measuring"]:  # the response to a prototype is being measured: leave it as it is
                    return None
                state["measuring"] = True
                try:
                    a = [_unit(response(x, state["t"])) for x in amplify]
                    s = [_unit(response(x, state["t"])) for x in suppress]
                finally:
                    state["measuring"] = False
                return self.edit(e, state["t"], a, s)
            return hook

        handles = [model.register_forward_pre_hook(remember_t, with_kwargs=True)]
        handles += [module.register_forward_hook(edit_site(response)) for module, response in sites]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


def prototype_input(spec: ConceptSpec, concept: str, value: int, inputs: dict) -> torch.Tensor:
    """The paper's prototypical input, (dim,): zeros except this concept's slots, which hold the configured
    input for this value (`intervention.inputs`), else the value's class mean."""
    parts = {name: torch.zeros(1, spec.concept(name).width) for name in spec.names}
    parts[concept][0] = inputs.get((concept, value), spec.prototype(concept)[value])
    return spec.assemble(parts)[0]


def intervention_settings(cfg, spec: ConceptSpec, cell) -> list[Setting]:
    iv = cfg.intervention
    own = dict(zip(spec.names, spec.cell(cell)))
    inputs = _per_value(spec, iv.inputs, "intervention.inputs")
    amplify = [prototype_input(spec, c, own[c], inputs)  # the value the target has
               for c in _concept_names(spec, iv.amplify, "intervention.amplify")]
    suppress = [prototype_input(spec, c, 1 - own[c], inputs)  # the value the target does not have
                for c in _concept_names(spec, iv.suppress, "intervention.suppress")]
    t_range = None if iv.t_range is None else (float(iv.t_range[0]), float(iv.t_range[1]))
    return [Setting("intervention", f"alpha={float(a):g},beta={float(b):g}",
                    intervention=LatentIntervention(amplify, suppress, float(a), float(b), iv.site, t_range))
            for a in iv.alphas for b in iv.betas]


def check_sites(cfg, model) -> None:
    """Fail before any sampling when the model has no such intervention site."""
    if "intervention" in cfg.methods:
        model.intervention_sites(cfg.intervention.site)


# ---- all of them ------------------------------------------------------------------------------------------
def settings_for(cfg, spec: ConceptSpec, cell, trained_with_cfg: bool) -> list[Setting]:
    """Every (method, setting) of the grids for one target cell, methods in the config's order."""
    check_config(cfg)
    out = []
    for method in cfg.methods:
        if method == "naive":
            out.append(Setting("naive", ""))
        elif method == "null":  # stream k: the k-th fresh seed set, disjoint from the tracker's and each other
            out += [Setting("null", f"k={k}", stream=k) for k in range(1, cfg.null.settings + 1)]
        elif method == "overprompt":
            out += overprompt_settings(cfg, spec, cell)
        elif method == "intervention":
            out += intervention_settings(cfg, spec, cell)
        elif trained_with_cfg:  # cfg; else skipped: no null concept was trained (the caller says so)
            out += [Setting("cfg", f"w={float(w):g}", guidance_scale=float(w)) for w in cfg.cfg.scales]
    return out

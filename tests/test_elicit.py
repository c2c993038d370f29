"""Elicitation: the paper's over-prompt grid and latent intervention, the null control, the probe count, and
the `elicit` verb on tiny runs (shared and per-block models, weak to strong colour signal)."""

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conceptspace.elicit.command import load_elicit_config
from conceptspace.elicit.methods import LatentIntervention, check_sites, prototype_input, settings_for
from conceptspace.errors import UserError
from conceptspace.sampling import sample
from conceptspace.tracker.probes import ProbeSet
from conceptspace.tracker.rows import read_rows
from conceptspace.train import train
from synthetic_shapes import ShapesConfig, ShapesWorld
from tests.helpers import fast_cfg
from tests.test_train import tiny_model

SPEC = ShapesConfig(sep_col=0.2).spec
BLUE_SMALL = (1, 1)
PAPER_COLOURS = [(0.4, 0.4, 0.6), (0.35, 0.35, 0.65), (0.25, 0.25, 0.75), (0.15, 0.15, 0.85), (0.05, 0.05, 0.95)]
OFFSETS = ["offset=0.1", "offset=0.15", "offset=0.25", "offset=0.35", "offset=0.45"]


def grid(**overrides):
    return load_elicit_config([f"{k}={v}" for k, v in overrides.items()])


def of(settings, method):
    return [s for s in settings if s.method == method]


def perturbed(model):
    """Zero-initialised diffusers convs make an untrained UNet ignore its conditioning: perturb every weight."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def per_block_model():
    from conceptspace.model import build_model

    torch.manual_seed(0)
    return perturbed(build_model(fast_cfg("model.concept_conditioning=per_block").model, SPEC, 16))


def vector(spec, **slots):
    """A concept vector from its per-concept slots (missing concepts: zeros), through the spec's layout."""
    return spec.assemble({n: torch.tensor([slots.get(n, [0.0] * spec.concept(n).width)]) for n in spec.names})[0]


# ---- over-prompting -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sep_col", [0.1, 0.4, 0.8])
def test_default_overprompt_grid_is_the_papers_five_prompts(sep_col, capsys):
    spec = ShapesConfig(sep_col=sep_col).spec
    prompts = of(settings_for(grid(), spec, BLUE_SMALL, False), "overprompt")
    assert [s.setting for s in prompts] == OFFSETS
    for s, rgb in zip(prompts, PAPER_COLOURS):
        assert torch.allclose(s.vector, vector(spec, color=list(rgb), size=[0.3]), atol=1e-6), s.setting
    assert capsys.readouterr().out == ""  # all five inside [0, 1] at any Δcolor: nothing skipped


def test_overprompt_generalises_through_the_spec():
    spec = ShapesConfig(sep_col=0.4).spec
    red_large = of(settings_for(grid(), spec, (0, 0), False), "overprompt")
    for s, k in zip(red_large, (0.1, 0.15, 0.25, 0.35, 0.45)):  # pushed toward red; size not small: class mean
        assert torch.allclose(s.vector, vector(spec, color=[0.5 + k, 0.5 - k, 0.5 - k], size=[0.65]), atol=1e-6)
    relative = of(settings_for(grid(**{"overprompt.grid": "relative", "overprompt.strengths": "[0.5,1]"}), spec,
                               BLUE_SMALL, False), "overprompt")
    assert [s.setting for s in relative] == ["strength=0.5", "strength=1"]  # p + s (p - anchor), blue p = .3,.3,.7
    assert torch.allclose(relative[1].vector, vector(spec, color=[0.1, 0.1, 0.9], size=[0.3]), atol=1e-6)
    unfixed = of(settings_for(grid(**{"overprompt.fixed": "null"}), spec, BLUE_SMALL, False), "overprompt")
    assert torch.allclose(unfixed[0].vector, vector(spec, color=[0.4, 0.4, 0.6], size=[0.25]), atol=1e-6)
    cube = ShapesConfig(concepts=("color", "size", "bg"), held_out=(("blue", "small", "dark"),), sep_col=0.4).spec
    (first, *_) = of(settings_for(grid(), cube, (1, 1, 1), False), "overprompt")
    assert torch.allclose(first.vector, vector(cube, color=[0.4, 0.4, 0.6], size=[0.3], bg=[0.3] * 3), atol=1e-6)


def test_overprompts_leaving_the_valid_range_are_skipped_with_one_line_each(capsys):
    spec = ShapesConfig(sep_col=0.8).spec  # blue class mean (0.1, 0.1, 0.9): relative pushes leave [0, 1]
    cfg = {"overprompt.grid": "relative", "overprompt.strengths": "[0.1,0.5,1]"}
    kept = of(settings_for(grid(**cfg), spec, BLUE_SMALL, False), "overprompt")
    assert [s.setting for s in kept] == ["strength=0.1"]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("concept 'color' leaves its valid range [0.0, 1.0]" in line for line in lines)
    assert "overprompt strength=0.5" in lines[0] and "overprompt strength=1" in lines[1]
    with pytest.raises(UserError, match="overprompt strength=0.5: concept 'color' leaves its valid range"):
        settings_for(grid(**cfg, out_of_range="error"), spec, BLUE_SMALL, False)


@pytest.mark.parametrize("overrides, message", [
    ({"overprompt.concepts": "[colour]"}, "elicit.overprompt.concepts: unknown concept 'colour'"),
    ({"overprompt.fixed.size.tiny": "[0.3]"}, r"elicit.overprompt.fixed.size: .*unknown value 'tiny'; allowed"),
    ({"overprompt.fixed.size.small": "[0.3,0.2]"}, "elicit.overprompt.fixed.size.small: needs 1 number"),
    ({"overprompt.fixed.color.blue": "[0,0,1]"}, r"elicit.overprompt.fixed: \['color'\] are also in"),
    ({"overprompt.anchor.color": "[0.4,0.4,0.6]"}, "elicit.overprompt.anchor.color: equals the target's"),
    ({"intervention.amplify": "[hue]"}, "elicit.intervention.amplify: unknown concept 'hue'"),
    ({"intervention.inputs.size.large": "[0.6,1]"}, "elicit.intervention.inputs.size.large: needs 1 number"),
])
def test_bad_elicitation_settings_name_the_field(overrides, message):
    with pytest.raises(UserError, match=message):
        settings_for(grid(**overrides), SPEC, BLUE_SMALL, False)


@pytest.mark.parametrize("override, message", [
    ("methods=[naive,telepathy]", r"elicit.methods: unknown \['telepathy'\]; allowed"),
    ("overprompt.strenghts=[1]", "elicit: unknown or bad setting"),
    ("n_probes=0", r"elicit.n_probes: got 0; allowed: an integer in \[1, 1000000\]"),
    ("null.settings=0", "elicit.null.settings: got 0"),
    ("overprompt.grid=paper", r"elicit.overprompt.grid: got 'paper'; allowed: \['absolute', 'relative'\]"),
    ("intervention.site=mid", r"elicit.intervention.site: got 'mid'; allowed: \['auto', 'embedding', 'blocks'\]"),
    ("out_of_range=clip", r"elicit.out_of_range: got 'clip'; allowed: \['skip', 'error'\]"),
    ("intervention.t_range=[9,1]", "elicit.intervention.t_range: got"),
    ("intervention.alphas=[x]", r"elicit.intervention.alphas: got \['x'\]; allowed: a non-empty list of numbers"),
    ("overprompt.offsets=0.25", "elicit.overprompt.offsets: got 0.25; allowed: a non-empty list"),
    ("overprompt.strengths=[1]", "elicit.overprompt.strengths: not used by overprompt.grid=absolute; set "
                                 "overprompt.offsets, or overprompt.grid=relative"),
])
def test_bad_elicit_config_is_one_line(override, message):
    with pytest.raises(UserError, match=message):
        load_elicit_config([override])


def test_a_bare_null_in_the_method_list_is_the_null_control():
    assert load_elicit_config(["methods=[naive,null]"]).methods == ["naive", "null"]


# ---- null control -------------------------------------------------------------------------------------------
def test_null_control_is_the_naive_prompt_on_fresh_seeds_per_setting():
    settings = settings_for(grid(), SPEC, BLUE_SMALL, False)
    assert [s.method for s in settings][:7] == ["naive"] + ["null"] * 5 + ["overprompt"]
    null = of(settings, "null")
    assert [s.setting for s in null] == ["k=1", "k=2", "k=3", "k=4", "k=5"]
    naive = ProbeSet.build(SPEC, 4, 100, cells=[BLUE_SMALL])
    seed_sets = [set(naive.seeds)]
    for s in null:
        probes = ProbeSet.build(SPEC, 4, 100, cells=[BLUE_SMALL], stream=s.stream)
        assert torch.equal(s.prompts(probes), naive.vectors()) and s.intervention is None and s.guidance_scale == 1
        seed_sets.append(set(probes.seeds))
    assert len(set().union(*seed_sets)) == 6 * 4  # disjoint from the tracker's seeds and from each other
    assert len(of(settings_for(grid(**{"null.settings": 2}), SPEC, BLUE_SMALL, False), "null")) == 2


# ---- latent intervention --------------------------------------------------------------------------------------
def test_intervention_edit_is_the_papers_formula_and_only_inside_t_range():
    e = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    a, s = torch.tensor([[1.0, 1.0, 0.0]]) / 2 ** 0.5, torch.tensor([[0.0, 0.0, 1.0]])
    t = torch.tensor([15, 30])
    # e' = e + 2 (e·â) â = (1,2,3) + (3,3,0) = (4,5,3); e'' = e' − 0.1 (e'·ŝ) ŝ = (4,5,2.7)
    full = LatentIntervention([], [], alpha=2.0, beta=0.1).edit(e, t, [a], [s])
    assert torch.allclose(full[0], torch.tensor([4.0, 5.0, 2.7]))
    e1 = e[1] + 2 * (e[1] @ a[0]) * a[0]
    assert torch.allclose(full[1], e1 - 0.1 * (e1 @ s[0]) * s[0])
    windowed = LatentIntervention([], [], alpha=2.0, beta=0.1, t_range=(10, 20)).edit(e, t, [a], [s])
    assert torch.equal(windowed[0], full[0]) and torch.equal(windowed[1], e[1])  # t = 30 untouched


def test_alpha_beta_zero_runs_the_edit_and_reproduces_naive_sampling_bit_for_bit(monkeypatch):
    """The code-path identity (not the null control): relative strength 0, α = β = 0 and w = 1 are naive."""
    model, process = tiny_model()
    perturbed(model)
    cfg = grid(**{"methods": "[naive,overprompt,intervention,cfg]", "overprompt.grid": "relative",
                  "overprompt.strengths": "[0]", "overprompt.fixed": "null", "intervention.alphas": "[0]",
                  "intervention.betas": "[0]", "cfg.scales": "[1]"})
    settings = settings_for(cfg, SPEC, BLUE_SMALL, trained_with_cfg=True)
    assert [s.method for s in settings] == ["naive", "overprompt", "intervention", "cfg"]
    edits, real_edit = [], LatentIntervention.edit
    monkeypatch.setattr(LatentIntervention, "edit", lambda self, *a: edits.append(1) or real_edit(self, *a))
    probes = ProbeSet.build(SPEC, 3, 11, cells=[BLUE_SMALL])
    naive = sample(model, process, probes.vectors(), probes.seeds, steps=4)
    for s in settings:
        images = sample(model, process, s.prompts(probes), probes.seeds, steps=4, guidance_scale=s.guidance_scale,
                        intervention=s.intervention)
        assert torch.equal(images, naive), s.method
    assert len(edits) == 4  # the edit ran at every sampling step
    (edited,) = settings_for(grid(**{"methods": "[intervention]", "intervention.alphas": "[2]"}), SPEC, BLUE_SMALL,
                             False)
    assert not torch.equal(sample(model, process, probes.vectors(), probes.seeds, steps=4,
                                  intervention=edited.intervention), naive)


def test_block_site_of_a_shared_model_measures_each_direction_on_the_tensor_it_edits():
    model, process = tiny_model()
    perturbed(model)
    projections = [m for n, m in model.unet.named_modules() if n.endswith("time_emb_proj")]
    sites = model.intervention_sites("blocks")
    assert [m for m, _ in sites] == projections and len(projections) > 1
    blue = prototype_input(SPEC, "color", 1, {("color", 1): torch.tensor([0.05, 0.05, 0.95])})
    assert torch.equal(blue, vector(SPEC, color=[0.05, 0.05, 0.95]))
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 700])
    seen = {}
    handles = [m.register_forward_hook(lambda mod, i, out, k=k: seen.__setitem__(k, out))
               for k, m in enumerate(projections)]
    with torch.no_grad():
        model(x, t, blue[None].repeat(2, 1))  # what each block's time_emb_proj really outputs for this prompt
        for h in handles:
            h.remove()
        for k, (_, response) in enumerate(sites):
            measured = response(blue[None], t)
            assert torch.allclose(measured, seen[k], atol=1e-6), k
        assert not torch.allclose(measured[0], measured[1])  # time enters the tensor: directions depend on t
        (embedding, response), = model.intervention_sites("auto")
        assert embedding is model.concept_mlp and torch.equal(response(blue[None], t), model.concept_mlp(blue[None]))

    def blocks(alpha, beta, t_range="null"):
        cfg = grid(**{"methods": "[intervention]", "intervention.site": "blocks", "intervention.alphas": f"[{alpha}]",
                      "intervention.betas": f"[{beta}]", "intervention.t_range": t_range})
        return settings_for(cfg, SPEC, BLUE_SMALL, False)[0].intervention

    v, seeds = SPEC.encode([BLUE_SMALL] * 2), [3, 4]
    naive = sample(model, process, v, seeds, steps=4)
    assert torch.equal(sample(model, process, v, seeds, steps=4, intervention=blocks(0, 0)), naive)
    assert not torch.equal(sample(model, process, v, seeds, steps=4, intervention=blocks(2, 0.5)), naive)
    # a window no sampling timestep falls in leaves the samples as they are
    assert torch.equal(sample(model, process, v, seeds, steps=4, intervention=blocks(2, 0.5, "[-9,-1]")), naive)
    assert torch.equal(sample(model, process, v, seeds, steps=4), naive)  # hooks removed after sampling


def test_default_intervention_runs_on_a_per_block_model_and_changes_the_samples():
    model = per_block_model()
    _, process = tiny_model()
    settings = of(settings_for(grid(), SPEC, BLUE_SMALL, False), "intervention")
    assert [s.setting for s in settings] == ["alpha=0.1,beta=0.1", "alpha=1,beta=0.1", "alpha=2,beta=0.1"]
    iv = settings[0].intervention  # the paper's prototypical inputs: blue (0.05, 0.05, 0.95), large radius 0.6
    assert torch.equal(iv.amplify[0], vector(SPEC, color=[0.05, 0.05, 0.95]))
    assert torch.equal(iv.suppress[0], vector(SPEC, size=[0.6]))
    assert iv.site == "auto" and [m for m, _ in model.intervention_sites(iv.site)] == list(model.block_mlps)
    v, seeds = SPEC.encode([BLUE_SMALL] * 2), [1, 2]
    naive = sample(model, process, v, seeds, steps=3)
    for s in settings:
        assert not torch.equal(sample(model, process, v, seeds, steps=3, intervention=s.intervention), naive)
    zero = settings_for(grid(**{"methods": "[intervention]", "intervention.alphas": "[0]",
                                "intervention.betas": "[0]"}), SPEC, BLUE_SMALL, False)[0]
    assert torch.equal(sample(model, process, v, seeds, steps=3, intervention=zero.intervention), naive)
    assert torch.equal(sample(model, process, v, seeds, steps=3), naive)
    embedding = grid(**{"methods": "[intervention]", "intervention.site": "embedding"})
    with pytest.raises(UserError, match="intervention.site: 'embedding' needs a shared concept embedding"):
        check_sites(embedding, model)
    with pytest.raises(UserError, match="intervention.site: 'embedding' needs"):
        sample(model, process, v, seeds, steps=3,
               intervention=settings_for(embedding, SPEC, BLUE_SMALL, False)[0].intervention)


# ---- every method on a model that knows every cell ------------------------------------------------------------
class OracleDenoiser(nn.Module):
    """A model that has learned every cell (nothing held out): it predicts the noise that leads DDIM to the
    clean test render of the cell nearest its (possibly edited) concept embedding. The embedding is the
    concept vector itself (an identity module, its one intervention site), so interventions act on it."""

    def __init__(self, world: ShapesWorld, process):
        super().__init__()
        self.config = OmegaConf.create({"sample_size": world.cfg.image_size})
        self.anchor = nn.Parameter(torch.zeros(()))
        self.embed = nn.Identity()
        self.world, self.spec, self.process = world, world.spec, process
        self.renders = {c: world.prompt_batch(c, 1, seed=0).images[0] for c in world.spec.cells}

    def intervention_sites(self, site="auto"):
        return [(self.embed, lambda prototype, t: prototype)]

    def forward(self, x, t, v):
        cells = self.spec.decode(self.embed(v)).tolist()
        x0 = self.process.to_model(torch.stack([self.renders[tuple(c)] for c in cells]))
        abar = self.process.train_scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (x - abar.sqrt() * x0) / (1 - abar).sqrt()


def test_every_method_succeeds_on_a_model_that_knows_every_cell():
    from conceptspace.readout.analytic import AnalyticReadout
    from conceptspace.tracker.track import Tracker

    shapes = ShapesConfig(sep_col=0.2, image_size=32)
    _, process = tiny_model()
    model = OracleDenoiser(ShapesWorld(shapes), process)
    tracker = Tracker(shapes.spec, process, [AnalyticReadout(shapes)], None, None, sample_steps=10)
    settings = settings_for(grid(**{"cfg.scales": "[1.5]"}), shapes.spec, BLUE_SMALL, True)
    assert {s.method for s in settings} == {"naive", "null", "overprompt", "intervention", "cfg"}
    for s in settings:
        probes = ProbeSet.build(shapes.spec, 4, 0, cells=[BLUE_SMALL], stream=s.stream)
        rows, _ = tracker.track(model, 0, method=s.method, setting=s.setting, vectors=s.prompts(probes),
                                guidance_scale=s.guidance_scale, intervention=s.intervention, probes=probes,
                                write=False)
        assert [r["seed"] for r in rows] == probes.seeds
        joint = sum(r["found"] and all((r["p"][c] > 0.5) == bool(r["target"][c]) for c in shapes.spec.names)
                    for r in rows)
        assert joint / len(rows) >= 0.99, (s.method, s.setting)


# ---- the verb ---------------------------------------------------------------------------------------------------
def key(r):
    return r["step"], r["cell"], r["method"], r["setting"], r["probe"], r["readout"]


def test_elicit_extends_the_trackers_naive_probes_and_never_duplicates_rows(run_cli, tmp_path, monkeypatch):
    import conceptspace.elicit.command as command

    calls = []
    monkeypatch.setattr(command, "summarise", lambda *a: calls.append(a) or {"lead": {}})
    monkeypatch.setattr(command, "log_to_wandb", lambda *a: None)
    cfg = fast_cfg("tracker.n_probes=4", steps=4, snapshots=2, tracker=True)
    train(cfg, tmp_path)
    rows_path = tmp_path / "tracker" / "rows.jsonl"
    tracker_rows = read_rows(rows_path)
    args = ["elicit", str(tmp_path), "n_probes=8", "methods=[naive,null]", "null.settings=2"]
    code, out, err = run_cli(*args)
    assert code == 0, err
    rows = read_rows(rows_path)
    assert rows[:len(tracker_rows)] == tracker_rows and len({key(r) for r in rows}) == len(rows)

    def seeds(stream, n=8):
        return ProbeSet.build(cfg_spec, n, cfg.tracker.seed, cells=["blue-small"], stream=stream).seeds

    cfg_spec = ShapesConfig.from_cfg(cfg.data).spec
    for step in (2, 4):
        def mine(method, setting, step=step):
            return sorted((r for r in rows if r["step"] == step and r["cell"] == "blue-small"
                           and r["method"] == method and r["setting"] == setting), key=lambda r: r["probe"])

        naive = mine("naive", "")
        assert [r["probe"] for r in naive] == list(range(8)) and [r["seed"] for r in naive] == seeds(0)
        assert naive[:4] == [r for r in tracker_rows if r["step"] == step and r["cell"] == "blue-small"]
        for k in (1, 2):
            null = mine("null", f"k={k}")
            assert [r["probe"] for r in null] == list(range(8)) and [r["seed"] for r in null] == seeds(k)
            assert all(r["found"] in (True, False) for r in null)
    (run_dir, spec, targets, ecfg), = calls  # summarise(run_dir, spec, targets, the whole elicit config)
    assert ecfg.n_probes == 8 and [spec.cell_name(c) for c in targets] == ["blue-small"]
    before = rows_path.read_text()
    code, out, _ = run_cli(*args)
    assert code == 0 and "already elicited" in out and rows_path.read_text() == before
    assert run_cli(*args[:2], "n_probes=9", "methods=[naive]")[0] == 0  # only probe 8 is new
    added = read_rows(rows_path)[len(rows):]
    assert sorted((r["step"], r["probe"], r["method"]) for r in added) == [(2, 8, "naive"), (4, 8, "naive")]
    code, _, err = run_cli("elicit", str(tmp_path / "nope"))
    assert code == 2 and "has no config.yaml" in err


PAPER_NETWORK = ["diffusion=vdm", "model=paper_vdm", "model.block_out_channels=[8,16,16]", "model.norm_num_groups=4",
                 "model.attention_head_dim=4", "model.layers_per_block=1"]


@pytest.mark.parametrize("run", ["data.sep_col=0.1", "data.sep_col=0.4", "data.sep_col=0.8", "paper_vdm",
                                 "paper_network"])
def test_elicit_with_the_default_grids_runs_on_tiny_runs(run_cli, tmp_path, run):
    """`conceptspace elicit RUN_DIR` with the default settings: weak to strong colour signal on the shared
    model, and a per-block (paper_vdm-like: VDM, sep_mlp) model. Only the probe count is cut for speed."""
    overrides = {"paper_vdm": ["diffusion=vdm", "train.lr=1e-3", "model.concept_conditioning=per_block"],
                 "paper_network": PAPER_NETWORK}.get(run, [run])
    train(fast_cfg(*overrides, steps=2, snapshots=1, tracker=True), tmp_path)
    code, out, err = run_cli("elicit", str(tmp_path), "n_probes=2")
    assert code == 0, err
    assert "cfg: skipped" in out and "skipping" not in out  # every default over-prompt is in range
    rows = [r for r in read_rows(tmp_path / "tracker" / "rows.jsonl") if r["cell"] == "blue-small"]
    settings = {(r["method"], r["setting"]) for r in rows}
    assert settings == {("naive", ""), *[("null", f"k={k}") for k in range(1, 6)],
                        *[("overprompt", s) for s in OFFSETS],
                        *[("intervention", f"alpha={a},beta=0.1") for a in ("0.1", "1", "2")]}
    assert all(sum(1 for r in rows if (r["method"], r["setting"]) == s) == 2 for s in settings)
    assert (tmp_path / "elicit").is_dir()

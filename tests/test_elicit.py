import csv

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conceptspace.elicit.command import load_elicit_config
from conceptspace.elicit.methods import overprompt_vector, settings_for
from conceptspace.errors import UserError
from conceptspace.sampling import sample
from conceptspace.train import train
from synthetic_shapes import ShapesConfig, ShapesWorld
from tests.helpers import fast_cfg
from tests.test_train import tiny_model

SPEC = ShapesConfig(sep_col=0.2).spec
BLUE_SMALL = (1, 1)


def grid(**overrides):
    return load_elicit_config([f"{k}={v}" for k, v in overrides.items()])


def test_zero_strength_zero_intervention_and_unit_guidance_reproduce_naive_exactly():
    model, process = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cfg = grid(**{"overprompt.strengths": "[0]", "intervention.alphas": "[0]", "intervention.betas": "[0]",
                  "cfg.scales": "[1]"})
    settings = settings_for(cfg, SPEC, BLUE_SMALL, model, trained_with_cfg=True, n_probes=3)
    assert [s.method for s in settings] == ["naive", "overprompt", "intervention", "cfg"]
    naive_vectors = SPEC.encode([BLUE_SMALL] * 3)
    seeds = [11, 12, 13]
    naive = sample(model, process, naive_vectors, seeds, steps=4)
    for s in settings:
        images = sample(model, process, naive_vectors if s.vectors is None else s.vectors, seeds, steps=4,
                        guidance_scale=s.guidance_scale, embedding_hook=s.hook)
        assert torch.equal(images, naive), s.method
    intervened = settings_for(grid(**{"intervention.alphas": "[2]"}), SPEC, BLUE_SMALL, model, True, 3)
    hook = next(s.hook for s in intervened if s.method == "intervention")
    assert not torch.equal(sample(model, process, naive_vectors, seeds, steps=4, embedding_hook=hook), naive)


def test_overprompt_follows_the_papers_prompts_with_a_grey_anchor():
    v = overprompt_vector(SPEC, BLUE_SMALL, ["color"], 1.0, {"color": [0.5, 0.5, 0.5]})
    parts = SPEC.split(v[None])
    assert torch.allclose(parts["color"][0], torch.tensor([0.3, 0.3, 0.7]))  # blue (0.4, 0.4, 0.6) pushed
    assert torch.allclose(parts["size"][0], torch.tensor([0.25]))  # untouched
    v3 = overprompt_vector(SPEC, BLUE_SMALL, ["color"], 3.5, {"color": [0.5, 0.5, 0.5]})
    assert torch.allclose(SPEC.split(v3[None])["color"][0], torch.tensor([0.05, 0.05, 0.95]))  # the paper's extreme


def test_bad_elicitation_settings():
    model, _ = tiny_model()
    with pytest.raises(UserError, match="concept 'color' leaves its valid range"):
        settings_for(grid(**{"overprompt.strengths": "[5]"}), SPEC, BLUE_SMALL, model, False, 2)
    kept = settings_for(grid(**{"overprompt.strengths": "[1,5]", "out_of_range": "skip"}), SPEC, BLUE_SMALL,
                        model, False, 2)
    assert [s.setting for s in kept if s.method == "overprompt"] == ["strength=1"]
    with pytest.raises(UserError, match="unknown concept 'colour'"):
        settings_for(grid(**{"overprompt.concepts": "[colour]"}), SPEC, BLUE_SMALL, model, False, 2)
    with pytest.raises(UserError, match="elicit.methods: unknown"):
        settings_for(grid(methods="[naive,telepathy]"), SPEC, BLUE_SMALL, model, False, 2)
    with pytest.raises(UserError, match="elicit: unknown or bad setting"):
        load_elicit_config(["overprompt.strenghts=[1]"])


class OracleDenoiser(nn.Module):
    """A model that has learned every cell (nothing held out): it predicts the noise that leads DDIM to the
    clean test render of the cell nearest its (possibly edited) concept embedding. The embedding is the
    concept vector itself, so interventions act on it directly."""

    def __init__(self, world: ShapesWorld, process):
        super().__init__()
        self.config = OmegaConf.create({"sample_size": world.cfg.image_size})
        self.anchor = nn.Parameter(torch.zeros(()))
        self.world, self.spec, self.process = world, world.spec, process
        self.renders = {c: world.prompt_batch(c, 1, seed=0).images[0] for c in world.spec.cells}

    def concept_embedding(self, v):
        return v

    def forward(self, x, t, v, embedding_hook=None):
        e = v if embedding_hook is None else embedding_hook(v, t)
        cells = self.spec.decode(e).tolist()
        x0 = self.process.to_model(torch.stack([self.renders[tuple(c)] for c in cells]))
        abar = self.process.train_scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (x - abar.sqrt() * x0) / (1 - abar).sqrt()


def test_every_method_succeeds_on_a_model_that_knows_every_cell():
    from conceptspace.readout.analytic import AnalyticReadout
    from conceptspace.tracker.probes import ProbeSet
    from conceptspace.tracker.track import Tracker

    shapes = ShapesConfig(sep_col=0.2, image_size=32)
    _, process = tiny_model()
    model = OracleDenoiser(ShapesWorld(shapes), process)
    tracker = Tracker(shapes.spec, process, [AnalyticReadout(shapes)],
                      ProbeSet.build(shapes.spec, 4, 0, cells=[BLUE_SMALL]), None, sample_steps=10)
    for s in settings_for(grid(**{"cfg.scales": "[1.5]"}), shapes.spec, BLUE_SMALL, model, True, 4):
        rows, _ = tracker.track(model, 0, method=s.method, setting=s.setting, vectors=s.vectors,
                                guidance_scale=s.guidance_scale, embedding_hook=s.hook, write=False)
        joint = sum(all((r["p"][c] > 0.5) == bool(r["target"][c]) for c in shapes.spec.names) for r in rows)
        assert joint / len(rows) >= 0.99, (s.method, s.setting)


def test_elicit_command_writes_the_table_and_skips_done_work(run_cli, tmp_path):
    train(fast_cfg("data.image_size=32", steps=4, snapshots=2, tracker=True), tmp_path)
    args = ["elicit", str(tmp_path), "overprompt.strengths=[1]", "intervention.alphas=[1]"]
    code, out, _ = run_cli(*args)
    assert code == 0 and "skipped (the model was trained without" in out
    with open(tmp_path / "elicit" / "elicitation.csv") as f:
        table = list(csv.DictReader(f))
    assert {(r["step"], r["method"]) for r in table} == {(s, m) for s in ("2", "4")
                                                        for m in ("naive", "overprompt", "intervention")}
    assert (tmp_path / "elicit" / "accuracy.png").stat().st_size > 0
    rows_before = (tmp_path / "tracker" / "rows.jsonl").read_text()
    assert run_cli(*args)[0] == 0
    assert (tmp_path / "tracker" / "rows.jsonl").read_text() == rows_before
    code, _, err = run_cli("elicit", str(tmp_path / "nope"))
    assert code == 2 and "has no config.yaml" in err


def test_block_site_intervention_identity_and_effect():
    model, process = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    v, seeds = SPEC.encode([BLUE_SMALL] * 2), [3, 4]
    naive = sample(model, process, v, seeds, steps=4)

    def block_hook(alpha, beta):
        cfg = grid(**{"intervention.site": "blocks", "intervention.alphas": f"[{alpha}]",
                      "intervention.betas": f"[{beta}]", "methods": "[intervention]"})
        (setting,) = settings_for(cfg, SPEC, BLUE_SMALL, model, False, 2)
        return setting.hook

    hook = block_hook(0, 0)
    assert len(hook.blocks) == len([n for n, _ in model.unet.named_modules() if n.endswith("time_emb_proj")]) > 0
    assert torch.equal(sample(model, process, v, seeds, steps=4, embedding_hook=hook), naive)
    edited = sample(model, process, v, seeds, steps=4, embedding_hook=block_hook(2, 0.5))
    assert not torch.equal(edited, naive)
    assert torch.equal(sample(model, process, v, seeds, steps=4), naive)  # hooks removed after sampling
    with pytest.raises(UserError, match="intervention.site: got 'mid'"):
        settings_for(grid(**{"intervention.site": "mid"}), SPEC, BLUE_SMALL, model, False, 2)

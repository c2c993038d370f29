import json

import pytest
import torch

import conceptspace.member as member_module
import conceptspace.train as train_module
from conceptspace import checkpoint as ckpt
from conceptspace.diffusion import build_process
from conceptspace.errors import UserError
from conceptspace.model import ConceptUNet, build_model
from conceptspace.sampling import sample
from conceptspace.train import train
from synthetic_shapes import ShapesConfig
from tests.helpers import fast_cfg, final_state, straight_and_resumed

SPEC = ShapesConfig().spec


def tiny_model(seed=0):
    torch.manual_seed(seed)
    cfg = fast_cfg()
    return build_model(cfg.model, SPEC, 16), build_process(cfg.diffusion)


def test_conditioning_changes_the_output():
    model, _ = tiny_model()
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([100, 100])
    # the UNet's last conv is zero-initialised in some diffusers blocks: perturb weights so output != 0
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    a = model(x, t, SPEC.encode(["red-large", "red-large"]))
    b = model(x, t, SPEC.encode(["blue-small", "blue-small"]))
    assert (a - b).abs().mean() > 1e-3


def test_save_pretrained_round_trip_is_exact(tmp_path):
    model, _ = tiny_model()
    model.save_pretrained(tmp_path / "m")
    loaded = ConceptUNet.from_pretrained(tmp_path / "m", low_cpu_mem_usage=False)
    assert loaded.spec == SPEC and loaded.spec.held_out == ((1, 1),)
    x, t, c = torch.randn(3, 3, 16, 16), torch.tensor([1, 500, 999]), torch.rand(3, 4)
    model.eval(), loaded.eval()
    assert torch.equal(model(x, t, c), loaded(x, t, c))


def test_sampler_is_deterministic_per_sample_seed_and_batch_independent():
    model, process = tiny_model()
    v = SPEC.encode(["blue-small"] * 4)
    a = sample(model, process, v, [5, 6, 7, 8], steps=4)
    b = sample(model, process, v, [5, 6, 7, 8], steps=4)
    c = sample(model, process, v[1:3], [6, 7], steps=4, batch_size=1)
    assert torch.equal(a, b)
    assert torch.allclose(a[1:3], c, atol=1e-5)
    assert not torch.allclose(a[0], a[1])


class NullShifted(torch.nn.Module):
    """`model` with its output for the null concept (an all-zeros vector) shifted, and every call recorded:
    an unconditional pass then changes the samples wherever it is used."""

    def __init__(self, model, shift=0.3):
        super().__init__()
        self.model, self.shift, self.calls = model, shift, []
        self.config = model.config

    def forward(self, x, t, v):
        null = (v == 0).all(-1)
        self.calls.append(null.tolist())
        return self.model(x, t, v) + self.shift * null.view(-1, 1, 1, 1)


class HandGuided(torch.nn.Module):
    """ε_null + w (ε − ε_null) with the null = zeros, computed here: what guidance at scale w must give."""

    def __init__(self, model, w):
        super().__init__()
        self.model, self.w, self.config = model, w, model.config

    def forward(self, x, t, v):
        eps, eps_null = self.model(x, t, v).float(), self.model(x, t, torch.zeros_like(v)).float()
        return eps_null + self.w * (eps - eps_null)


def test_cfg_scale_one_is_the_conditional_model_exactly():
    """w = 1 never runs the unconditional pass (a shifted null output changes nothing), and w = 3 is the
    CFG formula against the zero null. Breaks if the w = 1 shortcut goes, or the formula or the null change."""
    model, process = tiny_model()
    wrapped = NullShifted(model)
    v = SPEC.encode(["blue-small"] * 2)
    plain = sample(model, process, v, [1, 2], steps=3)
    assert torch.equal(sample(wrapped, process, v, [1, 2], steps=3, guidance_scale=1.0), plain)
    assert wrapped.calls == [[False, False]] * 3  # one conditional call per step, never the null
    guided = sample(wrapped, process, v, [1, 2], steps=3, guidance_scale=3.0)
    assert [True, True] in wrapped.calls
    assert torch.equal(guided, sample(HandGuided(NullShifted(model), 3.0), process, v, [1, 2], steps=3))
    assert not torch.allclose(guided, plain, atol=1e-3)


def test_ddpm_sampler_uses_per_sample_noise():
    model, process = tiny_model()
    process = build_process(fast_cfg("diffusion.sampler=ddpm").diffusion)
    v = SPEC.encode(["red-small"] * 3)
    a = sample(model, process, v, [1, 2, 3], steps=4)
    b = sample(model, process, v[2:], [3], steps=4)
    assert torch.allclose(a[2:], b, atol=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "bf16_fp32_input"])
def test_resume_after_a_kill_equals_uninterrupted(tmp_path, monkeypatch, precision):
    cfg = fast_cfg("train.ema.enabled=true", "train.cfg_dropout=0.2", f"train.precision={precision}", steps=8,
                   checkpoint_every=3)
    a, b, killed_at = straight_and_resumed(cfg, tmp_path, monkeypatch, kill_at=7)
    assert killed_at == 6  # the last checkpoint before the kill
    assert a["step"] == b["step"] == 8
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for x, y in zip(a["ema"]["shadow_params"], b["ema"]["shadow_params"]):
        assert torch.equal(x, y)
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))  # no duplicated log lines after the resume


def test_snapshots_are_sqrt_spaced_and_loadable(tmp_path):
    train(fast_cfg(steps=12, snapshots=4), tmp_path)
    steps = [s for s, _ in ckpt.list_snapshots(tmp_path)]
    assert steps == [2, 4, 7, 12]  # floor(linspace(√2, √12, 4)²), as the paper's astype(int)
    model = ConceptUNet.from_pretrained(ckpt.snapshot_dir(tmp_path, 12), low_cpu_mem_usage=False)
    assert torch.equal(model.state_dict()["concept_mlp.0.weight"],
                       final_state(tmp_path)["model"]["concept_mlp.0.weight"])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, precision):
    cfg = fast_cfg(f"train.precision={precision}", steps=8, checkpoint_every=2)
    real = member_module.build_process

    def poisoned(diffusion_cfg):
        process = real(diffusion_cfg)
        loss = process.loss
        calls = {"n": 0}

        def maybe_nan(*args):
            calls["n"] += 1
            value = loss(*args)
            return value * float("nan") if calls["n"] == 5 else value
        process.loss = maybe_nan
        return process

    monkeypatch.setattr(member_module, "build_process", poisoned)
    with pytest.raises(UserError, match="loss is nan at step 4"):
        train(cfg, tmp_path)
    assert final_state(tmp_path)["step"] == 4
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "failed"


def test_a_kill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    train(fast_cfg(steps=3, checkpoint_every=3), tmp_path)
    before = (tmp_path / "checkpoint.pt").read_bytes()

    def torn_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, {"step": 99})
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("override, message", [
    ("train.lr=0", "train.lr"), ("train.steps=0", "train.steps"), ("train.precision=fp8", "train.precision"),
    ("diffusion.sampler=euler", "diffusion.sampler: got 'euler'; allowed: ['ddim', 'ddpm']"),
    ("train.concept_dropout={colour: 0.5}", "train.concept_dropout: unknown concept 'colour'"),
    ("tracker.weights=ema", "tracker.weights"), ("train.snapshots.start=0", "train.snapshots.start"),
    ("train.compile.mode=fast", "train.compile.mode: got 'fast'; allowed: ['default', 'reduce-overhead'"),
])
def test_bad_training_settings(override, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        train_module.check(fast_cfg(override))


def test_step_seeds_and_data_order_are_the_same_in_every_process():
    """A resumed run is a new process: its per-step seeds and data order must not depend on the
    interpreter's string-hash randomisation."""
    import os
    import subprocess
    import sys

    from conceptspace.member import step_seed
    from conceptspace.seeding import derive_seed

    # train.step_seed is seeding.derive_seed: the child imports only that and the data order (not diffusers)
    assert step_seed(3, 17, "loss") == derive_seed(3, 17, "loss")
    code = ("from conceptspace.seeding import derive_seed; from conceptspace.data import epoch_order; "
            "print(derive_seed(3, 17, 'loss'), epoch_order(3, 2, 10, 'cpu').tolist())")
    children = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONHASHSEED": h}) for h in ("1", "2")]
    outs = {c.communicate(timeout=120)[0] for c in children}
    assert all(c.returncode == 0 for c in children) and len(outs) == 1


def test_wandb_offline_logging_and_resume_keeps_the_run_id(tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = fast_cfg("logger=wandb", "data.image_size=32", steps=4, snapshots=1, checkpoint_every=2, tracker=True)
    cfg.train.steps = 2
    train(cfg, tmp_path / "run")
    first = final_state(tmp_path / "run")["wandb_run_id"]
    cfg.train.steps = 4
    train(cfg, tmp_path / "run")
    assert first and final_state(tmp_path / "run")["wandb_run_id"] == first
    assert list((tmp_path / "run" / "wandb").glob(f"offline-run-*-{first}"))
    assert (tmp_path / "run" / "wandb_run_id.txt").read_text() == first
    code, _, err = run_cli("elicit", str(tmp_path / "run"), "methods=[naive,overprompt]", "overprompt.offsets=[0.25]",
                           "n_probes=2")
    assert code == 0, err  # the elicitation plot and table go to the same W&B run


def test_a_compiled_training_step_trains_like_eager(tmp_path):
    """train.compile wraps the training step's network in torch.compile (aot_eager here: the graph capture
    and autograd rewrite without code generation, so the test is quick); the weights match eager to fp32
    tolerance and snapshots keep the plain module's parameter names."""
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    train(fast_cfg(steps=3, checkpoint_every=3), eager)
    train(fast_cfg("train.compile.enabled=true", "train.compile.backend=aot_eager", steps=3, checkpoint_every=3),
          compiled)
    a, b = final_state(eager)["model"], final_state(compiled)["model"]
    assert a.keys() == b.keys() and not any("_orig_mod" in k for k in b)
    assert all(torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4) for k in a)

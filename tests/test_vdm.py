"""The paper's VDM mode: loss scale at init, the learned schedule's drift, sampling, snapshots, resume."""

import math

import pytest
import torch

from conceptspace.diffusion import build_process
from conceptspace.sampling import sample
from conceptspace.tracker.rows import read_rows
from conceptspace.train import train
from synthetic_shapes import ShapesConfig
from tests.helpers import fast_cfg, final_state, straight_and_resumed
from tests.test_train import tiny_model

VDM = ["diffusion=vdm", "train.lr=1e-3"]
SPEC = ShapesConfig().spec


def test_initial_loss_is_the_reconstruction_term_of_the_papers_schedule():
    """γ(0) = −5 gives σ0/α0 = e^-2.5 ≈ 0.082 ≫ data noise 1e-3: ≈ 0.5 (0.082/0.001)² nats ≈ 4.85k bits/dim."""
    model, _ = tiny_model()
    process = build_process(fast_cfg(*VDM).diffusion)
    images = torch.rand(64, 3, 16, 16)
    loss = process.loss(model, images, torch.rand(64, 4), torch.Generator().manual_seed(0)).item()
    expected = (0.5 * math.exp(-5) / 1e-6 + math.log(1e-3) + 0.5 * math.log(2 * math.pi)) / math.log(2)
    assert abs(loss - expected) / expected < 0.05


def test_the_schedule_ends_learn_and_are_logged(tmp_path):
    cfg = fast_cfg(*VDM, "train.log_every=10", steps=10, snapshots=1, checkpoint_every=10)
    train(cfg, tmp_path)
    import json

    last = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["gamma_0"] == pytest.approx(-5 - 10 * 1e-3, abs=3e-3)  # Adam moves b ≈ lr per step, down
    assert last["gamma_1"] < 10
    assert final_state(tmp_path)["process"]["b"].item() == pytest.approx(last["gamma_0"])


def test_vdm_sampler_is_deterministic_per_seed_and_batch_independent():
    model, _ = tiny_model()
    process = build_process(fast_cfg(*VDM).diffusion)
    v = SPEC.encode(["blue-small"] * 3)
    a = sample(model, process, v, [1, 2, 3], steps=5)
    b = sample(model, process, v[1:], [2, 3], steps=5, batch_size=1)
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, sample(model, process, v, [1, 2, 3], steps=5))
    # an untrained network lets z grow ~α0/α1 ≈ 150x, so float-level batch effects flip a few clamped pixels
    assert (a[1:] - b).abs().mean() < 1e-3 and not torch.equal(a[0], a[1])


def test_offline_tracking_reloads_the_learned_schedule(run_cli, tmp_path):
    train(fast_cfg(*VDM, "data.image_size=32", steps=4, snapshots=2, tracker=True), tmp_path)
    assert (tmp_path / "snapshots" / "step_000004" / "vdm_schedule.json").exists()
    assert run_cli("track", str(tmp_path), "--rows", "offline.jsonl")[0] == 0
    assert read_rows(tmp_path / "tracker" / "offline.jsonl") == read_rows(tmp_path / "tracker" / "rows.jsonl")


def test_vdm_resume_after_a_kill_equals_uninterrupted(tmp_path, monkeypatch):
    a, b, killed_at = straight_and_resumed(fast_cfg(*VDM, steps=6, checkpoint_every=3), tmp_path, monkeypatch, 4)
    assert killed_at == 3
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["process"]["b"], b["process"]["b"]) and torch.equal(a["process"]["w"], b["process"]["w"])


def per_block_model():
    from conceptspace.model import build_model

    torch.manual_seed(0)
    model = build_model(fast_cfg("model.concept_conditioning=per_block").model, SPEC, 16)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_per_block_concept_mlps_condition_every_block_and_round_trip(tmp_path):
    from conceptspace.model import ConceptUNet

    model = per_block_model()
    assert model.concept_mlp is None and len(model.block_mlps) == len(
        [n for n, _ in model.unet.named_modules() if n.endswith("time_emb_proj")])
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 500])
    a = model(x, t, SPEC.encode(["red-large"] * 2))
    assert (a - model(x, t, SPEC.encode(["blue-small"] * 2))).abs().mean() > 1e-3
    model.save_pretrained(tmp_path / "m")
    loaded = ConceptUNet.from_pretrained(tmp_path / "m", low_cpu_mem_usage=False)
    model.eval(), loaded.eval()
    assert torch.equal(model(x, t, SPEC.encode(["red-large"] * 2)), loaded(x, t, SPEC.encode(["red-large"] * 2)))


def test_paper_vdm_stack_trains_and_resumes(tmp_path, monkeypatch):
    """The paper's stack (VDM, per-block concept MLPs, grad_clip 0.01, EMA), killed and rerun, ends equal to
    an uninterrupted run: network, EMA shadow and the learned schedule (breaks if any is not restored)."""
    from conceptspace.config import compose

    assert compose(["experiment=paper_vdm"]).model.concept_conditioning == "per_block"
    cfg = fast_cfg(*VDM, "model.concept_conditioning=per_block", "train.grad_clip=0.01", "train.ema.enabled=true",
                   steps=4, checkpoint_every=2)
    a, b, killed_at = straight_and_resumed(cfg, tmp_path, monkeypatch, kill_at=3)
    assert killed_at == 2 and a["step"] == b["step"] == 4
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert any(k.startswith("block_mlps.") for k in a["model"])
    shadow_a, shadow_b = a["ema"]["shadow_params"], b["ema"]["shadow_params"]
    assert len(shadow_a) == len(shadow_b) and all(torch.equal(x, y) for x, y in zip(shadow_a, shadow_b))
    assert a["ema"]["optimization_step"] == b["ema"]["optimization_step"] == 4
    assert a["process"].keys() == b["process"].keys() == {"b", "w"}
    assert all(torch.equal(a["process"][k], b["process"][k]) for k in ("b", "w"))
    assert a["process"]["b"].item() != -5.0  # the schedule did train


def test_last_step_noise_variance_keeps_fp32_precision_at_low_gamma():
    """σ²_s = sigmoid(γ_s): at γ(0) = −18 it is 1.5e-8, which 1 − α²_s rounds to 0 in fp32."""
    process = build_process(fast_cfg(*VDM).diffusion)
    with torch.no_grad():
        process.b.fill_(-18.0)
    sched = process.sampling_scheduler(2)
    z = torch.zeros(4096, 3, 2, 2)
    eps = torch.zeros_like(z)
    gens = [torch.Generator().manual_seed(i) for i in range(z.shape[0])]
    out = process.step(sched, eps, 0.5, z, gens)  # the last step: t = 0.5 -> s = 0
    g_s, g_t = process.gamma(torch.tensor(0.0)), process.gamma(torch.tensor(0.5))
    expected_std = (torch.sigmoid(g_s).double() * -torch.expm1(g_s - g_t).double()).sqrt().item()
    assert out.std().item() == pytest.approx(expected_std, rel=0.02)


@pytest.mark.parametrize("native", [True, False])
def test_precision_auto_gives_the_vdm_an_fp32_input_conv_and_needs_native_bf16(monkeypatch, native):
    from conceptspace import devices
    from conceptspace.devices import fp32_input, precision_note, resolve_precision, use_bf16

    monkeypatch.setattr(devices, "native_bf16", lambda device: native)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    for device in (cuda, cpu):  # auto: bf16 exactly where it is native; the VDM keeps its input conv in fp32
        assert resolve_precision("auto", device, "ddpm") == ("bf16" if native else "fp32")
        assert resolve_precision("auto", device, "vdm") == ("bf16_fp32_input" if native else "fp32")
        assert use_bf16("auto", device, "vdm") == native == fp32_input("auto", device, "vdm")
        assert not fp32_input("auto", device, "ddpm")
    # an explicit setting is what runs, whatever the hardware or the formulation
    assert use_bf16("bf16", cpu, "vdm") and not fp32_input("bf16", cpu, "vdm")
    assert not use_bf16("fp32", cuda, "ddpm") and fp32_input("bf16_fp32_input", cpu, "ddpm")
    # one line when an explicit bf16 would be emulated on this CPU, nothing otherwise
    assert ("emulated" in (precision_note("bf16", cpu) or "")) == (not native)
    assert precision_note("auto", cpu) is None and precision_note("fp32", cpu) is None
    assert precision_note("bf16", cuda) is None

"""Identities the code must satisfy exactly: concept dropout masks exactly what it says and its null is the
sampler's null; VDM with an oracle denoiser (zero diffusion loss, ancestral sampling lands on the target);
the intervention formula by hand; DDIM is deterministic and is not ancestral sampling."""

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

import conceptspace.member as member_module
from conceptspace.diffusion import build_process
from conceptspace.elicit.methods import LatentIntervention
from conceptspace.member import drop_concepts
from conceptspace.sampling import sample
from synthetic_shapes import ShapesConfig
from tests.helpers import fast_cfg, straight_and_resumed
from tests.test_train import tiny_model

SPEC = ShapesConfig.from_cfg(fast_cfg().data).spec


def perturbed(model):
    """An untrained diffusers UNet barely reads its conditioning: perturb every weight."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


class Recorder(nn.Module):
    """A stand-in network (2x2 images) that records the concept vectors it is called with."""

    def __init__(self):
        super().__init__()
        self.config = OmegaConf.create({"sample_size": 2})
        self.anchor = nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, x, t, v):
        self.seen.append(v.clone())
        return torch.zeros_like(x)


def sampler_null(vectors):
    """The null concept the sampler guides against, read off the sampler's own unconditional call."""
    recorder = Recorder()
    sample(recorder, build_process(fast_cfg().diffusion), vectors, list(range(len(vectors))), steps=1,
           guidance_scale=2.0)
    cond, null = recorder.seen
    assert torch.equal(cond, vectors)
    return null


# ---- concept dropout ---------------------------------------------------------------------------------------
def dropped(*overrides, n=64, seed=0):
    vectors = torch.rand(n, SPEC.dim) + 0.1  # no slot is 0 before dropout
    before = vectors.clone()
    out = drop_concepts(vectors, SPEC, fast_cfg(*overrides).train, torch.Generator().manual_seed(seed))
    assert torch.equal(vectors, before)  # the caller's batch is not edited in place
    return vectors, out


def others(name):
    return [n for n in SPEC.names if n != name]


def test_concept_dropout_zeroes_exactly_that_concepts_slots():
    """p = 1: every colour slot is 0 and every other slot is untouched; p = 0.5: some rows, colour only."""
    v, out = dropped("train.concept_dropout={color: 1.0}")
    assert torch.equal(out[:, SPEC.slot("color")], torch.zeros_like(out[:, SPEC.slot("color")]))
    for name in others("color"):
        assert torch.equal(out[:, SPEC.slot(name)], v[:, SPEC.slot(name)]), name
    v, out = dropped("train.concept_dropout={size: 0.5}")
    hit = (out[:, SPEC.slot("size")] == 0).all(-1)
    assert 10 < hit.sum() < 54  # about half the rows
    assert torch.equal(out[~hit], v[~hit])
    for name in others("size"):
        assert torch.equal(out[:, SPEC.slot(name)], v[:, SPEC.slot(name)]), name


def test_no_dropout_returns_the_vectors_unchanged():
    for overrides in ([], ["train.concept_dropout={color: 0.0, size: 0.0}"]):
        v, out = dropped(*overrides, "train.cfg_dropout=0.0")
        assert torch.equal(out, v), overrides


def test_cfg_dropout_trains_on_the_samplers_null():
    """What the model learns as 'unconditional' must be the vector CFG sampling feeds it."""
    v, out = dropped("train.cfg_dropout=0.999999")
    assert torch.equal(out, sampler_null(v))
    v, out = dropped("train.cfg_dropout=0.5")
    hit = (out != v).any(-1)
    assert 10 < hit.sum() < 54 and torch.equal(out[hit], sampler_null(v)[hit]) and torch.equal(out[~hit], v[~hit])


def test_resume_with_concept_dropout_equals_uninterrupted(tmp_path, monkeypatch):
    """The dropout masks are re-derived from (seed, step): a resumed run drops the same concepts."""
    masks = []

    def spy(vectors, spec, tc, generator):
        out = drop_concepts(vectors, spec, tc, generator)
        masks.append((out[:, spec.slot("color")] == 0).all(-1))
        return out

    monkeypatch.setattr(member_module, "drop_concepts", spy)
    cfg = fast_cfg("train.concept_dropout={color: 0.5}", steps=6, checkpoint_every=3)
    a, b, killed_at = straight_and_resumed(cfg, tmp_path, monkeypatch, kill_at=5)
    assert killed_at == 3 and a["step"] == b["step"] == 6
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    hits = torch.stack(masks[:6])  # the straight run's 6 steps
    assert 0 < hits.float().mean() < 1  # dropout did act, on some rows only
    assert torch.equal(torch.stack(masks[-3:]), hits[3:])  # the resumed steps 3..5 dropped the same rows


# ---- VDM with an oracle --------------------------------------------------------------------------------------
def vdm(b=None):
    process = build_process(fast_cfg("diffusion=vdm").diffusion)
    if b is not None:
        with torch.no_grad():
            process.b.fill_(b)
    return process


def gamma_of(process, model_t):
    """Invert the documented time input of the network: γ normalised with the config ends, x1000."""
    lo, hi = float(process.cfg.gamma_min), float(process.cfg.gamma_max)
    return (model_t.double() / 1000 * (hi - lo) + lo).view(-1, 1, 1, 1)


class X0Oracle(nn.Module):
    """Predicts the ε that z_t = α_t x0 + σ_t ε has for a fixed x0 (the true noise, if x0 is the data)."""

    def __init__(self, process, x0):
        super().__init__()
        self.config = OmegaConf.create({"sample_size": x0.shape[-1]})
        self.anchor = nn.Parameter(torch.zeros(()))
        self.process, self.x0 = process, x0.double()

    def forward(self, z, model_t, v):
        g = gamma_of(self.process, model_t)
        alpha, sigma = torch.sigmoid(-g).sqrt(), torch.sigmoid(g).sqrt()
        return ((z.double() - alpha * self.x0[:z.shape[0]]) / sigma).float()


def vdm_draws(seed, x):
    """The loss's draws, in its order: antithetic t from one uniform, the diffusion noise, the recon noise."""
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    u0 = torch.rand((), generator=g)
    t = (u0 + torch.arange(n) / n) % 1.0
    return t, torch.randn(x.shape, generator=g), torch.randn(x.shape, generator=g)


def latent_and_recon_bpd(process, x, eps0):
    """The two model-free VLB terms in bits/dim, by hand in float64 at the process's schedule."""
    b, w = process.b.double().detach(), process.w.double().detach().abs()
    g0, g1 = b, b + w
    x, eps0 = x.double(), eps0.double()
    latent = 0.5 * (torch.sigmoid(g1) + torch.sigmoid(-g1) * x**2 - torch.log(torch.sigmoid(g1)) - 1)
    dn = float(process.cfg.data_noise)
    recon = 0.5 * (torch.exp(g0 / 2) * eps0 / dn) ** 2 + math.log(dn) + 0.5 * math.log(2 * math.pi)
    return ((latent + recon).flatten(1).sum(1) / (x[0].numel() * math.log(2))).mean().item()


@pytest.mark.parametrize("b", [None, -14.0])  # the initial schedule, and a drifted one (small recon term)
def test_vdm_oracle_denoiser_has_zero_diffusion_loss(b):
    """An ε-oracle, built from z_t, x and the schedule, leaves exactly the latent and reconstruction terms;
    a zero prediction adds ½|w| Σ ε² per sample. Breaks if z_t, the time input, or the diffusion weight drift."""
    process = vdm(b)
    torch.manual_seed(0)
    x, v = torch.rand(8, 3, 16, 16), torch.rand(8, SPEC.dim)
    t, eps, eps0 = vdm_draws(3, x)

    class NoiseOracle(nn.Module):  # returns the reproduced noise; checks the input is the forward process's z_t
        def forward(self, z, model_t, v):
            g = process.gamma(t).detach().view(-1, 1, 1, 1)
            assert torch.allclose(z, torch.sigmoid(-g).sqrt() * x + torch.sigmoid(g).sqrt() * eps, atol=1e-6)
            return eps

    class Zero(nn.Module):
        def forward(self, z, model_t, v):
            return torch.zeros_like(z)

    expected = latent_and_recon_bpd(process, x, eps0)
    tol = 2e-6 * abs(expected) + 1e-6
    for model in (X0Oracle(process, x), NoiseOracle()):
        loss = process.loss(model, x, v, torch.Generator().manual_seed(3)).item()
        assert loss == pytest.approx(expected, abs=tol), type(model).__name__
    diffusion = (0.5 * process.w.abs().item() * (eps.double() ** 2).flatten(1).sum(1) / (x[0].numel() * math.log(2)))
    zero = process.loss(Zero(), x, v, torch.Generator().manual_seed(3)).item()
    assert zero - expected == pytest.approx(diffusion.mean().item(), rel=1e-3)


@pytest.mark.parametrize("b", [None, -12.0])
def test_vdm_ancestral_sampling_with_an_x0_oracle_lands_on_x0(b):
    """With a perfect x0 the ancestral chain samples q(z_0 | x0) = N(α0 x0, σ0²): the sample is x0 up to the
    α0 shrink (no final denoise, as the paper) and the last step's noise σ0. Breaks on a wrong step mean or
    noise scale."""
    process = vdm(b)
    torch.manual_seed(0)
    x0 = 0.25 + 0.5 * torch.rand(4, 3, 16, 16)  # away from the clamp at 0 and 1
    out = sample(X0Oracle(process, x0), process, torch.rand(4, SPEC.dim), [0, 1, 2, 3], steps=20)
    g0 = process.gamma(torch.tensor(0.0)).detach()
    alpha0, sigma0 = torch.sigmoid(-g0).sqrt().item(), torch.sigmoid(g0).sqrt().item()
    residual = (out - alpha0 * x0) / sigma0
    assert abs(residual.mean().item()) < 0.1 and residual.std().item() == pytest.approx(1.0, abs=0.08)
    assert (out - x0).abs().max().item() <= (1 - alpha0) + 5 * sigma0
    if b is not None:  # γ(0) = −12: σ0 = 0.0025, the sample is x0 to a hundredth
        assert (out - x0).abs().max().item() < 0.015


def test_vdm_time_input_ends_and_sampling_grid():
    """The network sees 0 at t = 0 and 1000 at t = 1 of the initial schedule (γ_min, γ_max); the input
    follows the learned γ as it drifts. Reverse grid: t = 1, ..., 1/T."""
    process = vdm()
    sched = process.sampling_scheduler(4)
    assert sched.timesteps == [1.0, 0.75, 0.5, 0.25]
    ends = [process.timesteps_for_model(sched, t, 3, torch.device("cpu")) for t in (0.0, 1.0)]
    assert torch.allclose(ends[0], torch.zeros(3), atol=1e-4) and torch.allclose(ends[1], torch.full((3,), 1000.0))
    drifted = vdm(b=-6.0)  # γ(0) one below γ_min: 1/15 of the range below 0
    assert drifted.timesteps_for_model(sched, 0.0, 1, "cpu").item() == pytest.approx(-1000 / 15, rel=1e-5)


# ---- latent intervention ----------------------------------------------------------------------------------------
class SiteModel(nn.Module):
    """The network reduced to its intervention site: it returns its (possibly edited) concept tensor, and a
    prototype's response is the prototype itself, so directions are the given (unnormalised) vectors."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))
        self.embed = nn.Identity()

    def intervention_sites(self, site="auto"):
        return [(self.embed, lambda prototype, t: prototype)]

    def forward(self, x, t, v):
        return self.embed(v)


def hand_edit(e, amplify, suppress, alpha, beta):
    e = e.double()
    for a in amplify:
        a = a.double() / a.double().norm()
        e = e + alpha * (e @ a)[:, None] * a
    for s in suppress:
        s = s.double() / s.double().norm()
        e = e - beta * (e @ s)[:, None] * s
    return e


def test_intervention_is_the_papers_formula_on_random_tensors():
    """e' = e + α (e·â) â per amplify direction, in order, then e'' = e' − β (e'·ŝ) ŝ, â and ŝ unit."""
    torch.manual_seed(0)
    e, t = torch.randn(5, 7), torch.full((5,), 300)
    amplify, suppress = [3 * torch.randn(7), 0.2 * torch.randn(7)], [5 * torch.randn(7)]
    model = SiteModel()
    iv = LatentIntervention(amplify, suppress, alpha=1.7, beta=0.6)
    with iv.attach(model):
        out = model(None, t, e)
    assert torch.allclose(out.double(), hand_edit(e, amplify, suppress, 1.7, 0.6), atol=1e-5)
    assert not torch.allclose(out, e, atol=1e-2)
    assert torch.equal(model(None, t, e), e)  # detached after the context


def test_intervention_leaves_timesteps_outside_t_range_untouched():
    torch.manual_seed(0)
    e, t = torch.randn(4, 7), torch.tensor([100, 400, 600, 900])
    amplify, suppress = [torch.randn(7)], [torch.randn(7)]
    model = SiteModel()
    with LatentIntervention(amplify, suppress, alpha=2.0, beta=0.5, t_range=(400, 600)).attach(model):
        out = model(None, t, e)
    edited = hand_edit(e, amplify, suppress, 2.0, 0.5)
    assert torch.equal(out[[0, 3]], e[[0, 3]])  # outside: bit for bit the un-intervened tensor
    assert torch.allclose(out[[1, 2]].double(), edited[[1, 2]], atol=1e-5)  # the ends are inside

    # on the real network, at its time-dependent block site: the row at t outside the range is unchanged
    net, _ = tiny_model()
    perturbed(net).eval()
    x, tt, v = torch.randn(2, 3, 16, 16), torch.tensor([100, 700]), SPEC.encode(["blue-small"] * 2)
    blue = SPEC.encode(["blue-large"])[0]
    with torch.no_grad():
        plain = net(x, tt, v)
        with LatentIntervention([blue], [], alpha=3.0, beta=0.0, site="blocks", t_range=(500, 1000)).attach(net):
            hooked = net(x, tt, v)
    assert torch.allclose(hooked[0], plain[0], atol=1e-6)
    assert (hooked[1] - plain[1]).abs().mean() > 1e-3


# ---- DDIM --------------------------------------------------------------------------------------------------
def test_ddim_is_deterministic_and_is_not_ancestral_sampling():
    """Same seeds: bitwise the same DDIM samples, and a DDIM step ignores the noise generators (η = 0);
    DDPM's ancestral steps draw from them, so the two samplers differ on the same seeds."""
    model, _ = tiny_model()
    perturbed(model)
    ddim, ddpm = (build_process(fast_cfg(f"diffusion.sampler={s}").diffusion) for s in ("ddim", "ddpm"))
    v, seeds = SPEC.encode(["red-small", "blue-large", "blue-small"]), [4, 5, 6]
    a = sample(model, ddim, v, seeds, steps=4)
    assert torch.equal(a, sample(model, ddim, v, seeds, steps=4))
    # batch independence; DDIM amplifies float-level batch effects a little more than DDPM
    assert (a[1:] - sample(model, ddim, v[1:], seeds[1:], steps=4, batch_size=1)).abs().max() < 1e-3
    assert (a - sample(model, ddpm, v, seeds, steps=4)).abs().mean() > 1e-2

    torch.manual_seed(0)
    x, eps = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)

    def one_step(process, gen_seed):
        sched = process.sampling_scheduler(4)
        gens = [torch.Generator().manual_seed(gen_seed + i) for i in range(2)]
        return process.step(sched, eps, sched.timesteps[0], x, gens)

    assert torch.equal(one_step(ddim, 0), one_step(ddim, 100))
    assert not torch.allclose(one_step(ddpm, 0), one_step(ddpm, 100))

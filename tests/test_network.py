"""The paper's network (model/paper, model/paper_vdm): its size, cost and structure pinned to the paper's,
and the options that make it behave like the paper's (output residual, zero init, GELU, concept init)."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conceptspace.config import compose
from conceptspace.model import ConceptUNet, build_model, count_parameters
from synthetic_shapes import ShapesConfig

SPEC = ShapesConfig().spec
PAPER_PARAMS, PAPER_GFLOP = 10.9e6, 7.0  # paper_setup.md §2.1: sep_mlp CUNet; fwd+bwd per 32x32 image


def paper_model(preset="paper", *overrides):
    cfg = compose([f"model={preset}", *overrides])
    torch.manual_seed(0)
    return build_model(cfg.model, SPEC, 32)


def test_paper_network_has_the_papers_parameters_and_flops():
    for preset in ("paper", "paper_vdm"):
        model = paper_model(preset)
        assert abs(count_parameters(model) - PAPER_PARAMS) / PAPER_PARAMS < 0.10
    x, t, c = torch.randn(1, 3, 32, 32), torch.tensor([500.0]), torch.rand(1, SPEC.dim)
    with FlopCounterMode(display=False) as counter:
        model(x, t, c).square().sum().backward()
    assert abs(counter.get_total_flops() / 1e9 - PAPER_GFLOP) / PAPER_GFLOP < 0.10
    common = paper_model("paper", "model.concept_conditioning=common_linear")
    assert abs(count_parameters(common) - 10.1e6) / 10.1e6 < 0.10  # paper_setup.md §2.1: ≈ 10.1M


def test_paper_structure_matches_the_papers_cunet():
    rows = paper_model().structure_table()
    levels = [r for r in rows if r["level"] != "mid"]
    assert [r["width"] for r in levels] == [64, 128, 256]
    assert all(r["resnets_down"] == 2 and r["resnets_up"] == 2 for r in levels)
    assert [r["down"] for r in levels] == ["2x2 conv, stride 2", "2x2 conv, stride 2", "none"]
    assert rows[-1] == {"level": "mid", "width": 256, "resnets_down": 2, "resnets_up": 0, "down": "", "up": "",
                        "attention": True}
    model = paper_model()
    assert len(model.unet.resnets) == 14 and model.unet.attention.heads == 4
    assert isinstance(model.unet.resnets[0].nonlinearity, torch.nn.GELU)


def test_the_network_predicts_its_input_at_init_as_the_papers():
    """Zero-initialised output conv + the output residual: eps_hat = z_t exactly at init (paper_setup §2.1)."""
    model = paper_model()
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(model(x, torch.tensor([1.0, 400.0, 999.0]), torch.rand(3, SPEC.dim)), x)
    assert all(float(r.conv2.weight.detach().abs().max()) == 0 for r in model.unet.resnets)


def test_concept_init_matches_the_papers_11_input_bound():
    bound = 1 / 11 ** 0.5
    for layer in paper_model()._first_concept_layers():
        top = float(layer.weight.detach().abs().max())
        assert 0.8 * bound < top <= bound + 1e-7
    default = paper_model("paper", "model.concept_init=default")._first_concept_layers()[0]
    assert float(default.weight.detach().abs().max()) > bound * 1.3  # 1/√4: 1.66x the paper's


def test_paper_network_round_trips_through_save_pretrained(tmp_path):
    model = paper_model("paper", "model.zero_init=false")  # non-trivial outputs
    model.save_pretrained(tmp_path / "m")
    loaded = ConceptUNet.from_pretrained(tmp_path / "m", low_cpu_mem_usage=False)
    x, t, c = torch.randn(2, 3, 32, 32), torch.tensor([3.0, 700.0]), torch.rand(2, SPEC.dim)
    model.eval(), loaded.eval()
    assert torch.equal(model(x, t, c), loaded(x, t, c)) and loaded.structure == "paper"


@pytest.mark.parametrize("conditioning, site, count", [("per_block", "auto", 14), ("common_linear", "auto", 1),
                                                       ("common_linear", "blocks", 14),
                                                       ("common_zerolinear", "embedding", 1)])
def test_paper_network_intervention_sites(conditioning, site, count):
    model = paper_model("paper", f"model.concept_conditioning={conditioning}")
    sites = model.intervention_sites(site)
    assert len(sites) == count
    module, response = sites[0]
    proto = torch.rand(1, SPEC.dim)
    seen = {}
    handle = module.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    model(torch.randn(1, 3, 32, 32), torch.tensor([5.0]), proto)
    handle.remove()
    assert torch.allclose(seen["out"], response(proto, torch.tensor([5.0])))  # the tensor measured is the one edited


def test_zero_linear_projections_start_at_zero_and_gelu_on_diffusers_wiring():
    model = paper_model("paper", "model.concept_conditioning=common_zerolinear")
    assert all(float(p.weight.detach().abs().max()) == 0 for p in model.unet.concept_projs)
    old = paper_model("diffusers_paper", "model.act_fn=gelu", "model.output_residual=true", "model.zero_init=true")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(old(x, torch.tensor([1.0, 2.0]), torch.rand(2, SPEC.dim)), x)

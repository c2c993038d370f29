"""SplitDrawDropout: the drop rate it says in every one of the four fields a draw is cut into, kept elements
scaled to keep the mean, gradient = mask, reproducible from the global seed, vmap members drawing their own
masks, and the networks using it wherever they hold a dropout."""

import math

import pytest
import torch
from torch import nn
from torch.func import vmap

from conceptspace.dropout import FIELDS, SplitDrawDropout
from tests.helpers import fast_cfg

P = 0.1
P_EFFECTIVE = round(P * FIELDS) / FIELDS  # 3277 / 32768


def test_drop_rate_is_p_in_each_of_a_draws_four_fields():
    torch.manual_seed(0)
    n = 1 << 22
    out = SplitDrawDropout(P).train()(torch.ones(n))
    scale = 1 / (1 - P_EFFECTIVE)
    values = out.unique().tolist()
    assert len(values) == 2 and values[0] == 0 and values[1] == pytest.approx(scale)
    dropped = (out == 0).float().reshape(-1, 4)  # column k: field k of every 64-bit draw
    sigma = math.sqrt(P_EFFECTIVE * (1 - P_EFFECTIVE) / dropped.shape[0])
    for rate in dropped.mean(0).tolist():  # an unmasked sign bit would put a field near 0.55 or 0.0
        assert abs(rate - P_EFFECTIVE) < 5 * sigma
    assert abs(out.mean().item() - 1) < 5 * sigma * scale  # kept elements carry the dropped ones' mass


def test_gradient_is_the_mask_and_dtype_is_kept():
    torch.manual_seed(1)
    x = (torch.rand(4, 8, 16, 16) + 0.5).requires_grad_()
    out = SplitDrawDropout(P).train()(x)
    out.sum().backward()
    assert torch.allclose(x.grad, out.detach() / x.detach())
    assert SplitDrawDropout(P).train()(torch.ones(64, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_masks_follow_the_global_seed():
    drop, x = SplitDrawDropout(P).train(), torch.ones(3, 5, 7)  # an element count not a multiple of 4
    masks = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        masks.append(drop(x))
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])


def test_identity_in_eval_and_at_p_zero():
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(SplitDrawDropout(P).eval()(x), x)
    assert torch.equal(SplitDrawDropout(0.0).train()(x), x)


def test_vmap_members_draw_their_own_masks():
    torch.manual_seed(2)
    out = vmap(SplitDrawDropout(P).train(), randomness="different")(torch.ones(2, 4096))
    assert not torch.equal(out[0] == 0, out[1] == 0)


@pytest.mark.parametrize("model", ["paper", "tiny"])
def test_networks_use_it_for_every_dropout(model):
    from conceptspace.model import build_model
    from synthetic_shapes import ShapesConfig

    cfg = fast_cfg(f"model={model}", "model.dropout=0.1")
    net = build_model(cfg.model, ShapesConfig.from_cfg(cfg.data).spec, cfg.data.image_size)
    drops = [m for m in net.modules() if isinstance(m, nn.Dropout) and m.p > 0]
    assert drops and all(type(m) is SplitDrawDropout for m in drops)

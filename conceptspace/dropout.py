"""Dropout whose CPU mask costs a quarter of the random draws.

torch's CPU dropout draws one Mersenne Twister number per element (`aten::bernoulli_`): 12% of a bf16
paper-network step on 2 cores (bench/profile_step.py). Here every 64-bit draw gives four 15-bit fields and
an element is dropped when its field is below round(p * 2^15), so the drop probability is p to within 2^-16
(0.1 -> 3277 / 32768 = 0.100006) and the kept elements are scaled by exactly 1 / (1 - that probability).
Off the CPU (where torch's dropout is a fused kernel), in eval mode and at p = 0 it is `nn.Dropout` itself.
"""

from __future__ import annotations

import torch
from torch import nn

FIELD_BITS = 15  # 4 x 15 bits of each draw from [0, 2^63 - 1)
FIELDS = 2**FIELD_BITS


class SplitDrawDropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        threshold = round(self.p * FIELDS)
        if not self.training or x.device.type != "cpu" or not 0 < threshold < FIELDS:
            return super().forward(x)
        n = x.numel()
        # a random factory, not an in-place draw: under vmap(randomness="different") each member gets its own
        draws = torch.randint(0, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64)
        fields = draws.view(torch.int16)[:n].view(x.shape) & (FIELDS - 1)
        mask = (fields >= threshold).to(x.dtype).mul_(FIELDS / (FIELDS - threshold))
        return x.mul_(mask) if self.inplace else x * mask


def use_split_draw_dropout(model: nn.Module) -> nn.Module:
    """Swap every `nn.Dropout` with p > 0 in `model` (diffusers' resnets hold one each) for SplitDrawDropout."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if type(child) is nn.Dropout and child.p > 0:
                setattr(module, name, SplitDrawDropout(child.p, child.inplace))
    return model

"""The concept classifier behind the learned readout (paper_setup.md §3.1), as a diffusers model.

The paper's classifier is a small U-Net (~0.23 M parameters) followed by a global max-pool and a small head
with one 2-way softmax per concept. This is a plain conv net of the same size and the same ending: residual
blocks (GroupNorm -> GELU -> conv3x3, twice) at each resolution, stride-2 convs between resolutions, global
max-pool over H x W, head GroupNorm -> Linear -> GELU -> Linear. Max-pooling makes it size-agnostic (32 px
shapes, larger CelebA crops). The ConceptSpec it was trained for is part of its config, so a saved probe
says which concepts and values its outputs mean (`save_pretrained` / `from_pretrained`: config.json +
safetensors).
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from conceptspace.concepts import ConceptSpec
from conceptspace.errors import UserError


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, channels), nn.GELU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels), nn.GELU(), nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x):
        return x + self.body(x)


class ConceptClassifier(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, spec: dict, channels: tuple[int, ...] = (32, 64, 64), norm_groups: int = 4):
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels or any(c < 1 or c % norm_groups for c in channels):
            raise UserError(f"probe.channels: got {channels}; allowed: positive multiples of "
                            f"probe.norm_groups={norm_groups}")
        self._spec = ConceptSpec.from_dict(spec)
        layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 3, padding=1)]
        for i, width in enumerate(channels):
            if i:  # halve the resolution between levels
                layers.append(nn.Conv2d(channels[i - 1], width, 3, stride=2, padding=1))
            layers.append(_ResidualBlock(width, norm_groups))
        layers += [nn.GroupNorm(norm_groups, channels[-1]), nn.GELU()]
        self.features = nn.Sequential(*layers)
        width, k = channels[-1], len(self._spec.concepts)
        self.head = nn.Sequential(nn.GroupNorm(norm_groups, width), nn.Linear(width, width), nn.GELU(),
                                  nn.Linear(width, 2 * k))

    @property
    def spec(self) -> ConceptSpec:
        return self._spec

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, 3, H, W) in [0, 1] -> logits (N, k, 2): one 2-way softmax per concept, spec order."""
        features = self.features(images * 2 - 1).amax(dim=(2, 3))  # global max-pool
        return self.head(features).view(images.shape[0], len(self._spec.concepts), 2)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, k) P(value index 1) per concept."""
        return self(images).softmax(-1)[..., 1]

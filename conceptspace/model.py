"""ConceptUNet: a concept MLP feeding diffusers' UNet2DModel through its identity class embedding.

The concept vector (layout owned by the ConceptSpec) goes through a small MLP to the time-embedding width
and is added to the time embedding (`class_embed_type="identity"`). The MLP output is an explicit tensor,
so latent interventions can edit it through `embedding_hook`. The network knows nothing about diffusion.
"""

from __future__ import annotations

from typing import Callable

import torch
from diffusers import ModelMixin, UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from .concepts import ConceptSpec

# (concept embedding (B, E), timesteps (B,)) -> edited embedding
EmbeddingHook = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ConceptUNet(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(
        self,
        concept_spec: dict,
        sample_size: int = 32,
        block_out_channels: tuple = (64, 128, 256),
        layers_per_block: int = 2,
        down_block_types: tuple = ("DownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types: tuple = ("UpBlock2D", "UpBlock2D", "UpBlock2D"),
        add_attention: bool = True,  # the mid block's self-attention
        attention_head_dim: int = 8,
        norm_num_groups: int = 8,
        dropout: float = 0.1,
        concept_hidden: int | None = None,
    ):
        super().__init__()
        self.spec = ConceptSpec.from_dict(concept_spec)
        embed_dim = 4 * block_out_channels[0]  # diffusers' time-embedding width
        hidden = concept_hidden or embed_dim
        self.concept_mlp = nn.Sequential(nn.Linear(self.spec.dim, hidden), nn.SiLU(), nn.Linear(hidden, embed_dim))
        self.unet = UNet2DModel(
            sample_size=sample_size, in_channels=3, out_channels=3, block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block, down_block_types=tuple(down_block_types),
            up_block_types=tuple(up_block_types), add_attention=add_attention,
            attention_head_dim=attention_head_dim, norm_num_groups=norm_num_groups, dropout=dropout,
            class_embed_type="identity",
        )

    def concept_embedding(self, concepts: torch.Tensor) -> torch.Tensor:
        return self.concept_mlp(concepts)

    def forward(self, x: torch.Tensor, t: torch.Tensor, concepts: torch.Tensor,
                embedding_hook: EmbeddingHook | None = None) -> torch.Tensor:
        """Noise prediction for noisy images x (B, 3, S, S) at timesteps t (B,) given concept vectors (B, dim)."""
        emb = self.concept_embedding(concepts)
        if embedding_hook is not None:
            emb = embedding_hook(emb, t)
        return self.unet(x, t, class_labels=emb).sample


def build_model(model_cfg, spec: ConceptSpec, image_size: int) -> ConceptUNet:
    kwargs = {k: (tuple(v) if isinstance(v, (list, tuple)) or hasattr(v, "__len__") and not isinstance(v, str)
                  else v) for k, v in dict(model_cfg).items() if k != "preset"}
    return ConceptUNet(concept_spec=spec.to_dict(), sample_size=image_size, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

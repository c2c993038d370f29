"""ConceptUNet: a concept MLP feeding diffusers' UNet2DModel through its identity class embedding.

The concept vector (layout owned by the ConceptSpec) goes through a small MLP to the time-embedding width
and is added to the time embedding (`class_embed_type="identity"`). The network knows nothing about
diffusion.

`concept_conditioning="per_block"` is the paper's `sep_mlp` instead: every resnet block has its own MLP
(Linear-GELU-Linear-GELU) from the raw concept vector to a channel bias, added where the block adds its
time projection (after conv1); there is then no shared concept embedding.

`intervention_sites(site)` is the one place that says which tensors a latent intervention may edit, for
either conditioning (see there); interventions hook those modules and never special-case the network.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
from diffusers import ModelMixin, UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from .concepts import ConceptSpec
from .errors import UserError

SITES = ("auto", "embedding", "blocks")
# (prototype concept vectors (1, dim), timesteps (B,)) -> the site module's output for them, (1 or B, C)
SiteResponse = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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
        concept_conditioning: str = "shared",  # shared: one MLP into the time embedding | per_block (paper)
    ):
        super().__init__()
        self.spec = ConceptSpec.from_dict(concept_spec)
        if concept_conditioning not in ("shared", "per_block"):
            raise UserError(f"model.concept_conditioning: got {concept_conditioning!r}; allowed: "
                            "['shared', 'per_block']")
        self.per_block = concept_conditioning == "per_block"
        embed_dim = 4 * block_out_channels[0]  # diffusers' time-embedding width
        hidden = concept_hidden or embed_dim
        self.concept_mlp = None if self.per_block else \
            nn.Sequential(nn.Linear(self.spec.dim, hidden), nn.SiLU(), nn.Linear(hidden, embed_dim))
        self.unet = UNet2DModel(
            sample_size=sample_size, in_channels=3, out_channels=3, block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block, down_block_types=tuple(down_block_types),
            up_block_types=tuple(up_block_types), add_attention=add_attention,
            attention_head_dim=attention_head_dim, norm_num_groups=norm_num_groups, dropout=dropout,
            class_embed_type=None if self.per_block else "identity",
        )
        self.block_mlps = None
        self._block_biases = None
        if self.per_block:
            projections = self._time_projections()
            self.block_mlps = nn.ModuleList(
                nn.Sequential(nn.Linear(self.spec.dim, p.out_features), nn.GELU(),
                              nn.Linear(p.out_features, p.out_features), nn.GELU()) for p in projections)
            for i, p in enumerate(projections):  # bound method + index: survives deepcopy (EMA copies)
                p.register_forward_hook(functools.partial(self._add_block_bias, i))

    def _add_block_bias(self, i, module, inputs, output):
        return output + self._block_biases[i]

    def intervention_sites(self, site: str = "auto") -> list[tuple[nn.Module, SiteResponse]]:
        """The tensors a latent intervention may edit, as (module whose output is edited, response), where
        response(prototype, t) is that module's output when the prompt is the prototype input at timestep t:
        the tensor a direction is measured on is the tensor that is edited.

            embedding  the shared concept embedding (the concept MLP's output; shared models only)
            blocks     each resnet block's concept tensor: per-block models, the block's own concept MLP
                       output (the paper's site); shared models, the block's projection of the embedding,
                       time_emb_proj(silu(time embedding(t) + concept embedding)), so it depends on t
            auto       blocks on per-block models, embedding on shared ones
        A new conditioning (e.g. the paper network's common_linear projections) adds its sites here.
        """
        if site not in SITES:
            raise UserError(f"intervention.site: got {site!r}; allowed: {list(SITES)}")
        if site == "auto":
            site = "blocks" if self.per_block else "embedding"
        if self.per_block:
            if site == "embedding":
                raise UserError("intervention.site: 'embedding' needs a shared concept embedding, but this model "
                                "has per-block concept MLPs (model.concept_conditioning=per_block); allowed: "
                                "['auto', 'blocks']")
            return [(mlp, functools.partial(_block_mlp_response, mlp)) for mlp in self.block_mlps]
        if site == "embedding":
            return [(self.concept_mlp, lambda prototype, t: self.concept_mlp(prototype))]
        return [(proj, functools.partial(self._projection_response, proj)) for proj in self._time_projections()]

    def _time_projections(self) -> list[nn.Module]:
        return [m for n, m in self.unet.named_modules() if n.endswith("time_emb_proj")]

    def _projection_response(self, proj: nn.Module, prototype: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What a resnet block's time_emb_proj outputs for this prompt, exactly as diffusers computes it:
        UNet2DModel adds the identity class embedding to the time embedding, the block applies SiLU."""
        unet = self.unet
        t = t.reshape(-1)
        time_emb = unet.time_embedding(unet.time_proj(t).to(dtype=unet.dtype))
        return proj(nn.functional.silu(time_emb + self.concept_mlp(prototype)))

    def concept_embedding(self, concepts: torch.Tensor) -> torch.Tensor:
        if self.per_block:
            raise UserError("this model has per-block concept MLPs and no shared concept embedding")
        return self.concept_mlp(concepts)

    def forward(self, x: torch.Tensor, t: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
        """Noise prediction for noisy images x (B, 3, S, S) at timesteps t (B,) given concept vectors (B, dim)."""
        if self.per_block:
            self._block_biases = [mlp(concepts) for mlp in self.block_mlps]
            try:
                return self.unet(x, t).sample
            finally:
                self._block_biases = None
        return self.unet(x, t, class_labels=self.concept_embedding(concepts)).sample


def _block_mlp_response(mlp: nn.Module, prototype: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return mlp(prototype)  # a per-block concept MLP sees the concept vector only: independent of t


def build_model(model_cfg, spec: ConceptSpec, image_size: int) -> ConceptUNet:
    kwargs = {k: (tuple(v) if isinstance(v, (list, tuple)) or hasattr(v, "__len__") and not isinstance(v, str)
                  else v) for k, v in dict(model_cfg).items() if k != "preset"}
    return ConceptUNet(concept_spec=spec.to_dict(), sample_size=image_size, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""ConceptUNet: a concept MLP feeding diffusers' UNet2DModel through its identity class embedding.

The concept vector (layout owned by the ConceptSpec) goes through a small MLP to the time-embedding width
and is added to the time embedding (`class_embed_type="identity"`). The network knows nothing about
diffusion.

`concept_conditioning="per_block"` is the paper's `sep_mlp` instead: every resnet block has its own MLP
(Linear-GELU-Linear-GELU) from the raw concept vector to a channel bias, added where the block adds its
time projection (after conv1); there is then no shared concept embedding.

`structure="paper"` replaces UNet2DModel's wiring by the paper's CUNet wiring of diffusers' blocks
(conceptspace/cunet.py: 14 resnets, 2x2 resampling, per-block time and concept projections), with the
conditionings per_block (sep_mlp), common_linear and common_zerolinear. Options on either structure: the
paper's output residual (eps_hat = net(x_t) + x_t), zero-initialised output convs, GELU, the concept-MLP
init of the paper's 11-d input, and init_scale.

`intervention_sites(site)` is the one place that says which tensors a latent intervention may edit, for
either conditioning (see there); interventions hook those modules and never special-case the network.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
from diffusers import ModelMixin, UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from . import faults
from .concepts import ConceptSpec
from .cunet import CONDITIONINGS as PAPER_CONDITIONINGS
from .cunet import PaperBackbone
from .dropout import use_split_draw_dropout
from .errors import UserError

SITES = ("auto", "embedding", "blocks")
STRUCTURES = ("diffusers", "paper")

PAPER_INPUT_DIM = 11  # the paper's conditioning vector: shape 2, x, y, colour 3, size 1, bg 3
# (prototype concept vectors (1, dim), timesteps (B,)) -> the site module's output for them, (1 or B, C)
SiteResponse = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class FP32InputConv(nn.Conv2d):
    """The network's input convolution in fp32 inside bf16 autocast (`train.precision=bf16_fp32_input`). bf16
    rounds an image value near 1 by up to 2^-9; the VDM's noisy image near t = 0 carries less noise than
    that, which only the fp32 values still hold (docs/precision_study.md, "The VDM")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())


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
        concept_conditioning: str = "shared",  # shared | per_block (paper) | common_linear | common_zerolinear
        structure: str = "diffusers",  # diffusers: UNet2DModel's wiring | paper: the CUNet's (cunet.py)
        act_fn: str = "silu",
        output_residual: bool = False,  # eps_hat = net(x_t) + x_t, as the paper's network
        zero_init: bool = False,  # zero-initialise the output conv and every resnet's second conv
        concept_init: str = "default",  # default | paper: first concept layer as if fed the paper's 11-d vector
        init_scale: float = 1.0,  # every parameter multiplied by it (the paper's CelebA runs: 0.02)
    ):
        super().__init__()
        self.spec = ConceptSpec.from_dict(concept_spec)
        check_options(structure, concept_conditioning, act_fn, concept_init)
        self.structure = structure
        self.per_block = concept_conditioning != "shared"  # no shared embedding added to the time embedding
        self.output_residual = output_residual
        self.concept_mlp, self.block_mlps, self._block_biases = None, None, None
        if structure == "paper":
            self.unet = PaperBackbone(self.spec.dim, tuple(block_out_channels), layers_per_block, add_attention,
                                      block_out_channels[-1] // attention_head_dim, norm_num_groups, dropout, act_fn,
                                      concept_conditioning, zero_init)
        else:
            self._build_diffusers(sample_size, block_out_channels, layers_per_block, down_block_types,
                                  up_block_types, add_attention, attention_head_dim, norm_num_groups, dropout,
                                  concept_hidden, act_fn, zero_init)
        use_split_draw_dropout(self.unet)  # a quarter of torch's random draws on the CPU (dropout.py)
        if concept_init == "paper":
            self._paper_concept_init()
        if init_scale != 1.0:
            with torch.no_grad():
                for p in self.parameters():
                    p.mul_(init_scale)

    def _build_diffusers(self, sample_size, block_out_channels, layers_per_block, down_block_types, up_block_types,
                         add_attention, attention_head_dim, norm_num_groups, dropout, concept_hidden, act_fn,
                         zero_init):
        embed_dim = 4 * block_out_channels[0]  # diffusers' time-embedding width
        hidden = concept_hidden or embed_dim
        if not self.per_block:
            self.concept_mlp = nn.Sequential(nn.Linear(self.spec.dim, hidden), nn.SiLU(), nn.Linear(hidden, embed_dim))
        self.unet = UNet2DModel(
            sample_size=sample_size, in_channels=3, out_channels=3, block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block, down_block_types=tuple(down_block_types),
            up_block_types=tuple(up_block_types), add_attention=add_attention,
            attention_head_dim=attention_head_dim, norm_num_groups=norm_num_groups, dropout=dropout,
            class_embed_type=None if self.per_block else "identity", act_fn=act_fn,
        )
        if self.per_block:
            projections = self._time_projections()
            self.block_mlps = nn.ModuleList(
                nn.Sequential(nn.Linear(self.spec.dim, p.out_features), nn.GELU(),
                              nn.Linear(p.out_features, p.out_features), nn.GELU()) for p in projections)
            for i, p in enumerate(projections):  # bound method + index: survives deepcopy (EMA copies)
                p.register_forward_hook(functools.partial(self._add_block_bias, i))
        if zero_init:
            zero = [self.unet.conv_out] + [m.conv2 for m in self.unet.modules() if isinstance(m, ResnetBlock2D)]
            with torch.no_grad():
                for conv in zero:
                    for p in conv.parameters():
                        p.zero_()

    def _first_concept_layers(self) -> list[nn.Linear]:
        if self.structure == "paper":
            if self.unet.concept_common is not None:
                return [self.unet.concept_common[0]]
            return [proj[0] for proj in self.unet.concept_projs]
        return [self.concept_mlp[0]] if self.concept_mlp is not None else [mlp[0] for mlp in self.block_mlps]

    def _paper_concept_init(self):
        """PyTorch's default Linear init draws from ±1/sqrt(inputs): a dim-wide vector starts sqrt(11/dim) times
        larger than the paper's 11-d one (1.66x for 4-d). Rescale to the paper's bound."""
        scale = (self.spec.dim / PAPER_INPUT_DIM) ** 0.5
        with torch.no_grad():
            for layer in self._first_concept_layers():
                layer.weight.mul_(scale)
                layer.bias.mul_(scale)

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
        if self.structure == "paper":
            return self._paper_sites(site)
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

    def _paper_sites(self, site: str):
        """The paper network: `embedding` is the shared concept MLP's output (common_* conditionings: the
        tensor the paper's own intervention edits), `blocks` every block's concept projection; auto picks
        embedding where there is one."""
        common = self.unet.concept_common
        if site == "auto":
            site = "blocks" if common is None else "embedding"
        if site == "embedding":
            if common is None:
                raise UserError("intervention.site: 'embedding' needs a shared concept embedding, but this model "
                                "has per-block concept MLPs (model.concept_conditioning=per_block); allowed: "
                                "['auto', 'blocks']")
            return [(common, lambda prototype, t: common(prototype))]
        return [(proj, functools.partial(_paper_block_response, self.unet, proj)) for proj in self.unet.concept_projs]

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
        if self.structure == "paper" and self.unet.concept_common is not None:
            return self.unet.concept_common(concepts)
        if self.per_block:
            raise UserError("this model has per-block concept MLPs and no shared concept embedding")
        return self.concept_mlp(concepts)

    def keep_input_conv_fp32(self) -> "ConceptUNet":
        """Run the input convolution in fp32 under bf16 autocast. Only its class changes: the same parameter
        objects (an optimizer built on them keeps them), the same state-dict names, so snapshots load in any
        precision. Applied where the precision is known: training (member.py) and offline tracking."""
        self.unet.conv_in.__class__ = FP32InputConv
        return self

    def save_config(self, save_directory, push_to_hub: bool = False, **kwargs):
        """save_pretrained writes the config first, then the weights: a fault point between the two."""
        super().save_config(save_directory, push_to_hub=push_to_hub, **kwargs)
        faults.point("snapshot.after_config")

    def forward(self, x: torch.Tensor, t: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
        """Noise prediction for noisy images x (B, 3, S, S) at timesteps t (B,) given concept vectors (B, dim)."""
        if self.structure == "paper":
            out = self.unet(x, t, concepts)
        elif self.per_block:
            self._block_biases = [mlp(concepts) for mlp in self.block_mlps]
            try:
                out = self.unet(x, t).sample
            finally:
                self._block_biases = None
        else:
            out = self.unet(x, t, class_labels=self.concept_embedding(concepts)).sample
        return out + x if self.output_residual else out

    def structure_table(self) -> list[dict]:
        """Per level: resnets down and up, width, attention, resampling (bench/bench_network.py prints it)."""
        if self.structure == "paper":
            return self.unet.structure()
        rows = []
        for i, (down, up) in enumerate(zip(self.unet.down_blocks, reversed(self.unet.up_blocks))):
            conv = down.downsamplers[0].conv if down.downsamplers else None
            rows.append({"level": i, "width": down.resnets[-1].out_channels, "resnets_down": len(down.resnets),
                         "resnets_up": len(up.resnets),
                         "down": "none" if conv is None else f"{conv.kernel_size[0]}x{conv.kernel_size[1]} conv, "
                                                             f"stride {conv.stride[0]}",
                         "up": "none" if not up.upsamplers else "nearest x2 + 3x3 conv"})
        mid = self.unet.mid_block
        rows.append({"level": "mid", "width": mid.resnets[0].out_channels, "resnets_down": len(mid.resnets),
                     "resnets_up": 0, "down": "", "up": "", "attention": bool(mid.attentions and mid.attentions[0])})
        return rows


def check_options(structure: str, conditioning: str, act_fn: str, concept_init: str) -> None:
    if structure not in STRUCTURES:
        raise UserError(f"model.structure: got {structure!r}; allowed: {list(STRUCTURES)}")
    allowed = list(PAPER_CONDITIONINGS) if structure == "paper" else ["shared", "per_block"]
    if conditioning not in allowed:
        raise UserError(f"model.concept_conditioning: got {conditioning!r}; allowed with model.structure="
                        f"{structure}: {allowed}")
    if act_fn not in ("silu", "gelu"):
        raise UserError(f"model.act_fn: got {act_fn!r}; allowed: ['silu', 'gelu']")
    if concept_init not in ("default", "paper"):
        raise UserError(f"model.concept_init: got {concept_init!r}; allowed: ['default', 'paper']")


def _paper_block_response(backbone: PaperBackbone, proj: nn.Module, prototype, t) -> torch.Tensor:
    return proj(backbone.concept_input(prototype))  # the concept projection never sees t


def _block_mlp_response(mlp: nn.Module, prototype: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return mlp(prototype)  # a per-block concept MLP sees the concept vector only: independent of t


def build_model(model_cfg, spec: ConceptSpec, image_size: int) -> ConceptUNet:
    kwargs = {k: (tuple(v) if isinstance(v, (list, tuple)) or hasattr(v, "__len__") and not isinstance(v, str)
                  else v) for k, v in dict(model_cfg).items() if k != "preset"}
    return ConceptUNet(concept_spec=spec.to_dict(), sample_size=image_size, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

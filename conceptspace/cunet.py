"""The paper's CUNet wiring (paper_setup.md §2.1; the authors' mltools CUNet) built from diffusers' blocks.

diffusers' UNet2DModel cannot take this structure: its up blocks hold layers_per_block + 1 resnets, each
concatenating one skip (17 resnets for the paper's 14), and it resamples with 3x3 convolutions. Here the
blocks are diffusers' own (ResnetBlock2D, Downsample2D, Upsample2D, Attention), wired as the paper's:

    conv_in -> per level: resnets x L, then (not last) skip = h, 2x2 stride-2 conv
            -> mid: resnet, 4-head self-attention, resnet
            -> per level (reversed): resnets x L (the first also takes the skip concatenated before it),
               then (not last) 2x2 transposed conv to the next width, concat the skip
            -> GroupNorm, act, zero-init conv_out                        (the caller adds + x_t)

Conditioning enters every resnet as a channel bias after conv1 (diffusers' time_emb_proj slot, here an
identity): the sum of a time projection and a concept projection, one pair per block.
    per_block          (the paper's sep_mlp)  time: MLP(256->C->C), concept: MLP(dim->C->C), GELUs
    common_linear      one shared concept MLP dim->64->64 (GELUs), then per block Linear(64, C); time Linear
    common_zerolinear  the same with zero-initialised per-block projections (the paper's CelebA runs)
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention
from diffusers.models.downsampling import Downsample2D
from diffusers.models.embeddings import Timesteps
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.upsampling import Upsample2D
from torch import nn

CONDITIONINGS = ("per_block", "common_linear", "common_zerolinear")
TIME_EMBED, TIME_HIDDEN, COMMON_DIM = 64, 256, 64  # the paper's t_embedding_dim, 4x it, v_embedding_dim


def mlp(d_in: int, d_out: int, act) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), act(), nn.Linear(d_out, d_out), act())


def zeroed(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class PaperBackbone(nn.Module):
    def __init__(self, concept_dim: int, channels=(64, 128, 256), layers_per_block: int = 2,
                 add_attention: bool = True, attention_heads: int = 4, groups: int = 8, dropout: float = 0.1,
                 act_fn: str = "gelu", conditioning: str = "per_block", zero_init: bool = True):
        super().__init__()
        act = {"gelu": nn.GELU, "silu": nn.SiLU}[act_fn]
        self.conditioning = conditioning
        self.time_proj = Timesteps(TIME_EMBED, flip_sin_to_cos=False, downscale_freq_shift=1)  # DDPM's sinusoid
        self.time_mlp = mlp(TIME_EMBED, TIME_HIDDEN, act)
        self.concept_common = None if conditioning == "per_block" else mlp(concept_dim, COMMON_DIM, act)
        concept_in = concept_dim if conditioning == "per_block" else COMMON_DIM

        def resnet(c_in, c_out):
            block = ResnetBlock2D(in_channels=c_in, out_channels=c_out, temb_channels=c_out, groups=groups,
                                  eps=1e-6, non_linearity=act_fn, dropout=dropout, skip_time_act=True)
            block.time_emb_proj = nn.Identity()  # the bias arrives already projected, per block
            if zero_init:
                zeroed(block.conv2)
            return block

        def projections(width):
            if conditioning == "per_block":
                return mlp(TIME_HIDDEN, width, act), mlp(concept_in, width, act)
            t, c = nn.Linear(TIME_HIDDEN, width), nn.Linear(concept_in, width)
            return (zeroed(t), zeroed(c)) if conditioning == "common_zerolinear" else (t, c)

        self.conv_in = nn.Conv2d(3, channels[0], 3, padding=1)
        self.resnets, widths = nn.ModuleList(), []
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        c_in = channels[0]
        for i, c in enumerate(channels):  # down
            for _ in range(layers_per_block):
                self.resnets.append(resnet(c_in, c))
                widths.append(c)
                c_in = c
            last = i == len(channels) - 1
            self.downs.append(nn.Identity() if last else
                              Downsample2D(c, use_conv=True, kernel_size=2, padding=0, name="op"))
        mid = channels[-1]
        for _ in range(2):  # mid: resnet, attention (between them), resnet
            self.resnets.append(resnet(mid, mid))
            widths.append(mid)
        self.attention = Attention(mid, heads=attention_heads, dim_head=mid // attention_heads, bias=True,
                                   norm_num_groups=groups, eps=1e-6, residual_connection=True,
                                   upcast_softmax=True, _from_deprecated_attn_block=True) if add_attention else None
        skip = 0
        for i in reversed(range(len(channels))):  # up
            c, c_next = channels[i], channels[max(i - 1, 0)]
            for j in range(layers_per_block):
                self.resnets.append(resnet(c + (skip if j == 0 else 0), c))
                widths.append(c)
            self.ups.append(nn.Identity() if i == 0 else
                            Upsample2D(c, use_conv_transpose=True, out_channels=c_next, kernel_size=2, padding=0))
            skip = c_next
        pairs = [projections(w) for w in widths]
        self.time_projs = nn.ModuleList(p[0] for p in pairs)
        self.concept_projs = nn.ModuleList(p[1] for p in pairs)
        self.norm_out = nn.GroupNorm(groups, channels[0], eps=1e-6)
        self.act_out = act()
        self.conv_out = nn.Conv2d(channels[0], 3, 3, padding=1)
        if zero_init:
            zeroed(self.conv_out)
        self.levels, self.layers = len(channels), layers_per_block

    def concept_input(self, concepts: torch.Tensor) -> torch.Tensor:
        """What the per-block concept projections read: the raw vector, or the shared MLP's output."""
        return concepts if self.concept_common is None else self.concept_common(concepts)

    def forward(self, x: torch.Tensor, t: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t.reshape(-1)
        t_cond = self.time_mlp(self.time_proj(t).to(x.dtype))
        c_in = self.concept_input(concepts)
        biases = iter([tp(t_cond) + cp(c_in) for tp, cp in zip(self.time_projs, self.concept_projs)])
        blocks = iter(self.resnets)
        h, skips = self.conv_in(x), []
        for i, down in enumerate(self.downs):
            for _ in range(self.layers):
                h = next(blocks)(h, next(biases))
            if i < self.levels - 1:
                skips.append(h)
                h = down(h)
        h = next(blocks)(h, next(biases))
        if self.attention is not None:
            h = self.attention(h)
        h = next(blocks)(h, next(biases))
        for up in self.ups:
            for _ in range(self.layers):
                h = next(blocks)(h, next(biases))
            if skips:
                h = torch.cat([up(h), skips.pop()], dim=1)
        return self.conv_out(self.act_out(self.norm_out(h)))

    def structure(self) -> list[dict]:
        """Per level: resnets down / up, width, attention, resampling (for the side-by-side with the paper)."""
        rows = []
        for i in range(self.levels):
            down = self.downs[i]
            rows.append({"level": i, "width": self.resnets[i * self.layers].out_channels,
                         "resnets_down": self.layers, "resnets_up": self.layers,
                         "down": "none" if isinstance(down, nn.Identity) else f"{down.conv.kernel_size[0]}x"
                                 f"{down.conv.kernel_size[1]} conv, stride 2",
                         "up": "none" if i == 0 else "2x2 transposed conv"})
        rows.append({"level": "mid", "width": self.resnets[self.levels * self.layers].out_channels,
                     "resnets_down": 2, "resnets_up": 0, "down": "", "up": "",
                     "attention": self.attention is not None})
        return rows

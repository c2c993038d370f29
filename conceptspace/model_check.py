"""Every model setting checked against what diffusers' UNet2DModel will accept, before a run dir exists
(one line naming the field and what is allowed, instead of a diffusers ValueError deep inside Hydra)."""

from __future__ import annotations

from .errors import UserError

DOWN_BLOCKS = ("DownBlock2D", "AttnDownBlock2D")
UP_BLOCKS = ("UpBlock2D", "AttnUpBlock2D")


def positive_int(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{field}: got {value!r}; allowed: an integer >= 1")
    return value


def check(cfg) -> None:
    from .model import check_options

    m = cfg.model
    check_options(m.structure, m.concept_conditioning, m.act_fn, m.concept_init)
    if isinstance(m.output_residual, str) or isinstance(m.zero_init, str):
        raise UserError("model.output_residual / model.zero_init: allowed: true or false")
    if not float(m.init_scale) > 0:
        raise UserError(f"model.init_scale: got {m.init_scale!r}; allowed: a number > 0")
    channels = list(m.block_out_channels)
    if not channels:
        raise UserError("model.block_out_channels: got []; allowed: a non-empty list of integers >= 1")
    for c in channels:
        positive_int(c, "model.block_out_channels")
    for field, allowed in (("down_block_types", DOWN_BLOCKS), ("up_block_types", UP_BLOCKS)):
        types = list(m[field])
        if len(types) != len(channels):
            raise UserError(f"model.{field}: got {len(types)} blocks for {len(channels)} model.block_out_channels "
                            f"{channels}; allowed: one block type per channel count")
        bad = [t for t in types if t not in allowed]
        if bad:
            raise UserError(f"model.{field}: unknown {bad}; allowed: {list(allowed)}")
    positive_int(m.layers_per_block, "model.layers_per_block")
    groups = positive_int(m.norm_num_groups, "model.norm_num_groups")
    indivisible = [c for c in channels if c % groups]
    if indivisible:
        raise UserError(f"model.norm_num_groups: got {groups}, which does not divide the channel counts "
                        f"{indivisible}; allowed: a common divisor of model.block_out_channels {channels}")
    head = positive_int(m.attention_head_dim, "model.attention_head_dim")
    uses_attention = m.add_attention or any(t.startswith("Attn") for t in [*m.down_block_types, *m.up_block_types])
    if uses_attention and channels[-1] % head:
        raise UserError(f"model.attention_head_dim: got {head}, which does not divide the attention width "
                        f"{channels[-1]}; allowed: a divisor of model.block_out_channels[-1]")
    if not 0 <= float(m.dropout) < 1:
        raise UserError(f"model.dropout: got {m.dropout!r}; allowed: a number in [0, 1)")
    if m.concept_hidden is not None:
        positive_int(m.concept_hidden, "model.concept_hidden")
    size = cfg.data.image_size
    if size % 2 ** (len(channels) - 1):
        raise UserError(f"data.image_size: got {size}, which {len(channels) - 1} downsamplings do not divide; "
                        f"allowed: a multiple of {2 ** (len(channels) - 1)}")

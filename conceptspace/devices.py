"""Choosing the device and the precision from config (`device: auto|cpu|cuda[:N]`, `precision: auto|fp32|bf16`)."""

from __future__ import annotations

import torch

from .errors import UserError


def resolve_device(name: str) -> torch.device:
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device: got {name!r} but no CUDA device is available; allowed here: ['auto', 'cpu']")
    return torch.device(name)


def use_bf16(precision: str, device: torch.device) -> bool:
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")

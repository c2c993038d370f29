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


# Formulations that `precision: auto` keeps in fp32: in the VDM, once the learned γ(0) falls below about
# −11.5, bf16 rounding of the noisy image is as large as the noise itself (σ₀ ≈ 3e-3 against bf16's 2^-8).
FP32_BY_DEFAULT = ("vdm",)


def use_bf16(precision: str, device: torch.device, diffusion: str = "ddpm") -> bool:
    if precision == "auto":
        return device.type == "cuda" and diffusion not in FP32_BY_DEFAULT
    return precision == "bf16"

"""Choosing the device and the precision from config (`device: auto|cpu|cuda[:N]`,
`precision: auto|fp32|bf16|bf16_fp32_input`)."""

from __future__ import annotations

import os

import torch

from .errors import UserError


def configure_threads() -> int:
    """Intra-op threads = the cores this process may run on (its affinity mask, which a container or
    `taskset` narrows, where torch's default counts the machine's physical cores); an explicit
    OMP_NUM_THREADS wins. Returns the thread count."""
    if "OMP_NUM_THREADS" not in os.environ and hasattr(os, "sched_getaffinity"):
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    return torch.get_num_threads()


def resolve_device(name: str) -> torch.device:
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device: got {name!r} but no CUDA device is available; allowed here: ['auto', 'cpu']")
    return torch.device(name)


BF16_PRECISIONS = ("bf16", "bf16_fp32_input")  # the explicit settings that run bf16 autocast
PRECISIONS = ("auto", "fp32", *BF16_PRECISIONS)
# What `precision: auto` runs per formulation where bf16 is native (docs/precision_study.md). The VDM: plain
# bf16 rounds the noisy image by up to 2^-9, more than its noise near t = 0 once γ(0) has drifted low (+0.11
# bits/dim of final loss, 5x the seed spread, in a 3-seed probe); with the input convolution in fp32, 5 seeds
# from the default γ(0) = −5 to 9k steps kept γ(0)'s drift, the loss and the learning times within fp32's
# seed-to-seed spread, by a rule written down before the last 2 seeds ran ("The VDM gate").
AUTO_BF16 = {"ddpm": "bf16", "vdm": "bf16_fp32_input"}


def native_bf16(device: torch.device) -> bool:
    """Whether the hardware computes bf16 natively. On a CPU that means AMX or avx512_bf16, read from torch's
    own CPU feature probe; elsewhere oneDNN emulates bf16, which measured 13x slower than fp32 on an AVX2 AMD
    EPYC (2 cores, 1M-parameter U-Net, batch 64: 0.19 vs 2.52 steps/s)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    caps = cpu_capabilities()
    return bool(caps.get("amx_bf16") or caps.get("avx512_bf16"))


def cpu_capabilities() -> dict:
    """torch's own probe of this CPU (feature flags, `cpu_name`); empty where this torch has none."""
    return torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}


def cpu_name() -> str:
    """The CPU's model name as torch reads it (e.g. 'Intel Xeon'), or '?': the line bench tables start with."""
    return cpu_capabilities().get("cpu_name", "?")


def resolve_precision(precision: str, device: torch.device, diffusion: str) -> str:
    """The precision a run computes in: fp32, bf16 or bf16_fp32_input. `auto`: AUTO_BF16's choice for the
    formulation wherever the hardware computes bf16 natively (GPUs; CPUs with AMX or avx512_bf16), fp32
    elsewhere. The DDPM's study (laptop preset, 5 seeds each) found bf16's loss and learning times within the
    seed-to-seed spread."""
    if precision != "auto":
        return precision
    return AUTO_BF16[diffusion] if native_bf16(device) else "fp32"


def use_bf16(precision: str, device: torch.device, diffusion: str) -> bool:
    """Whether the run computes under bf16 autocast."""
    return resolve_precision(precision, device, diffusion) in BF16_PRECISIONS


def fp32_input(precision: str, device: torch.device, diffusion: str) -> bool:
    """Whether the network's input convolution stays fp32 under bf16 autocast (model.FP32InputConv). In the VDM
    the noisy image near t = 0 carries noise below bf16's rounding of the image; a trained first convolution
    reads it from the fp32 values (docs/precision_study.md, "The VDM")."""
    return resolve_precision(precision, device, diffusion) == "bf16_fp32_input"


def precision_note(precision: str, device: torch.device) -> str | None:
    """One line when the precision setting and the hardware disagree, else None."""
    if device.type == "cpu" and precision in BF16_PRECISIONS and not native_bf16(device):
        return (f"train.precision={precision}: this CPU has no native bf16 (no AMX, no avx512_bf16), so it is emulated "
                "and about 13x slower than fp32 here; train.precision=fp32 is faster")
    return None

"""The machine line every bench table starts with: which CPU (a figure means little without it)."""

from __future__ import annotations

import torch


def cpu_name() -> str:
    """The CPU's model name as torch reads it (e.g. 'Intel Xeon'), or '?' where this torch cannot say."""
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return caps.get("cpu_name", "?")

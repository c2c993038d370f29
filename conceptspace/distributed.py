"""Data-parallel training under torchrun, on any device: gloo on the CPU, nccl on GPUs.

Every rank builds the same global batch (a pure function of seed and step) and draws the same timesteps
and noise for it, then keeps its own shard; DDP averages the gradients, so N ranks take the same step as
one process with the whole batch. Only rank 0 logs, snapshots, tracks and checkpoints; checkpoints hold
the unwrapped model, so a run resumes under any world size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import UserError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, tensor: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch."""
        per = tensor.shape[0] // self.size
        return tensor[self.rank * per:(self.rank + 1) * per]


def init(device: torch.device, batch_size: int) -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if batch_size % size:
        raise UserError(f"train.batch_size: got {batch_size}; allowed: a multiple of the world size {size}")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def local_device(device: torch.device) -> torch.device:
    """Under torchrun each rank takes the GPU of its local rank."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        index = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return device


def wrap(model, world: World, device: torch.device):
    if world.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def mean(value: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of a scalar over ranks (every rank then agrees on, e.g., whether the loss is finite)."""
    if world.size == 1:
        return value.detach()
    total = value.detach().clone()
    dist.all_reduce(total)
    return total / world.size


def average_gradients(params: list, world: World) -> None:
    """Average the gradients of parameters DDP does not own (a learned noise schedule) over ranks."""
    if world.size == 1:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world.size


def shutdown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

"""Data-parallel training on PyTorch's own engine: `torchrun` sets the environment, this
module joins the process group (NCCL on GPUs, gloo on CPUs) and offers the few
collective steps training needs.

Without `torchrun` (RANK and WORLD_SIZE unset) every helper is a no-op for one process.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    active: bool = False  # launched by torchrun (even with one process: DDP and NCCL then run too)

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, logs and the manifest."""
        return self.rank == 0


def from_env() -> Ranks:
    """The ranks `torchrun` set up, joining the process group on first use."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Ranks()
    if not dist.is_initialized():
        if torch.cuda.is_available():
            # Before any collective: NCCL works on the current device, one per rank.
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        atexit.register(_leave)
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), True)


def device_for(ranks: Ranks, device: str) -> str:
    """Each rank on its own GPU (cuda:LOCAL_RANK); CPUs are shared."""
    if ranks.active and device == "cuda":
        torch.cuda.set_device(ranks.local_rank)
        return f"cuda:{ranks.local_rank}"
    return device


def total(ranks: Ranks, value: float, device: str) -> float:
    """The sum of `value` over all ranks."""
    if not ranks.active:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item())


def from_main(ranks: Ranks, value: T) -> T:
    """Rank 0's `value` on every rank (any picklable object)."""
    if not ranks.active:
        return value
    box: list[Any] = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[no-any-return]


def barrier(ranks: Ranks) -> None:
    if ranks.active:
        dist.barrier()


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()

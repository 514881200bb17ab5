"""torch.distributed glue: under `torchrun`, ranks split the parts of one plan; alone, all is local."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's value on every rank (plans, or the error that stops everyone)."""
        if self.world == 1:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        if self.world == 1:
            return [value]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, value)
        return out


def init(device: str) -> tuple[Context, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ctx = Context(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    if device == "auto":
        device = f"cuda:{ctx.local_rank}" if use_cuda else "cpu"
    elif device == "cuda" and world > 1:
        device = f"cuda:{ctx.local_rank}"
    return ctx, torch.device(device)


def shutdown() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()

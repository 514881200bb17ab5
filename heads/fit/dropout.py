"""Dropout whose CPU masks cost a fraction of torch's.

On a CPU, torch's dropout draws one 32-bit Mersenne-Twister number per element (`bernoulli_`): with the
small-data preset (dropout 0.2) that was 28 % of a training step of the demo's fusion head on one core, and
these masks take back about half of it (BENCHMARKS.md, "Dropout on the CPU"). Here one 64-bit draw gives
four 16-bit lanes, each compared with a threshold: Bernoulli masks as before, with the drop probability
rounded to a multiple of 1/65536 and the kept values scaled by the exact inverse of the keep probability, so
the expectation is unchanged. The draws come from torch's own generator, so `torch.manual_seed` and saved
RNG states (lockstep training) reproduce them. On other devices torch's kernel is fast already and is used
as is.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LANES = 4  # 16-bit lanes per 64-bit draw
LEVELS = 1 << 16  # values a lane takes


def lane_threshold(p: float) -> tuple[int, float]:
    """The value a lane (uniform over [-32768, 32767]) must reach to be kept, and the keep probability that
    gives: 1 - round(p * 65536) / 65536."""
    dropped = round(p * LEVELS)
    return dropped - LEVELS // 2, 1.0 - dropped / LEVELS


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device) -> tuple[torch.Tensor, float]:
    """A bool mask of `shape` (True: kept) whose elements are dropped independently with probability
    round(p * 65536) / 65536, and the keep probability."""
    n = math.prod(shape)
    draws = torch.randint(-(1 << 63), (1 << 63) - 1, (-(-n // LANES),), dtype=torch.int64, device=device)
    return kept_lanes(draws.view(torch.int16)[:n].view(shape), p)


def kept_lanes(lanes: torch.Tensor, p: float) -> tuple[torch.Tensor, float]:
    """Which int16 lanes are kept under drop probability p, and the keep probability."""
    threshold, q = lane_threshold(p)
    return lanes >= threshold, q


class Dropout(nn.Dropout):
    """`nn.Dropout` with the cheap CPU mask above; anything else (eval, CUDA, in place, p within 1/131072 of
    0 or 1) is nn.Dropout's own path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.device.type != "cpu" or self.inplace or not 0.0 < lane_threshold(self.p)[1] < 1.0:
            return super().forward(x)
        keep, q = keep_mask(x.shape, self.p, x.device)
        return x * keep.to(x.dtype).mul_(1.0 / q)


def replace_dropouts(module: nn.Module, kind: type[nn.Dropout] = Dropout) -> nn.Module:
    """Every dropout module inside `module` (torch's transformer layers' included) made a `kind`: this
    module's `Dropout` by default, `nn.Dropout` to put torch's back. Dropout holds no parameters, so state
    dicts and checkpoints are unchanged. The attention weights' dropout of `nn.MultiheadAttention` is a
    number, not a module, and keeps torch's kernel."""
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Dropout) and type(child) is not kind:
                setattr(parent, name, kind(child.p, child.inplace))
    return module

"""The learning rate over training, and the weight average that is evaluated and kept.

`plateau` is the paper's plateau-type scheduler (ReduceLROnPlateau semantics on the dev selection
metric, mode max, relative threshold 1e-4). `cosine` decays the rate from step 0 towards 0 after the
last step of `max_epochs` (planned with the first stage's batches per epoch); on small corpora the
dev metric is too noisy for a plateau rule to act on (52 scored dev files move Macro-F1 by points
between epochs), so a schedule that does not read it is more stable.
Either is multiplied by an optional linear warm-up over the first steps, stepped per batch.

`WeightAverage` keeps an exponential moving average of the weights with a horizon given in epochs
(decay = 1 - 1 / (epochs * batches per epoch)), so the same setting means the same averaging window
on 500 and on 50,000 training files.
"""

from __future__ import annotations

import copy
import math

import torch

from ..errors import HeadError

SCHEDULES = ("plateau", "cosine")
PLATEAU_THRESHOLD = 1e-4  # torch.optim.lr_scheduler.ReduceLROnPlateau's default (relative, mode max)


class LearningRate:
    """Sets every param group's lr before each step: lr * scale * warm-up(step) * cosine(step)."""

    def __init__(self, optimizer: torch.optim.Optimizer, kind: str, lr: float, steps_per_epoch: int, epochs: int,
                 warmup_epochs: float = 0.0, plateau_patience: int = 2, plateau_factor: float = 0.5):
        if kind not in SCHEDULES:
            raise HeadError(f"unknown --schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
        self.optimizer, self.kind, self.base = optimizer, kind, lr
        self.total = max(steps_per_epoch * epochs, 1)
        self.warmup = int(round(warmup_epochs * steps_per_epoch))
        self.patience, self.factor = plateau_patience, plateau_factor
        self.scale, self.step_count, self.best, self.bad = 1.0, 0, -math.inf, 0
        self._apply()

    def current(self) -> float:
        s = self.step_count
        value = self.base * self.scale
        if self.warmup and s < self.warmup:
            value *= (s + 1) / (self.warmup + 1)
        if self.kind == "cosine":
            value *= 0.5 * (1.0 + math.cos(math.pi * min(s, self.total) / self.total))
        return value

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.current()

    def after_step(self) -> None:
        self.step_count += 1
        self._apply()

    def after_epoch(self, value: float) -> None:
        """Plateau rule on the dev selection value (higher is better); a no-op for cosine."""
        if self.kind != "plateau":
            return
        if value > self.best * (1 + PLATEAU_THRESHOLD):
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        if self.bad > self.patience:
            self.scale *= self.factor
            self.bad = 0
        self._apply()

    def multiply(self, factor: float) -> None:
        """A lasting change of the base rate (MEDUSA's second stage)."""
        self.scale *= factor
        self._apply()


class WeightAverage:
    """Exponential moving average of a model's parameters and buffers, updated after every step."""

    def __init__(self, model: torch.nn.Module, epochs: float, steps_per_epoch: int):
        if epochs <= 0:
            raise HeadError("--ema-epochs must be > 0 to average weights")
        self.decay = 1.0 - 1.0 / max(epochs * steps_per_epoch, 1.0)
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for avg, p in zip(self.module.parameters(), model.parameters()):
            avg.lerp_(p.detach(), 1.0 - self.decay)
        for avg, b in zip(self.module.buffers(), model.buffers()):
            avg.copy_(b)

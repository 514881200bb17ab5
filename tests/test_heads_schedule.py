"""Learning-rate schedules, the weight average and the batch count the schedule is planned with."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sercache.heads.fit.schedule import LearningRate, WeightAverage
from sercache.heads.inputs.sampling import batches_per_epoch, block_batches, epoch_order, length_batches


def _optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_plateau_follows_torch_reduce_on_plateau():
    """Same lr after every epoch as torch's ReduceLROnPlateau(mode='max') on the same dev values."""
    values = [0.1, 0.2, 0.2, 0.19, 0.2, 0.21, 0.21, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, -math.inf, 0.5]
    ours = _optimizer()
    schedule = LearningRate(ours, "plateau", 0.1, steps_per_epoch=3, epochs=20, plateau_patience=2,
                            plateau_factor=0.5)
    theirs = _optimizer()
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, mode="max", factor=0.5, patience=2)
    for v in values:
        for _ in range(3):
            schedule.after_step()
        schedule.after_epoch(v)
        reference.step(v)
        assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-12), v


def test_cosine_with_warmup_values():
    opt = _optimizer()
    schedule = LearningRate(opt, "cosine", 0.1, steps_per_epoch=10, epochs=5, warmup_epochs=1)
    seen = [opt.param_groups[0]["lr"]]
    for _ in range(60):
        schedule.after_epoch(0.0)  # cosine does not read dev
        schedule.after_step()
        seen.append(opt.param_groups[0]["lr"])
    total = 50
    for s, lr in enumerate(seen):
        warm = (s + 1) / 11 if s < 10 else 1.0
        expected = 0.1 * warm * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
        assert lr == pytest.approx(expected, abs=1e-15), s
    assert seen[50] == 0.0 and seen[60] == 0.0


def test_second_stage_multiplies_the_schedule():
    opt = _optimizer()
    schedule = LearningRate(opt, "cosine", 0.1, steps_per_epoch=4, epochs=2)
    for _ in range(2):
        schedule.after_step()
    schedule.multiply(0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 2 / 8)))


def test_weight_average_is_the_exponential_moving_average():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, epochs=0.5, steps_per_epoch=4)  # decay 1 - 1/2
    assert average.decay == pytest.approx(0.5)
    expected = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        average.update(model)
        expected = [0.5 * e + 0.5 * p.detach() for e, p in zip(expected, model.parameters())]
    for e, a in zip(expected, average.module.parameters()):
        torch.testing.assert_close(a, e)
    assert not any(p.requires_grad for p in average.module.parameters())


@pytest.mark.parametrize("sampler", ["shuffle", "undersample", "balanced"])
@pytest.mark.parametrize("n,batch,bucket", [(500, 32, 32), (97, 8, 3), (10, 32, 1), (300, 7, 1)])
def test_batches_per_epoch_counts_what_an_epoch_yields(sampler, n, batch, bucket):
    rng = np.random.default_rng(0)
    groups = rng.choice(8, size=n, p=[0.4, 0.2, 0.1, 0.1, 0.08, 0.06, 0.04, 0.02])
    groups[:8] = np.arange(8)  # every group present
    lengths = rng.integers(1, 300, size=n)
    order = epoch_order(groups, sampler, rng)
    batches = length_batches(np.arange(n)[order], lengths, batch, bucket, rng)
    assert batches_per_epoch(groups, sampler, batch, batch * bucket) == len(batches)
    blocks = rng.integers(0, 9, size=len(order))
    stream, _ = block_batches(np.arange(n)[order], blocks, lengths, batch, 5 * batch + 3, rng)
    assert batches_per_epoch(groups, sampler, batch, 5 * batch + 3) == len(stream)

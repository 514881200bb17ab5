"""Samplers draw what their papers say; length batching covers every row once with little padding."""

from __future__ import annotations

import numpy as np
import pytest

from sercache.heads.errors import HeadError
from sercache.heads.inputs.sampling import epoch_order, length_batches, padding_waste


def msp_like(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    groups = rng.choice(8, size=n, p=np.array([3053, 3882, 13440, 2897, 1139, 1426, 2443, 25016]) / 53296)
    lengths = np.clip(rng.normal(290, 120, n), 50, 600).astype(np.int64)
    return groups, lengths


def test_shuffle_visits_every_row_once():
    groups, _ = msp_like(1000)
    order = epoch_order(groups, "shuffle", np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(1000))


def test_undersample_draws_min_count_per_class_without_replacement():
    groups, _ = msp_like(5000)
    m = np.bincount(groups).min()
    rng = np.random.default_rng(0)
    first = epoch_order(groups, "undersample", rng)
    assert len(set(first.tolist())) == len(first) == 8 * m
    np.testing.assert_array_equal(np.bincount(groups[first], minlength=8), [m] * 8)
    second = epoch_order(groups, "undersample", rng)
    assert set(first.tolist()) != set(second.tolist())  # redrawn every epoch


def test_balanced_sampler_is_close_to_uniform_over_classes():
    groups, _ = msp_like(20000)
    order = epoch_order(groups, "balanced", np.random.default_rng(0))
    share = np.bincount(groups[order], minlength=8) / len(order)
    np.testing.assert_allclose(share, 1 / 8, atol=0.01)
    with pytest.raises(HeadError, match="unknown sampler 'random'"):
        epoch_order(groups, "random", np.random.default_rng(0))


def test_length_batches_cover_rows_once_and_waste_little():
    _, lengths = msp_like(20000)
    order = np.random.default_rng(1).permutation(20000)
    batches = length_batches(order, lengths, 128, 32, np.random.default_rng(2))
    assert sorted(np.concatenate(batches).tolist()) == list(range(20000))
    assert all(len(b) <= 128 for b in batches)
    assert padding_waste(batches, lengths) < 0.05  # issue goal: < 10 %
    plain = length_batches(order, lengths, 128, 1, None)
    assert padding_waste(plain, lengths) > 0.25  # what bucketing saves


def test_padding_waste_definition():
    lengths = np.array([10, 5, 5, 5])
    assert padding_waste([np.array([0, 1]), np.array([2, 3])], lengths) == pytest.approx(1 - 25 / 30)

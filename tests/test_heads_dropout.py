"""The CPU dropout of the heads (heads/fit/dropout.py): Bernoulli masks with the right keep probability in every
16-bit lane, independent neighbours, exact scaling, reproducible draws, and every dropout of a head replaced."""

import pytest
import torch
from torch import nn

from sercache.heads.fit.dropout import LANES, LEVELS, Dropout, keep_mask, kept_lanes, replace_dropouts
from sercache.heads.fit.model import FusionHead, HeadSpec

CPU = torch.device("cpu")


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_every_lane_keeps_with_the_stated_probability(p):
    torch.manual_seed(0)
    keep, q = keep_mask((2_000_000,), p, CPU)
    assert q == pytest.approx(1 - p, abs=1 / 65536)
    sigma = (q * (1 - q) / (len(keep) / LANES)) ** 0.5
    for lane in range(LANES):  # a lane fed by a biased bit (e.g. a sign bit that is always 0) fails here
        assert abs(keep[lane::LANES].double().mean().item() - q) < 5 * sigma
    both = (keep[:-1] & keep[1:]).double().mean().item()  # neighbours (also across lanes) independent
    assert abs(both - q * q) < 5 * (q * q * (1 - q * q) / len(keep)) ** 0.5


@pytest.mark.parametrize("p", [0.1, 0.2, 0.25, 0.5, 1 / 3, 0.9])
def test_the_threshold_keeps_exactly_the_stated_share_of_the_65536_lane_values(p):
    keep, q = kept_lanes(torch.arange(-LEVELS // 2, LEVELS // 2).to(torch.int16), p)  # every value a lane takes
    assert q == 1 - round(p * LEVELS) / LEVELS and int(keep.sum()) == round(q * LEVELS)


@pytest.mark.parametrize("p", [1e-7, 1 - 1e-7, 1.0])
def test_p_within_a_lane_step_of_0_or_1_is_torchs_dropout(p):
    x = torch.randn(200, 30)
    torch.manual_seed(1)
    ours = Dropout(p).train()(x)
    torch.manual_seed(1)
    assert torch.equal(ours, nn.functional.dropout(x, p, True))


def test_half_precision_inputs_keep_their_dtype_and_scaled_values():
    x = torch.randn(64, 40).to(torch.bfloat16)
    torch.manual_seed(2)
    y = Dropout(0.1).train()(x)
    torch.manual_seed(2)
    keep, q = keep_mask(x.shape, 0.1, CPU)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, x * keep.to(torch.bfloat16).mul_(1 / q))


def test_kept_values_are_scaled_by_the_inverse_keep_probability_and_gradients_follow():
    layer = Dropout(0.25).train()
    x = torch.randn(64, 33, 7, requires_grad=True)
    torch.manual_seed(3)
    y = layer(x)
    torch.manual_seed(3)
    keep, q = keep_mask(x.shape, 0.25, CPU)
    torch.testing.assert_close(y, torch.where(keep, x / q, torch.zeros(())), rtol=1e-6, atol=0)
    y.sum().backward()
    torch.testing.assert_close(x.grad, keep.float() / q, rtol=1e-6, atol=0)
    assert 0.7 < keep.float().mean().item() < 0.8


def test_same_rng_state_same_mask_and_eval_is_identity():
    layer = Dropout(0.2).train()
    x = torch.randn(10, 50)
    state = torch.get_rng_state()
    a = layer(x)
    torch.set_rng_state(state)
    b = layer(x)
    assert torch.equal(a, b) and not torch.equal(a, layer(x))
    assert layer.eval()(x) is x


def test_every_dropout_of_a_head_is_replaced_and_the_state_dict_is_unchanged():
    spec = HeadSpec(inputs={"audio": [12], "text": [6]}, n_classes=8, hidden=16, d_model=8, ff_dim=16, fusion="deep",
                    unimodal_classifiers=True)
    head = FusionHead(spec)
    dropouts = [m for m in head.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) >= 10 and all(type(m) is Dropout for m in dropouts)  # transformer layers' included
    plain = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.3), nn.Sequential(nn.Dropout(0.1, inplace=True)))
    keys = list(plain.state_dict())
    replace_dropouts(plain)
    assert list(plain.state_dict()) == keys
    assert [type(plain[1]), plain[1].p, type(plain[2][0]), plain[2][0].p] == [Dropout, 0.3, Dropout, 0.1]
    assert plain[2][0].inplace and not plain[1].inplace
    replace_dropouts(head, nn.Dropout)  # torch's back (bin/bench-heads --dropout-check)
    assert all(type(m) is nn.Dropout for m in head.modules() if isinstance(m, nn.Dropout))

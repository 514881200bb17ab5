"""Each loss against a direct per-sample implementation of the formula the paper writes (plain Python floats)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sercache.heads.errors import HeadError
from sercache.heads.fit.losses import (
    Objective,
    Targets,
    amsoftmax_logits,
    ccc,
    ccc_loss,
    class_weights,
    focal,
    kld,
    soft_ce,
    wbce,
    weighted_ce,
)

torch.manual_seed(0)
N, C = 7, 5
LOGITS = torch.randn(N, C, dtype=torch.float64) * 2
TARGET = torch.tensor([0, 1, 1, 4, 2, 0, 3])
W = torch.tensor([0.5, 2.0, 1.0, 3.0, 1.5], dtype=torch.float64)
SOFT = torch.softmax(torch.randn(N, C, dtype=torch.float64), -1)
SOFT[0] = torch.tensor([0.5, 0.5, 0, 0, 0], dtype=torch.float64)  # zeros exercise 0 log 0


def softmax_row(z):
    m = max(z)
    e = [math.exp(v - m) for v in z]
    return [v / sum(e) for v in e]


def direct_focal(gamma, norm):
    total, wsum = 0.0, 0.0
    for i in range(N):
        p = softmax_row(LOGITS[i].tolist())[int(TARGET[i])]
        w = float(W[TARGET[i]])
        total += -w * (1 - p) ** gamma * math.log(p)
        wsum += w
    return total / (N if norm == "n" else wsum)


@pytest.mark.parametrize("norm", ["n", "weight-sum"])
def test_weighted_ce_matches_formula(norm):
    assert float(weighted_ce(LOGITS, TARGET, W, norm)) == pytest.approx(direct_focal(0.0, norm), rel=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 2.0, 2.5, 3.0])
@pytest.mark.parametrize("norm", ["n", "weight-sum"])
def test_focal_matches_formula(gamma, norm):
    assert float(focal(LOGITS, TARGET, W, gamma, norm)) == pytest.approx(direct_focal(gamma, norm), rel=1e-6)


def test_normalisations_differ_and_weight_sum_equals_torch():
    """The paper's 1/N and torch's 1/sum(w_y) are different numbers; weight-sum is torch's."""
    torch_value = torch.nn.CrossEntropyLoss(weight=W)(LOGITS, TARGET)
    assert float(weighted_ce(LOGITS, TARGET, W, "weight-sum")) == pytest.approx(float(torch_value), rel=1e-6)
    assert abs(float(weighted_ce(LOGITS, TARGET, W, "n")) - float(torch_value)) > 1e-3


def test_wbce_matches_formula():
    total = 0.0
    for i in range(N):
        for c in range(C):
            s = 1 / (1 + math.exp(-float(LOGITS[i, c])))
            y = float(SOFT[i, c])
            total += float(W[c]) * (y * math.log(s) + (1 - y) * math.log(1 - s))
    assert float(wbce(LOGITS, SOFT, W)) == pytest.approx(-total / N, rel=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
def test_kld_matches_formula(weighted):
    w = W if weighted else torch.ones(C, dtype=torch.float64)
    total = 0.0
    for i in range(N):
        q = softmax_row(LOGITS[i].tolist())
        for c in range(C):
            y = float(SOFT[i, c])
            if y > 0:
                total += float(w[c]) * y * math.log(y / q[c])
    assert float(kld(LOGITS, SOFT, w)) == pytest.approx(total / (N * C), rel=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_soft_ce_matches_formula_and_reduces_to_hard(gamma):
    total = 0.0
    for i in range(N):
        p = softmax_row(LOGITS[i].tolist())
        for c in range(C):
            total += -float(W[c]) * float(SOFT[i, c]) * (1 - p[c]) ** gamma * math.log(p[c])
    assert float(soft_ce(LOGITS, SOFT, W, gamma)) == pytest.approx(total / N, rel=1e-6)
    onehot = torch.nn.functional.one_hot(TARGET, C).double()
    assert float(soft_ce(LOGITS, onehot, W, gamma)) == pytest.approx(direct_focal(gamma, "n"), rel=1e-6)


def test_amsoftmax_margin_only_on_target():
    cos = torch.tanh(LOGITS)
    z = amsoftmax_logits(cos, TARGET, margin=0.2, scale=30.0)
    for i in range(N):
        for c in range(C):
            expected = 30.0 * (float(cos[i, c]) - (0.2 if c == int(TARGET[i]) else 0.0))
            assert float(z[i, c]) == pytest.approx(expected, rel=1e-6)


def test_ccc_matches_formula_and_audmetric_doctest():
    assert float(ccc(torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([[0.0], [1.0], [1.0]]))[0]) == \
        pytest.approx(2 / 3, rel=1e-6)
    x = torch.randn(50, 3, dtype=torch.float64)
    y = 0.5 * x + torch.randn(50, 3, dtype=torch.float64)
    total = 0.0
    for j in range(3):
        a, b = x[:, j].numpy(), y[:, j].numpy()
        rho_sx_sy = np.mean((a - a.mean()) * (b - b.mean()))
        value = 2 * rho_sx_sy / (a.var() + b.var() + (a.mean() - b.mean()) ** 2)
        assert float(ccc(x, y)[j]) == pytest.approx(value, rel=1e-6)
        total += 1 - value
    assert float(ccc_loss(x, y)) == pytest.approx(total, rel=1e-6)


def test_class_weights():
    counts = np.array([10, 30, 60])
    np.testing.assert_allclose(class_weights(counts, "prior"), [10.0, 100 / 30, 100 / 60], rtol=1e-6)
    np.testing.assert_allclose(class_weights(counts, "prior", "classes"), np.array([10.0, 100 / 30, 100 / 60]) / 3,
                               rtol=1e-6)
    np.testing.assert_allclose(class_weights(counts, "prior", "classes", 0.5),
                               np.sqrt(np.array([10.0, 100 / 30, 100 / 60]) / 3), rtol=1e-6)  # MEDUSA
    assert class_weights(counts, "prior", "mean").mean() == pytest.approx(1.0)
    np.testing.assert_array_equal(class_weights(counts, "uniform"), [1, 1, 1])
    with pytest.raises(HeadError, match="no samples"):
        class_weights(np.array([3, 0, 2]), "prior")
    with pytest.raises(HeadError, match="unknown class weights 'inverse'"):
        class_weights(counts, "inverse")


def test_objective_masks_rows_without_targets_and_adds_aux():
    w = torch.ones(C)
    logits = LOGITS.float()
    label = TARGET.clone()
    label[2] = -1  # an O/X row: no class target
    gender_logits = torch.randn(N, 2)
    gender = torch.tensor([0, 1, -1, 1, 0, 0, 1])
    t = Targets(label, None, None, gender)
    obj = Objective("ce", w, "class", aux="gender", aux_weight=0.5)
    keep = label >= 0
    expected = weighted_ce(logits[keep], label[keep], w) + 0.5 * torch.nn.functional.cross_entropy(
        gender_logits[gender >= 0], gender[gender >= 0])
    assert float(obj({"logits": logits, "gender": gender_logits}, t)) == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(HeadError, match="unknown loss 'hinge'"):
        Objective("hinge", w, "class")


def test_masked_rows_equal_dropping_them():
    """Rows without a target are masked (no host sync); the value equals the formula on the kept rows."""
    keep = torch.tensor([1, 0, 1, 1, 0, 1, 1], dtype=torch.bool)
    for norm in ("n", "weight-sum"):
        assert float(focal(LOGITS, TARGET, W, 2.0, norm, keep)) == pytest.approx(
            float(focal(LOGITS[keep], TARGET[keep], W, 2.0, norm)), rel=1e-6)
    for fn in (wbce, kld, soft_ce):
        assert float(fn(LOGITS, SOFT, W, mask=keep)) == pytest.approx(float(fn(LOGITS[keep], SOFT[keep], W)),
                                                                      rel=1e-6)
    x = torch.randn(20, 3, dtype=torch.float64)
    y = x + torch.randn(20, 3, dtype=torch.float64)
    y[[2, 5], 1] = float("nan")
    known = torch.isfinite(y[:, 1])
    expected = 1 - float(ccc(x[known, 1:2], y[known, 1:2])[0])
    assert float(ccc_loss(x[:, 1:2], y[:, 1:2])) == pytest.approx(expected, rel=1e-6)

"""Metrics equal scikit-learn's on the same predictions, including absent classes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from sercache.heads.fit.metrics import balanced_subsample, ccc_np, classification_metrics, regression_metrics

LETTERS = ("A", "S", "H", "U", "F", "D", "C", "N")


@pytest.mark.filterwarnings("ignore:y_pred contains classes")
@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    y = rng.choice(8, size=n, p=[0.05, 0.1, 0.25, 0.05, 0.0, 0.05, 0.05, 0.45])  # class F never true
    pred = np.where(rng.random(n) < 0.4, y, rng.integers(0, 7, n))  # class N... never predicted by noise
    m = classification_metrics(y, pred, LETTERS)
    labels = list(range(8))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, labels=labels, average="macro", zero_division=0))
    assert m["micro_f1"] == pytest.approx(f1_score(y, pred, labels=labels, average="micro", zero_division=0))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    per_class = f1_score(y, pred, labels=labels, average=None, zero_division=0)
    np.testing.assert_allclose([m["per_class_f1"][c] for c in LETTERS], per_class)
    np.testing.assert_array_equal(m["confusion"], confusion_matrix(y, pred, labels=labels))


def test_ccc_and_regression_metrics():
    assert ccc_np(np.array([0, 1, 2]), np.array([0, 1, 1])) == pytest.approx(2 / 3)
    pred = np.array([[1, 2, 3], [2, 3, 4], [3, 3, 5], [4, 6, 5.0]])
    target = np.array([[1, 2, np.nan], [2, 2, 4], [3, 4, 5], [5, 6, 6.0]])
    m = regression_metrics(pred, target)
    assert m["ccc_arousal"] == pytest.approx(ccc_np(pred[:, 0], target[:, 0]))
    assert m["ccc_dominance"] == pytest.approx(ccc_np(pred[1:, 2], target[1:, 2]))  # NaN target row skipped
    assert m["ccc_mean"] == pytest.approx(np.mean([m["ccc_arousal"], m["ccc_valence"], m["ccc_dominance"]]))


def test_balanced_subsample_draws_k_per_class():
    groups = np.array([0] * 50 + [1] * 5 + [2] * 10)
    seen = []

    def metric(rows):
        seen.append(np.bincount(groups[rows], minlength=3))
        return float(len(rows))

    value = balanced_subsample(metric, groups, 3, k=0, trials=4, seed=1)
    assert value == 15.0
    assert all((s == [5, 5, 5]).all() for s in seen)
    assert balanced_subsample(metric, groups, 3, k=3, trials=2, seed=1) == 9.0


# ----------------------------------------------------------------------------------- bootstrap intervals
def test_bootstrap_draws_equal_an_independent_per_resample_computation():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    from sercache.heads.fit.metrics import bootstrap_intervals, ccc_draws, ccc_np, classification_draws, resamples

    rng = np.random.default_rng(7)
    y = rng.integers(0, 4, 60)
    y_hat = np.where(rng.random(60) < 0.6, y, rng.integers(0, 4, 60))
    idx = next(resamples(60, draws=50, seed=3))
    got = classification_draws(y, y_hat, 4, idx)
    for d, rows in enumerate(idx):
        assert got["macro_f1"][d] == pytest.approx(f1_score(y[rows], y_hat[rows], labels=range(4), average="macro",
                                                            zero_division=0))
        assert got["balanced_accuracy"][d] == pytest.approx(balanced_accuracy_score(y[rows], y_hat[rows]))
        assert got["accuracy"][d] == pytest.approx(accuracy_score(y[rows], y_hat[rows]))
    pred, target = rng.normal(size=60), rng.normal(size=60)
    assert ccc_draws(pred, target, idx) == pytest.approx([ccc_np(pred[r], target[r]) for r in idx])
    # the interval: 2.5 and 97.5 percentiles of the same 1,000 seeded resamples, drawn here with numpy alone
    ref_rng = np.random.default_rng(11)
    values = [f1_score(y[r], y_hat[r], labels=range(4), average="macro", zero_division=0)
              for _ in range(10) for r in ref_rng.integers(0, 60, size=(100, 60))]
    ci = bootstrap_intervals(y, y_hat, 4, seed=11)["macro_f1"]
    assert ci == pytest.approx(list(np.percentile(values, [2.5, 97.5])))

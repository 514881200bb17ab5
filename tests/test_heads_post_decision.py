"""Post-processing arithmetic on hand-made numbers: votes and ties, averaging, bias tuning, prior
correction, stacking (out-of-fold by construction), decision files. No training here."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from sercache.heads.after.decision import (
    Decision,
    Stacker,
    _best_position,
    apply_bias,
    cv_bias,
    fit_stacker,
    log_scores,
    macro_f1,
    parse_counts,
    prior_bias,
    stack,
    tune_bias,
)
from sercache.heads.after.ensemble import combine, logmean_probs, majority_vote, mean_probs
from sercache.heads.errors import HeadError
from sercache.heads.fit.rundir import SplitOutputs


# ----------------------------------------------------------------------------------- votes
def test_majority_vote_hand_made():
    votes = np.array([[0, 1, 2, 3, 2],
                      [0, 1, 1, 3, 0],
                      [1, 2, 1, 0, 2]])
    decision, counts, tied = majority_vote(votes, 4, tie_rule="first")
    assert decision.tolist() == [0, 1, 1, 3, 2]
    assert counts.tolist() == [[2, 1, 0, 0], [0, 2, 1, 0], [0, 2, 1, 0], [1, 0, 0, 2], [1, 0, 2, 0]]
    assert not tied.any()


def _probs(rows):
    return np.array(rows, dtype=float)


def test_tie_rules_on_hand_made_ties():
    # two members, three utterances, four classes; every utterance is a 1-1 tie
    votes = np.array([[2, 3, 1],
                      [0, 1, 3]])
    probs = np.stack([
        _probs([[0.1, 0.1, 0.6, 0.2], [0.1, 0.2, 0.3, 0.4], [0.2, 0.3, 0.2, 0.3]]),
        _probs([[0.5, 0.1, 0.2, 0.2], [0.1, 0.5, 0.0, 0.4], [0.1, 0.3, 0.1, 0.5]]),
    ])
    # prob: summed probability of the tied classes over all members
    #  utt0: class 2 -> 0.8, class 0 -> 0.6 => 2;  utt1: class 3 -> 0.8, class 1 -> 0.7 => 3
    #  utt2: class 1 -> 0.6, class 3 -> 0.8 => 3
    decision, counts, tied = majority_vote(votes, 4, probs, "prob")
    assert tied.all() and decision.tolist() == [2, 3, 3]
    # first: earliest tied class in class order
    assert majority_vote(votes, 4, probs, "first")[0].tolist() == [0, 1, 1]
    # best-member: the vote of the better member (here member 1 ranked first)
    assert majority_vote(votes, 4, probs, "best-member", member_order=[1, 0])[0].tolist() == [0, 1, 3]
    assert majority_vote(votes, 4, probs, "best-member", member_order=[0, 1])[0].tolist() == [2, 3, 1]


def test_tie_with_exactly_equal_probability_goes_to_first_class():
    votes = np.array([[3], [1]])
    probs = np.stack([_probs([[0.0, 0.5, 0.0, 0.5]]), _probs([[0.0, 0.5, 0.0, 0.5]])])
    assert majority_vote(votes, 4, probs, "prob")[0].tolist() == [1]


def test_two_two_tie_among_four_members_ignores_untied_classes():
    votes = np.array([[0], [0], [2], [2]])
    # class 1 has the most probability mass overall but no votes: it must not win
    probs = np.stack([_probs([[0.3, 0.6, 0.1]])] * 2 + [_probs([[0.1, 0.6, 0.3]])] * 2)
    decision, counts, tied = majority_vote(votes, 3, probs, "prob")
    assert tied[0] and counts[0].tolist() == [2, 0, 2]
    assert decision.tolist() == [0]  # 0.8 vs 0.8 (summed in another order: not bit-equal) -> first class


def test_averaging_equals_hand_computation():
    p1 = _probs([[0.7, 0.2, 0.1], [0.2, 0.2, 0.6]])
    p2 = _probs([[0.1, 0.5, 0.4], [0.3, 0.4, 0.3]])
    P = np.stack([p1, p2])
    np.testing.assert_allclose(mean_probs(P), [[0.4, 0.35, 0.25], [0.25, 0.3, 0.45]])
    geo = np.sqrt(p1 * p2)
    np.testing.assert_allclose(logmean_probs(P), geo / geo.sum(1, keepdims=True))
    outs = [SplitOutputs(["a", "b"], np.array(["A", "B"], object), np.array([0, 1]), p, p.argmax(1)) for p in (p1, p2)]
    combined = combine(outs, ["A", "B", "C"], "mean").out
    assert combined.decision.tolist() == [0, 2]
    # regression: plain mean of the members' A/V/D
    for o, v in zip(outs, (1.0, 3.0)):
        o.avd_pred, o.avd_true = np.full((2, 3), v), np.full((2, 3), 2.0)
    np.testing.assert_allclose(combine(outs, ["A", "B", "C"], "vote").out.avd_pred, 2.0)


def test_identical_members_reproduce_the_member():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=40)
    member = SplitOutputs([str(i) for i in range(40)], np.array(["x"] * 40, object), rng.integers(0, 5, 40), p,
                          p.argmax(1))
    for method in ("vote", "mean", "logmean"):
        out = combine([member] * 3, list("ABCDE"), method).out
        assert out.decision.tolist() == member.decision.tolist(), method
        np.testing.assert_allclose(out.probs, p, atol=1e-12)


# ----------------------------------------------------------------------------------- bias tuning
def skewed_dev(seed: int, n: int = 400, C: int = 5):
    """A model whose scores carry the class signal but are pulled towards the majority class."""
    rng = np.random.default_rng(seed)
    prior = np.array([0.55, 0.2, 0.12, 0.08, 0.05])[:C]
    prior /= prior.sum()
    y = rng.choice(C, n, p=prior)
    logits = rng.normal(size=(n, C)) + 1.5 * np.eye(C)[y] + 2.0 * np.log(prior)
    return log_scores(np.exp(logits) / np.exp(logits).sum(1, keepdims=True)), y


@pytest.mark.parametrize("seed", range(6))
def test_bias_tuning_raises_dev_macro_f1_and_never_lowers_it(seed):
    scores, y = skewed_dev(seed)
    res = tune_bias(scores, y, 5)
    before = f1_score(y, scores.argmax(1), labels=range(5), average="macro", zero_division=0)
    after = f1_score(y, apply_bias(scores, res.bias), labels=range(5), average="macro", zero_division=0)
    assert res.before == pytest.approx(before) and res.after == pytest.approx(after)
    assert after > before + 0.02  # skewed case: a clear, strict gain
    # every accepted step strictly raised Macro-F1
    values = [res.before] + [s["macro_f1"] for s in res.steps]
    assert all(b > a for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("seed", range(10))
def test_bias_tuning_never_lowers_on_random_cases(seed):
    rng = np.random.default_rng(100 + seed)
    n, C = int(rng.integers(5, 60)), int(rng.integers(2, 6))
    y = rng.integers(0, C, n)
    scores = log_scores(rng.dirichlet(np.ones(C), size=n))
    start = rng.normal(size=C) if seed % 2 else None
    res = tune_bias(scores, y, C, start=start)
    assert res.after >= res.before
    assert macro_f1(y, apply_bias(scores, res.bias), C) == pytest.approx(res.after)


def test_bias_tuning_leaves_a_perfect_model_alone():
    y = np.repeat(np.arange(4), 5)
    scores = log_scores(np.eye(4)[y] * 0.9 + 0.025)
    res = tune_bias(scores, y, 4)
    assert res.before == res.after == 1.0 and not res.steps and np.all(res.bias == 0)


def test_coordinate_step_is_exact():
    scores, y = skewed_dev(7, n=120, C=4)
    bias = np.array([0.3, -0.2, 0.1, 0.0])
    for c in range(4):
        f1s, values = _best_position(scores, y, bias, c, 4)
        for f, v in zip(f1s, values):
            trial = bias.copy()
            trial[c] = v
            assert macro_f1(y, apply_bias(scores, trial), 4) == pytest.approx(f, abs=1e-12)


def test_cv_estimate_is_out_of_fold():
    scores, y = skewed_dev(3)
    cv = cv_bias(scores, y, 5, k=5, seed=0)
    assert cv["folds"] == 5
    assert cv["macro_f1_untuned"] == pytest.approx(macro_f1(y, scores.argmax(1), 5))
    assert 0.0 <= cv["macro_f1_oof"] <= 1.0


# ----------------------------------------------------------------------------------- prior correction
def test_prior_correction_is_minus_log_prior():
    counts = np.array([3053, 3882, 13440, 2897, 1139, 1426, 2443, 25016], float)
    b = prior_bias(counts)
    np.testing.assert_allclose(b, -np.log(counts / counts.sum()))
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(8), size=50)
    d = Decision(list("ASHUFDCN"), "prior", b, counts.tolist())
    assert d.apply(p).tolist() == np.argmax(np.log(p) - np.log(counts / counts.sum()), 1).tolist()
    # a uniform target prior changes nothing but a constant; another target shifts by log q
    np.testing.assert_allclose(prior_bias(counts, np.ones(8)), b - np.log(8))
    q = np.arange(1, 9, dtype=float)
    np.testing.assert_allclose(prior_bias(counts, q), b + np.log(q / q.sum()))
    with pytest.raises(HeadError, match="every class"):
        prior_bias([1, 0, 2])
    assert parse_counts("A=1,B=2,C=3", "ABC").tolist() == [1, 2, 3]
    assert parse_counts("3,2,1", "ABC").tolist() == [3, 2, 1]
    with pytest.raises(HeadError):
        parse_counts("A=1,B=2", "ABC")


# ----------------------------------------------------------------------------------- stacking
class Memoriser:
    """1-nearest-neighbour 'meta-classifier': perfect on rows it saw, chance on others."""

    fits: list = []

    def __init__(self, X, y, C):
        self.X, self.y, self.C = X, y, C

    def predict_proba(self, X):
        d = ((X[:, None, :] - self.X[None, :, :]) ** 2).sum(-1)
        return np.eye(self.C)[self.y[d.argmin(1)]]


def memorise(X, y, n_classes, **_):
    m = Memoriser(X.copy(), y.copy(), n_classes)
    Memoriser.fits.append(m)
    return m


def test_stacking_out_of_fold_never_uses_its_own_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6))
    y = rng.integers(0, 4, 200)  # labels unrelated to X
    Memoriser.fits = []
    res = stack(X, y, 4, k=5, seed=1, fit=memorise)
    in_sample = memorise(X, y, 4).predict_proba(X).argmax(1)
    assert (in_sample == y).mean() == 1.0  # a model scored on what it saw looks perfect ...
    assert (res.oof.argmax(1) == y).mean() < 0.45  # ... out of fold it is at chance (0.25)
    held_all = []
    for f, rows in enumerate(res.train_rows):
        held = np.flatnonzero(res.fold == f)
        assert not set(rows) & set(held) and len(rows) + len(held) == 200
        held_all += held.tolist()
        model = Memoriser.fits[f]
        assert len(model.X) == len(rows) and np.array_equal(model.X, X[rows])  # fit on exactly the other folds
    assert sorted(held_all) == list(range(200))


def test_stacker_arrays_match_sklearn_and_roundtrip():
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 6))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int) * 2  # 4 classes, class 3 rare
    s = fit_stacker(X, y, 5, "logreg", seed=0)  # class 4 never seen: probability 0
    Z = (X - X.mean(0)) / X.std(0)
    ref = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced", random_state=0).fit(Z, y)
    p = s.predict_proba(X)
    np.testing.assert_allclose(p[:, :4], ref.predict_proba(Z), atol=1e-10)
    assert np.all(p[:, 4] == 0)
    again = Stacker.from_dict(s.to_dict())
    np.testing.assert_allclose(again.predict_proba(X), p)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    m = fit_stacker(X, y, 4, "mlp", seed=0, class_weight=None, hidden=8)
    ref_m = MLPClassifier(hidden_layer_sizes=(8,), alpha=1e-3, max_iter=500, random_state=0).fit(Z, y)
    np.testing.assert_allclose(m.predict_proba(X), ref_m.predict_proba(Z), atol=1e-8)
    binary = fit_stacker(X, (X[:, 0] > 0).astype(int), 2, "logreg")
    assert binary.predict_proba(X).shape == (120, 2)
    np.testing.assert_allclose(binary.predict_proba(X).sum(1), 1.0)


def test_decision_file_roundtrip(tmp_path):
    d = Decision(list("ASHN"), "prior+bias", np.array([0.1, -0.2, 0.3, 0.0]), [1, 2, 3, 4], "test",
                 {"tuned_on": "dev"})
    d.save(tmp_path / "decision.json")
    back = Decision.load(tmp_path / "decision.json", list("ASHN"))
    np.testing.assert_allclose(back.bias, d.bias)
    assert back.method == "prior+bias" and back.prior_counts == [1, 2, 3, 4] and back.report["tuned_on"] == "dev"
    with pytest.raises(HeadError, match="classes"):
        Decision.load(tmp_path / "decision.json", list("NHSA"))
    p = np.random.default_rng(0).dirichlet(np.ones(4), 30)
    assert back.adjusted_probs(p).argmax(1).tolist() == back.apply(p).tolist()

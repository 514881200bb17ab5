"""Decisions on top of a model's probabilities: per-class biases tuned on dev, prior correction, stacking.

All three act on scores s = log p (p: a head's or an ensemble's class probabilities) and decide
argmax_c (s_c + b_c).

* **Bias tuning** (Shamsi et al., CONILIUM): coordinate ascent over the per-class additive biases b,
  starting at b = 0, maximising dev Macro-F1. For one class c the prediction of every sample only
  changes where b_c crosses t_i = max_{k!=c}(s_ik + b_k) - s_ic, so each coordinate step is solved
  exactly over all distinct thresholds (the chosen value is the middle of the best interval; the
  outer intervals get a 0.5-nat margin). A move is accepted only if the recomputed dev Macro-F1
  strictly rises, so tuning can never lower dev Macro-F1. Dev after tuning is optimistic (tuned
  on it): `cv_bias` gives the honest out-of-fold estimate of the same procedure.
* **Prior correction** (TalTech): b_c = -log pi_c with pi the training class prior, the closed-form
  Bayes correction for a class-balanced test set (general target prior q: b_c = log q_c - log pi_c).
* **Stacking** (MEDUSA): a small meta-classifier (logistic regression or MLP, scikit-learn) over the
  members' concatenated log-probabilities, trained on dev. Its dev score is out-of-fold (k-fold
  cross-validation: every dev row is predicted by a model that never saw it); the model applied to
  other splits is then fit on all of dev. It is stored as plain JSON arrays (never pickle).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import HeadError
from ..fit.metrics import macro_f1
from ..fit.rundir import write_json
from ..inputs.corpora import LabelSource, named_columns, resolve_corpus
from .outputs import find_runs, load_run, score

FORMAT = "sercache-decision/1"
FLOOR = 1e-9  # probabilities below this (e.g. written as 0.000000) are floored before the log
MARGIN = 0.5  # nats beyond the extreme threshold when the best interval is unbounded
DECISION_METHODS = ("bias", "prior", "prior+bias")  # what decide() builds
STACKERS = ("logreg", "mlp")  # meta-classifiers fit_stacker fits


def log_scores(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, np.float64), FLOOR, None))


def apply_bias(scores: np.ndarray, bias: np.ndarray | Sequence[float] | None) -> np.ndarray:
    """argmax_c (scores_c + bias_c); ties go to the first class in class order (numpy's argmax)."""
    scores = np.asarray(scores, np.float64)
    if bias is None:
        return scores.argmax(1)
    return (scores + np.asarray(bias, np.float64)[None, :]).argmax(1)


def _best_position(scores: np.ndarray, y: np.ndarray, bias: np.ndarray, c: int, n_classes: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Macro-F1 for every distinct interval of b_c (others fixed), and a representative b_c per interval."""
    N, C = scores.shape
    shifted = scores + bias[None, :]
    others = shifted.copy()
    others[:, c] = -np.inf
    other_arg = others.argmax(1)
    t = others[np.arange(N), other_arg] - scores[:, c]
    order = np.argsort(t, kind="stable")
    ts, ys, os_ = t[order], y[order], other_arg[order]
    # before any move: every sample is predicted other_arg
    support = np.bincount(y, minlength=C).astype(np.float64)
    pred0 = np.bincount(other_arg, minlength=C).astype(np.float64)
    tp0 = np.bincount(other_arg[other_arg == y], minlength=C).astype(np.float64)
    # after moving the first j sorted samples to c (j = 0..N)
    lost_pred = np.zeros((N + 1, C))
    lost_pred[1:] = np.cumsum(np.eye(C)[os_], axis=0)
    lost_tp = np.zeros((N + 1, C))
    lost_tp[1:] = np.cumsum(np.eye(C)[os_] * (os_ == ys)[:, None], axis=0)
    gain_tp = np.zeros(N + 1)
    gain_tp[1:] = np.cumsum(ys == c)
    pred = pred0[None, :] - lost_pred
    tp = tp0[None, :] - lost_tp
    pred[:, c] = np.arange(N + 1)
    tp[:, c] = gain_tp
    denom = support[None, :] + pred
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0).mean(1)
    # only positions at the end of a group of equal thresholds are reachable
    uniq, first = np.unique(ts, return_index=True)
    ends = np.append(first[1:], N)  # j after each group
    positions = np.concatenate([[0], ends])
    values = np.empty(len(positions))
    if len(uniq):
        values[0] = uniq[0] - MARGIN
        values[1:-1] = (uniq[:-1] + uniq[1:]) / 2
        values[-1] = uniq[-1] + MARGIN
    else:
        values[:] = 0.0
    return f1[positions], values


@dataclass
class BiasResult:
    bias: np.ndarray
    before: float
    after: float
    steps: list[dict] = field(default_factory=list)


def tune_bias(scores: np.ndarray, y: np.ndarray, n_classes: int | None = None, start: np.ndarray | None = None,
              rounds: int = 20, limit: float = 20.0) -> BiasResult:
    """Coordinate ascent on dev Macro-F1 over additive per-class biases (only strict improvements kept).

    scores: [N, C] log-probabilities of labelled rows; y: [N] class indices (>= 0); start: initial biases
    (e.g. a prior correction, default 0); limit: |b_c| stays within this many nats of the start.
    """
    scores = np.asarray(scores, np.float64)
    y = np.asarray(y, np.int64)
    if scores.ndim != 2 or len(scores) != len(y):
        raise HeadError(f"tune_bias: scores {scores.shape} and labels {y.shape} do not match")
    if (y < 0).any():
        raise HeadError("tune_bias: labels must be class indices >= 0 (drop unlabelled rows first)")
    if not np.isfinite(scores).all():
        raise HeadError("tune_bias: scores must be finite (floor probabilities before the log)")
    C = n_classes or scores.shape[1]
    base = np.zeros(C) if start is None else np.asarray(start, np.float64).copy()
    bias = base.copy()
    best = macro_f1(y, apply_bias(scores, bias), C)
    before = best
    steps = []
    for r in range(rounds):
        moved = False
        for c in range(C):
            f1s, values = _best_position(scores, y, bias, c, C)
            ok = np.abs(values - base[c]) <= limit
            if not ok.any():
                continue
            top = f1s[ok].max()
            if top <= best + 1e-12:
                continue
            cands = np.flatnonzero(ok & (f1s >= top - 1e-12))
            pick = cands[np.argmin(np.abs(values[cands] - bias[c]))]  # smallest change among the best
            trial = bias.copy()
            trial[c] = values[pick]
            actual = macro_f1(y, apply_bias(scores, trial), C)  # recomputed, not trusted from the sweep
            if actual > best + 1e-12:
                bias, best, moved = trial, actual, True
                steps.append({"round": r + 1, "class": c, "bias": float(trial[c]), "macro_f1": actual})
        if not moved:
            break
    return BiasResult(bias, before, best, steps)


def folds_for(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id per row: stratified when every class has >= k rows, else plain shuffled k-fold."""
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(y)
    k = max(2, min(k, len(y)))
    counts = np.bincount(y)
    counts = counts[counts > 0]
    splitter = StratifiedKFold(k, shuffle=True, random_state=seed) if counts.min() >= k else \
        KFold(k, shuffle=True, random_state=seed)
    fold = np.empty(len(y), np.int64)
    for i, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
        fold[test] = i
    return fold


def cv_bias(scores: np.ndarray, y: np.ndarray, n_classes: int, k: int = 5, seed: int = 0,
            start: np.ndarray | None = None) -> dict[str, float]:
    """Honest estimate of bias tuning: tune on k-1 folds of dev, decide the held-out fold; Macro-F1 of
    the pooled out-of-fold decisions, next to the untuned Macro-F1 of the same rows."""
    fold = folds_for(y, k, seed)
    pred = np.empty(len(y), np.int64)
    for f in np.unique(fold):
        fit, held = fold != f, fold == f
        res = tune_bias(scores[fit], y[fit], n_classes, start=start)
        pred[held] = apply_bias(scores[held], res.bias)
    return {"folds": int(len(np.unique(fold))), "macro_f1_untuned": macro_f1(y, apply_bias(scores, start), n_classes),
            "macro_f1_oof": macro_f1(y, pred, n_classes)}


def prior_bias(counts: Sequence[float], target: Sequence[float] | None = None) -> np.ndarray:
    """b_c = log q_c - log pi_c; with a uniform target (balanced test set) that is -log pi_c up to a
    constant, and the constant is dropped so that b = -log pi exactly."""
    counts = np.asarray(counts, np.float64)
    if (counts <= 0).any():
        raise HeadError(f"prior correction needs every class in the training counts (counts {counts.tolist()})")
    prior = counts / counts.sum()
    b = -np.log(prior)
    if target is not None:
        q = np.asarray(target, np.float64)
        if q.shape != prior.shape or (q <= 0).any():
            raise HeadError("prior correction: the target prior needs one positive value per class")
        b = b + np.log(q / q.sum())
    return b


# ----------------------------------------------------------------------------------- stacking
@dataclass
class Stacker:
    """A fitted meta-classifier as plain arrays: standardise, dense layers (ReLU between), softmax.

    `columns` maps the model's outputs to class indices (classes absent from its training rows get 0)."""

    kind: str
    n_classes: int
    mean: np.ndarray
    scale: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    columns: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.params.get("constant"):
            out = np.zeros((len(X), self.n_classes))
            out[:, self.columns[0]] = 1.0
            return out
        h = (np.asarray(X, np.float64) - self.mean) / self.scale
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ W + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        if h.shape[1] == 1:  # binary: one logit for the second class
            p1 = 1.0 / (1.0 + np.exp(-h[:, 0]))
            h_prob = np.stack([1 - p1, p1], 1)
        else:
            h = h - h.max(1, keepdims=True)
            e = np.exp(h)
            h_prob = e / e.sum(1, keepdims=True)
        out = np.zeros((len(h_prob), self.n_classes))
        out[:, self.columns] = h_prob
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_classes": self.n_classes, "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "weights": [w.tolist() for w in self.weights],
                "biases": [b.tolist() for b in self.biases], "columns": self.columns.tolist(), "params": self.params}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Stacker":
        return cls(d["kind"], int(d["n_classes"]), np.asarray(d["mean"]), np.asarray(d["scale"]),
                   [np.asarray(w, np.float64) for w in d["weights"]], [np.asarray(b, np.float64) for b in d["biases"]],
                   np.asarray(d["columns"], np.int64), d.get("params", {}))


def fit_stacker(X: np.ndarray, y: np.ndarray, n_classes: int, kind: str = "logreg", seed: int = 0,
                reg: float = 1.0, hidden: int = 32, class_weight: str | None = "balanced") -> Stacker:
    """Fit a logistic regression (multinomial, L2 strength 1/reg) or a one-hidden-layer MLP on (X, y)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.int64)
    mean = X.mean(0)
    scale = X.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    Z = (X - mean) / scale
    present = np.unique(y)
    params = {"reg": reg, "class_weight": class_weight, "seed": seed}
    if len(present) == 1:  # degenerate fold: every row has one class, predict it with certainty
        return Stacker(kind, n_classes, mean, scale, [np.zeros((X.shape[1], 1))], [np.zeros(1)], present,
                       {**params, "constant": True})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if kind == "logreg":
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression(C=reg, max_iter=2000, class_weight=class_weight, random_state=seed)
            model.fit(Z, y)
            weights, biases = [model.coef_.T.copy()], [model.intercept_.copy()]
        elif kind == "mlp":
            from sklearn.neural_network import MLPClassifier

            if class_weight == "balanced":  # MLPClassifier has no class weights: balance by resampling
                rng = np.random.default_rng(seed)
                counts = np.bincount(y, minlength=n_classes)
                target = counts[present].max()
                idx = np.concatenate([rng.choice(np.flatnonzero(y == c), size=target, replace=True) for c in present])
                Z_fit, y_fit = Z[idx], y[idx]
            else:
                Z_fit, y_fit = Z, y
            model = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1e-3 / reg, max_iter=500, random_state=seed,
                                  early_stopping=False)
            model.fit(Z_fit, y_fit)
            weights, biases = [w.copy() for w in model.coefs_], [b.copy() for b in model.intercepts_]
            params["hidden"] = hidden
        else:
            raise HeadError(f"unknown stacker {kind!r}; choose one of {', '.join(STACKERS)}")
    return Stacker(kind, n_classes, mean, scale, weights, biases, np.asarray(model.classes_, np.int64), params)


@dataclass
class StackResult:
    oof: np.ndarray  # [N, C] out-of-fold probabilities of the dev rows
    fold: np.ndarray  # fold id per dev row
    train_rows: list[np.ndarray]  # rows each fold's model was fit on (never its own fold)
    final: Stacker  # fit on all dev rows, for the other splits


def stack(X: np.ndarray, y: np.ndarray, n_classes: int, kind: str = "logreg", k: int = 5, seed: int = 0,
          fit: Callable[..., Stacker] | None = None, **options: Any) -> StackResult:
    """Out-of-fold stacking on dev: the prediction for a row comes from a model fit without that row's fold."""
    fit = fit or fit_stacker
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.int64)
    fold = folds_for(y, k, seed)
    oof = np.zeros((len(y), n_classes))
    train_rows = []
    for f in np.unique(fold):
        rows = np.flatnonzero(fold != f)
        held = np.flatnonzero(fold == f)
        model = fit(X[rows], y[rows], n_classes, kind=kind, seed=seed, **options)
        oof[held] = model.predict_proba(X[held])
        train_rows.append(rows)
    final = fit(X, y, n_classes, kind=kind, seed=seed, **options)
    return StackResult(oof, fold, train_rows, final)


# ----------------------------------------------------------------------------------- decision files
@dataclass
class Decision:
    """What predict applies after the probabilities: argmax(log p + bias) (bias = prior part + tuned part)."""

    classes: list[str]
    method: str  # "bias" | "prior" | "prior+bias"
    bias: np.ndarray
    prior_counts: list[float] | None = None
    prior_source: str = ""
    report: dict[str, Any] = field(default_factory=dict)

    def apply(self, probs: np.ndarray) -> np.ndarray:
        return apply_bias(log_scores(probs), self.bias)

    def adjusted_probs(self, probs: np.ndarray) -> np.ndarray:
        """softmax(log p + b): probabilities whose argmax is the decision (for score-vector formats)."""
        z = log_scores(probs) + self.bias[None, :]
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "classes": list(self.classes), "method": self.method,
                "bias": [float(b) for b in self.bias], "scores": "log-probabilities (floored at 1e-9)",
                "rule": "prediction = argmax_c (log p_c + bias_c); ties: first class in class order",
                "prior": None if self.prior_counts is None else {"counts": self.prior_counts,
                                                                 "source": self.prior_source},
                **self.report}

    def save(self, path: str | Path) -> None:
        write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | Path, classes: Sequence[str] | None = None) -> "Decision":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise HeadError(f"{path}: cannot read decision file ({err})") from None
        if d.get("format") != FORMAT:
            raise HeadError(f"{path}: not a sercache decision file (format {d.get('format')!r})")
        if classes is not None and list(classes) != d["classes"]:
            raise HeadError(f"{path}: decision was tuned for classes {d['classes']}, not {list(classes)}")
        prior = d.get("prior") or {}
        report = {k: v for k, v in d.items() if k not in ("format", "classes", "method", "bias", "scores", "rule",
                                                          "prior")}
        return cls(d["classes"], d["method"], np.asarray(d["bias"], np.float64), prior.get("counts"),
                   prior.get("source", ""), report)


def train_counts(config: dict[str, Any], metrics: dict[str, Any] | None = None) -> tuple[np.ndarray, str]:
    """Training class counts of a run: from its label file (labelled rows of the train split, before
    --min-agreement and cache-missing filtering), else from its recorded prior weights (w_j ∝ 1/N_j)."""
    letters = config.get("resolved", {}).get("classes", {}).get("letters")
    try:
        source = LabelSource(config["labels"], "", tuple(config.get("classes") or ()), named_columns(config))
        table = resolve_corpus(config["corpus"], config["labels"]).table(
            source, config.get("fold", ""), config.get("iemocap_dev", "next-session"))
        if letters is not None and list(table.classes.letters) != list(letters):
            raise HeadError("class order of the label file differs from the run's")
        rows = table.rows(config.get("train_split", "train"))
        counts = table.class_counts(rows).astype(np.float64)
        if counts.sum() > 0:
            return counts, f"labelled rows of split {config.get('train_split', 'train')!r} in {config['labels']}"
        problem = "no labelled training rows"
    except (HeadError, OSError, KeyError, ValueError) as err:
        problem = str(err)
    weights = (metrics or {}).get("class_weights")
    if (weights and config.get("weights") == "prior" and config.get("weights_from", "train") == "train"
            and float(config.get("weight_power", 1.0)) == 1.0):
        inv = 1.0 / np.asarray(weights, np.float64)
        return inv / inv.sum(), "derived from the run's prior class weights (w_j ∝ N/N_j)"
    raise HeadError(f"cannot determine the training class prior ({problem}); pass --prior-counts "
                    "A=3053,S=3882,... (one count per class)")


def parse_counts(text: str, letters: Sequence[str]) -> np.ndarray:
    """'A=3053,S=3882,...' (every class once) or '3053,3882,...' in class order."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if all("=" in p for p in parts):
            values = dict((k.strip(), float(v)) for k, v in (p.split("=", 1) for p in parts))
            if sorted(values) != sorted(letters):
                raise HeadError(f"--prior-counts names {', '.join(values)}; give every class of "
                                f"{' '.join(letters)} once")
            return np.array([values[c] for c in letters])
        values_list = [float(p) for p in parts]
    except ValueError:
        raise HeadError(f"--prior-counts {text!r}: not numbers") from None
    if len(values_list) != len(letters):
        raise HeadError(f"--prior-counts: {len(values_list)} values for {len(letters)} classes")
    return np.array(values_list)


def decide(dev_probs: np.ndarray, dev_y: np.ndarray, letters: Sequence[str], method: str,
           counts: np.ndarray | None = None, prior_source: str = "", cv_folds: int = 5, seed: int = 0,
           limit: float = 20.0) -> tuple[Decision, dict[str, Any]]:
    """Build a Decision from labelled dev outputs: 'bias' (tuned), 'prior', or 'prior+bias' (tuned on top)."""
    C = len(letters)
    if method not in DECISION_METHODS:
        raise HeadError(f"unknown decision method {method!r}; choose one of {', '.join(DECISION_METHODS)}")
    scores = log_scores(dev_probs)
    start = np.zeros(C)
    if "prior" in method:
        if counts is None:
            raise HeadError("prior correction needs training class counts")
        start = prior_bias(counts)
    info: dict[str, Any] = {"dev_rows": int(len(dev_y))}
    if "bias" in method:
        res = tune_bias(scores, dev_y, C, start=start, limit=limit)
        bias = res.bias
        info.update(tuning={"start": start.tolist(), "steps": res.steps,
                            "dev_macro_f1_start": res.before, "dev_macro_f1_tuned": res.after})
        if cv_folds and cv_folds > 1 and len(dev_y) >= 2 * cv_folds:
            info["cv"] = cv_bias(scores, dev_y, C, cv_folds, seed, start=start)
    else:
        bias = start
    decision = Decision(list(letters), method, bias, None if counts is None else [float(c) for c in counts],
                        prior_source)
    return decision, info


# ----------------------------------------------------------------------------------- one run
def tune_run(run_dir: str | Path, method: str = "bias", prior_counts: str = "", cv_folds: int = 5, seed: int = 0,
             limit: float = 20.0, verbose: bool = True) -> Decision:
    """Tune a decision on a run's (or ensemble's) dev predictions; save decision.json in the run directory;
    report dev and every labelled split before/after (dev after is tuned on itself; see 'cv')."""
    run = load_run(run_dir)
    dev = run.splits[run.dev_split]
    if dev.probs is None:
        raise HeadError(f"{run.path}: no class probabilities to tune a decision on (regression-only run)")
    if run.kind == "ensemble" and run.config.get("method") == "vote":
        raise HeadError(f"{run.path}: a vote has no scores to bias; tune the members and build the ensemble with "
                        "--member-decisions, or use --method mean/logmean/stack")
    labelled = dev.label >= 0
    if not labelled.any():
        raise HeadError(f"{run.path}: no labelled dev rows")
    counts, source = None, ""
    if "prior" in method:
        if prior_counts:
            counts, source = parse_counts(prior_counts, run.letters), "--prior-counts"
        else:
            counts, source = train_counts(run.config, run.metrics)
    decision, info = decide(dev.probs[labelled], dev.label[labelled], run.letters, method, counts, source,
                            cv_folds, seed, limit)
    notes = []
    if "prior" in method and run.kind == "run" and run.config.get("weights") == "prior":
        notes.append("the head was trained with prior class weights (N/N_j), which already push its posteriors "
                     "towards balanced classes; a further -log(prior) correction may over-correct")
    splits: dict[str, dict] = {}
    for split, out in run.splits.items():
        if out.probs is None or not (out.label >= 0).any():
            continue
        # the run's own decision (argmax, or the ensemble rule) vs the new decision on its probabilities
        before = score(out, run.letters)
        after = score(out, run.letters, decision.apply(out.probs))
        splits[split] = {"before": {k: before[k] for k in ("n", "macro_f1", "accuracy", "balanced_accuracy")},
                         "after": {k: after[k] for k in ("n", "macro_f1", "accuracy", "balanced_accuracy",
                                                        "per_class_f1", "confusion")}}
    decision.report.update(info, splits=splits, tuned_on=run.dev_split, run=str(run.path), notes=notes)
    decision.save(run.path / "decision.json")
    if verbose:
        print(decision_table(decision))
    return decision


def decision_table(decision: Decision) -> str:
    r = decision.report
    lines = [f"decision {decision.method} for {r.get('run', '')} (tuned on {r.get('tuned_on', 'dev')}): bias "
             + " ".join(f"{c} {b:+.3f}" for c, b in zip(decision.classes, decision.bias))]
    head = f"{'split':<8}{'n':>7}{'Macro-F1 before':>17}{'after':>9}{'UA before':>11}{'after':>9}"
    lines += [head, "-" * len(head)]
    for split, m in r.get("splits", {}).items():
        b, a = m["before"], m["after"]
        tag = "  (tuned on this split)" if split == r.get("tuned_on") and "bias" in decision.method else ""
        lines.append(f"{split:<8}{a['n']:>7}{100 * b['macro_f1']:>17.2f}{100 * a['macro_f1']:>9.2f}"
                     f"{100 * b['balanced_accuracy']:>11.2f}{100 * a['balanced_accuracy']:>9.2f}{tag}")
    if "cv" in r:
        cv = r["cv"]
        start = "no bias" if decision.method == "bias" else "prior correction only"
        lines.append(f"honest estimate ({cv['folds']}-fold CV on dev: tune on k-1 folds, decide the held-out one): "
                     f"Macro-F1 {100 * cv['macro_f1_untuned']:.2f} ({start}) -> {100 * cv['macro_f1_oof']:.2f} "
                     "(tuned, out-of-fold)")
    for note in r.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def tune_requested(root: str | Path, verbose: bool = True) -> list[Decision]:
    """Tune the bias of every run under `root` whose config asks for it (--tune-bias, a classification task):
    training writes the runs, this step reads their dev predictions like `tune-decision` does."""
    decisions = []
    for run_dir in find_runs([root]):
        config_path = run_dir / "config.json"
        if not config_path.is_file():  # an ensemble: its decision is built with it
            continue
        config = json.loads(config_path.read_text())
        task = config.get("resolved", {}).get("task", "class")
        if config.get("tune_bias") and task in ("class", "both"):
            decisions.append(tune_run(run_dir, "bias", seed=config.get("seed", 0), verbose=verbose))
    return decisions

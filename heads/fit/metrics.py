"""Classification and regression metrics from one confusion matrix, defined as scikit-learn does.

Computed in numpy (no per-epoch sklearn import cost, no warnings spam); tests assert equality
with sklearn's f1_score(labels=range(C), zero_division=0), accuracy_score and
balanced_accuracy_score. Naming, since papers disagree: WA ("weighted accuracy") = accuracy =
correct / N; UA ("unweighted accuracy") = balanced accuracy = mean recall over the classes
present in the true labels (sklearn's definition; audmetric averages over true U predicted).
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

DEFINITIONS = {
    "macro_f1": "mean of per-class F1 over all C classes (a class absent from truth and predictions counts 0)",
    "micro_f1": "F1 of pooled counts = accuracy for single-label classification",
    "accuracy": "correct / N (sklearn accuracy_score)",
    "balanced_accuracy": "mean per-class recall over classes present in the truth (sklearn "
                         "balanced_accuracy_score)",
    "ccc": "concordance correlation, population moments; ccc_mean = mean over arousal, valence, dominance",
}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class (sklearn's convention)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_f1(cm: np.ndarray) -> np.ndarray:
    """F1 of every class from a confusion matrix; a class absent from truth and predictions counts 0."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0).astype(np.float64) + cm.sum(1)
    return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean per-class F1 over all n_classes (the one definition; decision tuning calls it in its inner loop)."""
    return float(per_class_f1(confusion(y_true, y_pred, n_classes)).mean())


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, letters: Sequence[str]) -> dict:
    C = len(letters)
    cm = confusion(y_true, y_pred, C)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1).astype(np.float64)
    f1 = per_class_f1(cm)
    recall = np.where(support > 0, tp / np.where(support > 0, support, 1), 0.0)
    n = cm.sum()
    accuracy = float(tp.sum() / n) if n else 0.0
    present = support > 0
    return {
        "n": int(n),
        "macro_f1": float(f1.mean()),
        "micro_f1": accuracy,
        "accuracy": accuracy,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "per_class_f1": {letter: float(v) for letter, v in zip(letters, f1)},
        "confusion": cm.tolist(),
    }


def ccc_np(pred: np.ndarray, target: np.ndarray) -> float:
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if len(pred) < 2:
        return float("nan")
    mp, mt = pred.mean(), target.mean()
    cov = ((pred - mp) * (target - mt)).mean()
    denom = pred.var() + target.var() + (mp - mt) ** 2
    return float(2 * cov / denom) if denom > 0 else 0.0


def regression_metrics(pred: np.ndarray, target: np.ndarray, names: Sequence[str] = ("arousal", "valence",
                                                                                      "dominance")) -> dict:
    out = {}
    for j, name in enumerate(names):
        known = np.isfinite(target[:, j])
        out[f"ccc_{name}"] = ccc_np(pred[known, j], target[known, j])
    values = [out[f"ccc_{n}"] for n in names]
    out["ccc_mean"] = float(np.mean(values)) if all(np.isfinite(values)) else float("nan")
    return out


def balanced_subsample(metric_fn, groups: np.ndarray, n_groups: int, k: int = 0, trials: int = 10,
                       seed: int = 0) -> float:
    """USC's balanced view of an imbalanced dev set: mean of metric_fn(rows) over `trials` draws of
    k rows per class (without replacement; k defaults to the smallest non-empty class)."""
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(groups == c) for c in range(n_groups)]
    by_class = [rows for rows in by_class if len(rows)]
    if not by_class:
        return float("nan")
    k = k or min(len(r) for r in by_class)
    scores = []
    for _ in range(trials):
        rows = np.concatenate([rng.choice(r, size=min(k, len(r)), replace=False) for r in by_class])
        scores.append(metric_fn(rows))
    return float(np.mean(scores))


# --------------------------------------------------------------------------------- how noisy a score is
BOOTSTRAP_DRAWS = 1000
BOOTSTRAP_LEVEL = 0.95
_CHUNK = 100  # resamples drawn at once: [100, n] indices stay small for a test set of tens of thousands


def resamples(n: int, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> Iterator[np.ndarray]:
    """[k, n] row indices, chunk by chunk: `draws` resamples of the n scored utterances with replacement."""
    rng = np.random.default_rng(seed)
    for start in range(0, draws, _CHUNK):
        yield rng.integers(0, n, size=(min(_CHUNK, draws - start), n))


def classification_draws(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, idx: np.ndarray
                         ) -> dict[str, np.ndarray]:
    """Macro-F1, UA and WA of each resample in `idx` ([k, n]), with the definitions above (a confusion matrix
    per resample)."""
    k = len(idx)
    codes = (np.arange(k)[:, None] * n_classes + y_true[idx]) * n_classes + y_pred[idx]
    cm = np.bincount(codes.ravel(), minlength=k * n_classes * n_classes).reshape(k, n_classes, n_classes)
    tp = np.diagonal(cm, axis1=1, axis2=2).astype(np.float64)
    support, predicted = cm.sum(2).astype(np.float64), cm.sum(1).astype(np.float64)
    f1 = np.where(support + predicted > 0, 2 * tp / np.maximum(support + predicted, 1), 0.0)
    recall = np.where(support > 0, tp / np.maximum(support, 1), np.nan)
    return {"macro_f1": f1.mean(1), "balanced_accuracy": np.nanmean(recall, 1), "accuracy": tp.sum(1) / idx.shape[1]}


def ccc_draws(pred: np.ndarray, target: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The concordance correlation (population moments) of each resample in `idx`; 0 where it is undefined."""
    p, t = pred[idx].astype(np.float64), target[idx].astype(np.float64)
    mp, mt = p.mean(1, keepdims=True), t.mean(1, keepdims=True)
    cov = ((p - mp) * (t - mt)).mean(1)
    denom = p.var(1) + t.var(1) + (mp - mt)[:, 0] ** 2
    return np.where(denom > 0, 2 * cov / np.where(denom > 0, denom, 1), 0.0)


def percentile_interval(values: np.ndarray, level: float = BOOTSTRAP_LEVEL) -> list[float]:
    tail = (1 - level) / 2
    return [float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))]


def bootstrap_intervals(y_true: np.ndarray | None, y_pred: np.ndarray | None, n_classes: int,
                        avd_pred: np.ndarray | None = None, avd_true: np.ndarray | None = None, seed: int = 0,
                        draws: int = BOOTSTRAP_DRAWS) -> dict[str, list[float]]:
    """95 % percentile intervals of a split's scores over `draws` resamples of its utterances (seeded):
    Macro-F1, UA and WA of the labelled rows, CCC per attribute and their mean on rows with all three known."""
    out: dict[str, list[float]] = {}
    if y_true is not None and y_pred is not None and len(y_true):
        values = [classification_draws(y_true, y_pred, n_classes, idx) for idx in resamples(len(y_true), draws, seed)]
        out.update({k: percentile_interval(np.concatenate([v[k] for v in values])) for k in values[0]})
    if avd_pred is not None and avd_true is not None:
        known = np.isfinite(avd_true).all(1)
        if known.sum() >= 2:
            p, t = avd_pred[known], avd_true[known]
            per = [np.stack([ccc_draws(p[:, j], t[:, j], idx) for j in range(3)])
                   for idx in resamples(len(t), draws, seed)]
            per_attr = np.concatenate(per, axis=1)
            for j, name in enumerate(("arousal", "valence", "dominance")):
                out[f"ccc_{name}"] = percentile_interval(per_attr[j])
            out["ccc_mean"] = percentile_interval(per_attr.mean(0))
    return out


# ------------------------------------------------------------------------- what a score has to beat
CHANCE_DRAWS = 20000
_CHANCE_CELLS = 1 << 22  # guesses drawn at once (32 MiB of int64); 1,000 draws per chunk up to 4,194 rows


def chance_macro_f1(y_true: np.ndarray, n_classes: int, draws: int = CHANCE_DRAWS, seed: int = 0) -> float:
    """Expected Macro-F1 (over all n_classes, as the heads are scored) of guessing uniformly at random, by a
    seeded simulation. Not 1/C: a rare class' F1 is capped by its low precision, so the yardstick a head must
    clear depends on the split's class balance. (UA and WA of uniform guessing are exactly 1/C.)"""
    y = np.asarray(y_true, dtype=np.int64)
    C = n_classes
    rng = np.random.default_rng(seed)
    chunk = max(1, min(1000, _CHANCE_CELLS // max(len(y), 1)))
    total = 0.0
    for start in range(0, draws, chunk):
        n = min(chunk, draws - start)
        guess = rng.integers(0, C, size=(n, len(y)))
        cells = np.arange(n)[:, None] * C * C + y[None, :] * C + guess
        cm = np.bincount(cells.ravel(), minlength=n * C * C).reshape(n, C, C)
        tp = np.diagonal(cm, axis1=1, axis2=2)
        denom = cm.sum(1) + cm.sum(2)
        f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
        total += f1.mean(1).sum()
    return float(total / draws)


REFERENCE_KEYS = ("macro_f1", "balanced_accuracy", "accuracy")


def reference_scores(y_true: np.ndarray | Sequence[int], majority: int, letters: Sequence[str],
                     draws: int = CHANCE_DRAWS, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Two floors for one split's labelled rows: predicting the training majority class for every row, and
    guessing uniformly at random. A Macro-F1 or WA is only meaningful next to them (WA of the majority class
    can look high on an imbalanced split; chance Macro-F1 is below 1/C)."""
    y = np.asarray(y_true, dtype=np.int64)
    m = classification_metrics(y, np.full(len(y), majority, dtype=np.int64), letters)
    C = len(letters)
    return {"majority": {"class": letters[majority], **{k: m[k] for k in REFERENCE_KEYS}},
            "chance": {"macro_f1": chance_macro_f1(y, C, draws, seed), "balanced_accuracy": 1 / C,
                       "accuracy": 1 / C}}


def group_scores(groups: np.ndarray, letters: Sequence[str], y_true: np.ndarray | None = None,
                 y_pred: np.ndarray | None = None, avd_true: np.ndarray | None = None,
                 avd_pred: np.ndarray | None = None) -> dict[str, dict[str, Any]]:
    """Scores per group (gender, speaker) of one split's rows; '' in `groups` = unknown, left out. A split's
    mean can hide a group the head fails on. Classification: Macro-F1 (over all C classes), UA and WA of the
    group's labelled rows (y_true >= 0), n = their count; CCC mean on the group's rows with all three
    attributes known (at least 2), n_avd = their count (n too when the head does not classify)."""
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(groups.tolist()) - {""}):
        member = groups == name
        entry: dict[str, Any] = {}
        if y_true is not None and y_pred is not None:
            scored = member & (y_true >= 0)
            if scored.any():
                m = classification_metrics(y_true[scored], y_pred[scored], letters)
                entry.update(n=m["n"], **{k: m[k] for k in REFERENCE_KEYS})
        if avd_true is not None and avd_pred is not None:
            scored = member & np.isfinite(avd_true).all(1)
            if scored.sum() >= 2:
                entry.update(ccc_mean=regression_metrics(avd_pred[scored], avd_true[scored])["ccc_mean"],
                             n_avd=int(scored.sum()))
                entry.setdefault("n", entry["n_avd"])
        if entry:
            out[name] = entry
    return out

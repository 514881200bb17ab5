"""Scoring a head: inference over a set of rows (batched longest-first), the metrics of its outputs, and the
value that selects the best epoch."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..inputs.labels import LabelTable
from ..inputs.speakers import speaker_names
from .losses import Objective, probabilities
from .metrics import (
    balanced_subsample,
    bootstrap_intervals,
    classification_metrics,
    group_scores,
    reference_scores,
    regression_metrics,
)
from .model import FusionHead
from .prepare import Prepared, autocast, batch_inputs
from .rundir import RunDir, split_outputs


@torch.no_grad()
def infer(model: FusionHead, prep: Prepared, rows: np.ndarray, with_loss: Objective | None = None
          ) -> tuple[dict[str, np.ndarray], float]:
    """Outputs for `rows` (in that order), batched longest-first; one host copy at the end."""
    cfg = prep.cfg
    model.eval()
    if not len(rows):
        return {}, float("nan")
    order = np.argsort(-prep.sort_lengths[rows], kind="stable")
    sorted_rows = rows[order]
    collected: dict[str, list[torch.Tensor]] = {}
    raw: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(sorted_rows), cfg.eval_batch_size):
        b = sorted_rows[start:start + cfg.eval_batch_size]
        for m in prep.modalities.values():  # streamed sets: the batch read in a few slices, not file by file
            if m.streamed:
                m.stage(b)
        b_t = torch.as_tensor(b).to(prep.device, non_blocking=True)
        with autocast(prep.device, cfg):
            out = model(batch_inputs(prep, b, b_t, torch.float32))
        for k, v in out.items():
            raw.setdefault(k, []).append(v.float())
        for k, v in probabilities(out, cfg.loss, cfg.am_scale).items():
            collected.setdefault(k, []).append(v)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    loss = float("nan")
    if with_loss is not None:
        outputs = {k: torch.cat(v) for k, v in raw.items()}
        loss = float(with_loss(outputs, prep.targets(torch.as_tensor(sorted_rows).to(prep.device))))
    return {k: torch.cat(v).cpu().numpy()[inverse] for k, v in collected.items()}, loss


def evaluate(prep: Prepared, rows: np.ndarray, pred: dict[str, np.ndarray]) -> dict[str, Any]:
    table = prep.table
    metrics: dict[str, Any] = {}
    if "probs" in pred:
        labelled = table.label[rows] >= 0
        if labelled.any():
            metrics.update(classification_metrics(table.label[rows][labelled], pred["probs"][labelled].argmax(1),
                                                  table.classes.letters))
    if "avd" in pred:
        target = table.attributes[rows]
        if np.isfinite(target).any():
            metrics.update(regression_metrics(pred["avd"], target))
            metrics["n_avd"] = int(np.isfinite(target).any(1).sum())
    if "gender" in pred:
        known = table.gender[rows] >= 0
        if known.any():
            metrics["gender_accuracy"] = float((pred["gender"][known].argmax(1) == table.gender[rows][known]).mean())
    return metrics


def selection_value(prep: Prepared, rows: np.ndarray, pred: dict[str, np.ndarray], metrics: dict, name: str,
                    seed: int) -> float:
    if not name.startswith("balanced_"):
        return float(metrics.get(name, float("nan")))
    cfg, table = prep.cfg, prep.table
    labels = table.label[rows]
    if name == "balanced_macro_f1":
        def score(sub: np.ndarray) -> float:
            return classification_metrics(labels[sub], pred["probs"][sub].argmax(1), table.classes.letters)["macro_f1"]
    else:
        def score(sub: np.ndarray) -> float:
            return regression_metrics(pred["avd"][sub], table.attributes[rows][sub])["ccc_mean"]
    groups = np.where(labels >= 0, labels, -1)
    return balanced_subsample(score, groups, len(table.classes), cfg.balanced_k, cfg.balanced_trials, seed)


def write_scored_splits(run: RunDir, prep: Prepared, predict: Callable[[np.ndarray], dict[str, np.ndarray]],
                        dev_pred: dict[str, np.ndarray]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Write predictions_<split>.csv for every split to predict and score the labelled ones; dev is scored on the
    rows selection used (`dev_pred`) and comes first. Returns the per-split metrics and dev's."""
    table, dev_split = prep.table, prep.cfg.dev_split
    splits: dict[str, dict[str, Any]] = {}
    for split, rows in prep.predict.items():
        if not len(rows):
            continue
        pred = predict(rows)
        outputs, extra = split_outputs(table, rows, pred)
        run.predictions(split, outputs, table.classes.letters, extra)
        metrics = evaluate(prep, rows, pred)
        if metrics and split != dev_split:  # dev's are scored below, on the rows selection used
            metrics.update(ci95=score_intervals(prep, rows, pred), **references(prep, rows, pred))
        if metrics:
            splits[split] = metrics
    dev_metrics = {**evaluate(prep, prep.dev, dev_pred), "ci95": score_intervals(prep, prep.dev, dev_pred)}
    splits[dev_split] = {**splits.get(dev_split, {}), **dev_metrics, **references(prep, prep.dev, dev_pred)}
    return {dev_split: splits.pop(dev_split), **splits}, dev_metrics


def score_intervals(prep: Prepared, rows: np.ndarray, pred: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """How far a split's scores could move on another draw of as many utterances: 95 % bootstrap intervals
    (1,000 resamples, seeded by the run's seed) of Macro-F1, UA, WA and CCC."""
    table = prep.table
    y_true = y_pred = None
    if "probs" in pred:
        labelled = table.label[rows] >= 0
        y_true, y_pred = table.label[rows][labelled], pred["probs"][labelled].argmax(1)
    return bootstrap_intervals(y_true, y_pred, len(table.classes), pred.get("avd"),
                               table.attributes[rows] if "avd" in pred else None, seed=prep.cfg.seed)


SPLIT_CHANCE_DRAWS = 2000  # uniform guessings simulated per split: the expected Macro-F1 to ~0.002 on a few dozen
# rows and far closer on a full test set, at a fraction of a second on tens of thousands of rows
GENDER_NAMES = ("female", "male")  # LabelTable.gender 0 and 1 (labels.GENDERS)


def references(prep: Prepared, rows: np.ndarray, pred: dict[str, np.ndarray]) -> dict[str, Any]:
    """What a split's scores must be read against: the majority-class and chance floors ("reference"), and the
    same scores per gender and per speaker ("by_gender", "by_speaker"), each only where the labels allow it.
    Chance is seeded with 0, not the run's seed, so every run on a split shows the same floor."""
    table = prep.table
    out: dict[str, Any] = {}
    y_true = y_pred = avd_true = None
    if "probs" in pred:
        y_true, y_pred = table.label[rows], pred["probs"].argmax(1)
        train_counts = table.class_counts(prep.train)
        labelled = y_true >= 0
        if labelled.any() and train_counts.sum():
            out["reference"] = reference_scores(y_true[labelled], int(train_counts.argmax()), table.classes.letters,
                                                draws=SPLIT_CHANCE_DRAWS, seed=0)
    if "avd" in pred:
        avd_true = table.attributes[rows]
    for key, groups in (("by_gender", gender_groups(table, rows)), ("by_speaker", speaker_groups(table, rows))):
        scores = group_scores(groups, table.classes.letters, y_true, y_pred, avd_true, pred.get("avd"))
        if scores:
            out[key] = scores
    return out


def gender_groups(table: LabelTable, rows: np.ndarray) -> np.ndarray:
    """Each row's gender as its name ('' unknown), the group key of by_gender."""
    names = np.array(["", *GENDER_NAMES], dtype=object)
    return names[np.clip(table.gender[rows], -1, 1) + 1]


def speaker_groups(table: LabelTable, rows: np.ndarray) -> np.ndarray:
    """Each row's speaker ('' unknown), the group key of by_speaker: the names --speaker-norm groups by."""
    return speaker_names(table, rows)

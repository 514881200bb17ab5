"""Reading what runs left on disk: predictions per split, metrics, config, epochs.

Post-processing (ensembles, decision tuning, reports) works from run directories only, so that
heads trained on different machines, feature sets or days can be combined without retraining.
A run directory is one written by `train-head` (config.json, metrics.json, epochs.json,
best.safetensors, predictions_<split>.csv) or by `ensemble` (ensemble.json instead of config.json
and epochs.json). The truth column (`EmoClass` for MSP-Podcast, `label` otherwise) holds the corpus' own code
(MSP letters incl. O/X, IEMOCAP codes such as `exc`); it is mapped back to the class index the run was scored on.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import HeadError
from ..fit.metrics import bootstrap_intervals, classification_metrics, regression_metrics
from ..fit.rundir import ENSEMBLE_CONFIG, METRICS_FILE, RUN_CONFIG, SplitOutputs
from ..inputs.corpora import get_corpus
from ..inputs.labels import ATTRIBUTES


def code_to_class(letters: Sequence[str], corpus: str = "msp") -> dict[str, int]:
    """Corpus code -> class index (codes not listed mean 'no class')."""
    mapping = {c: i for i, c in enumerate(letters)}
    codes = get_corpus(corpus).codes
    mapping.update({code: letters.index(letter) for code, letter in codes.items() if letter in letters})
    return mapping


def read_split(path: str | Path, letters: Sequence[str], corpus: str = "msp") -> SplitOutputs:
    path = Path(path)
    if not path.is_file():
        raise HeadError(f"{path}: predictions file not found")
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise HeadError(f"{path}: empty predictions file") from None
        rows = list(reader)
    col = {name: i for i, name in enumerate(header)}
    id_col, truth_col = get_corpus(corpus).columns
    if id_col not in col:
        raise HeadError(f"{path}: no {id_col} column (header: {', '.join(header)}); the run's corpus is {corpus}")
    prob_cols = [h for h in header if h.startswith("prob_") and h not in ("prob_female", "prob_male")]
    if prob_cols and [h[5:] for h in prob_cols] != list(letters):
        raise HeadError(f"{path}: probability columns {', '.join(prob_cols)} do not match the run's class order "
                        f"{' '.join(letters)}")
    ids = [r[col[id_col]] for r in rows]
    truth = np.array([r[col[truth_col]] if truth_col in col else "" for r in rows], dtype=object)
    mapping = code_to_class(list(letters), corpus)
    label = np.array([mapping.get(t, -1) for t in truth], dtype=np.int64)
    out = SplitOutputs(ids, truth, label)
    if prob_cols:
        out.probs = np.array([[float(r[col[c]]) for c in prob_cols] for r in rows], dtype=np.float64).reshape(
            len(rows), len(prob_cols))
        if "Prediction" in col:
            index = {c: i for i, c in enumerate(letters)}
            try:
                out.decision = np.array([index[r[col["Prediction"]]] for r in rows], dtype=np.int64)
            except KeyError as err:
                raise HeadError(f"{path}: prediction {err.args[0]!r} is not one of the classes "
                                f"{' '.join(letters)}") from None
        else:
            out.decision = out.probs.argmax(1) if len(rows) else np.zeros(0, np.int64)
    if all(f"pred_{a}" in col for a in ATTRIBUTES):
        def num(text: str) -> float:
            return float(text) if text.strip() else float("nan")

        out.avd_pred = np.array([[num(r[col[f"pred_{a}"]]) for a in ATTRIBUTES] for r in rows],
                                dtype=np.float64).reshape(len(rows), 3)
        out.avd_true = np.array([[num(r[col[a]]) if a in col else np.nan for a in ATTRIBUTES] for r in rows],
                                dtype=np.float64).reshape(len(rows), 3)
    return out


@dataclass
class RunOutputs:
    """A run (or ensemble) directory as post-processing sees it."""

    path: Path
    kind: str  # "run" | "ensemble"
    config: dict[str, Any]
    metrics: dict[str, Any]
    letters: list[str]
    names: list[str]
    task: str
    corpus: str
    dev_split: str
    splits: dict[str, SplitOutputs] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def selection_metric(self) -> str:
        sel = self.metrics.get("selection", {}).get("metric")
        if sel:
            return sel
        return "macro_f1" if self.task in ("class", "both") else "ccc_mean"

    @property
    def dev_selection(self) -> float | None:
        """Dev value of the metric the run was selected on. The balanced-subsample metrics of
        --select balanced are no per-split metric: they exist only in metrics.json["selection"]."""
        metric = self.selection_metric
        value = self.split_metrics(self.dev_split).get(metric)
        selection = self.metrics.get("selection", {})
        if value is None and selection.get("metric") == metric:
            value = selection.get("value")
        return None if value is None else float(value)

    def split_metrics(self, split: str) -> dict[str, Any]:
        return self.metrics.get("splits", {}).get(split, {})

    @property
    def epochs(self) -> list[dict]:
        path = self.path / "epochs.json"
        return json.loads(path.read_text()) if path.is_file() else []


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise HeadError(f"{path}: cannot read ({err})") from None


def is_run_dir(path: Path) -> bool:
    return (path / METRICS_FILE).is_file() and ((path / RUN_CONFIG).is_file() or (path / ENSEMBLE_CONFIG).is_file())


def load_run(path: str | Path, read_splits: bool = True) -> RunOutputs:
    path = Path(path)
    if not path.is_dir():
        raise HeadError(f"{path}: no such run directory")
    if not is_run_dir(path):
        raise HeadError(f"{path}: not a run directory (needs metrics.json and config.json from train-head, or "
                        "ensemble.json from ensemble); for a sweep pass its runs/* directories")
    metrics = _load_json(path / METRICS_FILE)
    if (path / ENSEMBLE_CONFIG).is_file():
        config = _load_json(path / ENSEMBLE_CONFIG)
        kind = "ensemble"
        letters, names = config["classes"]["letters"], config["classes"]["names"]
        task, corpus = config["task"], config.get("corpus", "msp")
    else:
        config = _load_json(path / RUN_CONFIG)
        kind = "run"
        resolved = config.get("resolved", {})
        classes = resolved.get("classes") or {"letters": metrics.get("classes", []),
                                              "names": metrics.get("classes", [])}
        letters, names = list(classes["letters"]), list(classes["names"])
        task, corpus = resolved.get("task", "class"), config.get("corpus", "msp")
    dev = metrics.get("dev_split") or config.get("dev_split", "dev")
    run = RunOutputs(path, kind, config, metrics, list(letters), list(names), task, corpus, dev)
    if read_splits:
        for csv_path in sorted(path.glob("predictions_*.csv")):
            split = csv_path.stem[len("predictions_"):]
            run.splits[split] = read_split(csv_path, letters, corpus)
        if dev not in run.splits:
            raise HeadError(f"{path}: no predictions_{dev}.csv (the dev split the run was selected on)")
    return run


def resolve_member_path(entry: dict[str, str], ensemble_dir: Path) -> Path:
    """A member's run directory: relative to the ensemble directory first, then its absolute path."""
    candidates = []
    if entry.get("relpath"):
        candidates.append(Path(ensemble_dir) / entry["relpath"])
    if entry.get("path"):
        candidates.append(Path(entry["path"]))
    for candidate in candidates:
        if is_run_dir(candidate):
            return candidate
    raise HeadError(f"{ensemble_dir}: member {entry.get('path')!r} not found (moved? it is looked up relative to the "
                    "ensemble directory first, then by its absolute path)")


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories under the given paths (a run, an ensemble, a sweep, IEMOCAP folds, or any tree)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise HeadError(f"{p}: no such directory")
        if is_run_dir(p):
            found.append(p)
        for metrics in sorted(p.rglob("metrics.json")):
            d = metrics.parent
            if d != p and is_run_dir(d):
                found.append(d)
    unique = list(dict.fromkeys(found))
    if not unique:
        raise HeadError(f"no run directories under {', '.join(map(str, paths))}")
    return unique


def score(out: SplitOutputs, letters: Sequence[str], decision: np.ndarray | None = None,
          seed: int | None = None) -> dict[str, Any]:
    """The trainer's metrics (heads/fit/metrics.py) for one split's outputs. With a `seed`, also their 95 %
    bootstrap intervals ("ci95", the trainer's bootstrap_intervals over the same rows), so that a system built
    after training (an ensemble) carries the same error bars as the runs it is compared with."""
    metrics: dict[str, Any] = {}
    pred = out.decision if decision is None else decision
    known = out.label >= 0
    scored = pred is not None and bool(known.any())
    if scored:
        metrics.update(classification_metrics(out.label[known], pred[known], letters))
    has_avd = out.avd_pred is not None and out.avd_true is not None and bool(np.isfinite(out.avd_true).any())
    if has_avd:
        metrics.update(regression_metrics(out.avd_pred, out.avd_true))
        metrics["n_avd"] = int(np.isfinite(out.avd_true).any(1).sum())
    if seed is not None and metrics:
        intervals = bootstrap_intervals(out.label[known] if scored else None, pred[known] if scored else None,
                                        len(letters), out.avd_pred if has_avd else None,
                                        out.avd_true if has_avd else None, seed=seed)
        if intervals:
            metrics["ci95"] = intervals
    return metrics

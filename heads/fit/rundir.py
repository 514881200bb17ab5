"""What a run leaves on disk, and the summary table printed at the end.

Per-epoch logs are rewritten after every epoch, so a killed run still documents what it did.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..inputs.corpora import PREDICTION_COLUMNS, get_corpus
from ..inputs.labels import ATTRIBUTES, LabelTable
from .metrics import DEFINITIONS

RUN_CONFIG = "config.json"  # a trained head's config (with its resolved values)
ENSEMBLE_CONFIG = "ensemble.json"  # an ensemble's members and rule, in place of config.json
METRICS_FILE = "metrics.json"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def write_json(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean(payload), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def flat_epoch(row: dict) -> dict:
    """Epoch record without nested per-class / confusion entries (for the CSV)."""
    return {k: v for k, v in row.items() if not isinstance(v, (dict, list))}


@dataclass
class SplitOutputs:
    """One split of one run: truth and outputs aligned with `ids`."""

    ids: list[str]
    truth: np.ndarray  # object: corpus code as written ('' when unknown)
    label: np.ndarray  # int64 class index, -1 = no class (O/X, other corpus codes, unlabelled)
    probs: np.ndarray | None = None  # [N, C] as written (6 decimals)
    decision: np.ndarray | None = None  # [N] int64: the run's own predicted class (Prediction column)
    avd_true: np.ndarray | None = None  # [N, 3] NaN where unknown
    avd_pred: np.ndarray | None = None  # [N, 3]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray) -> "SplitOutputs":
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return SplitOutputs([self.ids[i] for i in index], self.truth[index], self.label[index], pick(self.probs),
                            pick(self.decision), pick(self.avd_true), pick(self.avd_pred))



def write_predictions(path: Path, out: SplitOutputs, letters: Sequence[str],
                      extra: dict[str, np.ndarray] | None = None, columns: tuple[str, str] = PREDICTION_COLUMNS
                      ) -> None:
    """predictions_<split>.csv in the trainer's layout, headed by the corpus' id and truth `columns`; `decision`
    is written as Prediction (it need not be the argmax of the probabilities, e.g. after a tie rule or a bias),
    `extra` columns are appended."""
    header = [columns[0]]
    if out.probs is not None:
        header += [columns[1], "Prediction", *[f"prob_{c}" for c in letters]]
    if out.avd_pred is not None:
        header += [*ATTRIBUTES, *[f"pred_{a}" for a in ATTRIBUTES]]
    extra = extra or {}
    header += list(extra)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i, uid in enumerate(out.ids):
            row: list[Any] = [uid]
            if out.probs is not None:
                row += [out.truth[i], letters[int(out.decision[i])], *[f"{v:.6f}" for v in out.probs[i]]]
            if out.avd_pred is not None:
                true = out.avd_true[i] if out.avd_true is not None else np.full(3, np.nan)
                row += [("" if not np.isfinite(v) else f"{v:.4f}") for v in true]
                row += [f"{v:.4f}" for v in out.avd_pred[i]]
            row += [(f"{v[i]:.6f}" if isinstance(v[i], (float, np.floating)) else str(v[i])) for v in extra.values()]
            writer.writerow(row)




def split_outputs(table: LabelTable, rows: np.ndarray, pred: dict[str, np.ndarray]) -> tuple[SplitOutputs, dict]:
    """A head's outputs for table rows as one split of predictions (the truth as the corpus wrote it), and the
    extra columns (gender probabilities of --aux gender)."""
    out = SplitOutputs([table.ids[i] for i in rows], table.letter[rows].copy(), table.label[rows].copy())
    if "probs" in pred:
        out.probs = pred["probs"].astype(np.float64)
        out.decision = out.probs.argmax(1)
    if "avd" in pred:
        out.avd_pred = pred["avd"].astype(np.float64)
        out.avd_true = table.attributes[rows].astype(np.float64)
    extra = {"prob_female": pred["gender"][:, 0], "prob_male": pred["gender"][:, 1]} if "gender" in pred else {}
    return out, extra


class RunDir:
    """The one writer of a run directory: config.json (ensemble.json for an ensemble), epochs.json / epochs.csv,
    predictions_<split>.csv and metrics.json. Trainers and ensembles write through it; after/outputs.py reads
    what it wrote. Per-epoch logs are rewritten after every epoch, so a killed run still documents what it did.
    `corpus` (resolved, not auto) names the predictions' id and truth columns."""

    def __init__(self, path: str | Path, corpus: str):
        self.path = Path(path)
        self.columns = get_corpus(corpus).columns
        self.path.mkdir(parents=True, exist_ok=True)

    def config(self, values: dict[str, Any], ensemble: bool = False) -> None:
        write_json(self.path / (ENSEMBLE_CONFIG if ensemble else RUN_CONFIG), values)

    def epochs(self, epochs: list[dict]) -> None:
        write_json(self.path / "epochs.json", epochs)
        rows = [flat_epoch(e) for e in epochs]
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(self.path / "epochs.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)

    def predictions(self, split: str, out: SplitOutputs, letters: Sequence[str],
                    extra: dict[str, np.ndarray] | None = None) -> None:
        write_predictions(self.path / f"predictions_{split}.csv", out, letters, extra, self.columns)

    def metrics(self, summary: dict[str, Any]) -> "RunResult":
        write_json(self.path / METRICS_FILE, summary)
        return RunResult(self.path, summary)


def counts_table(counts: dict[str, dict[str, int]]) -> str:
    """Class counts per split as a small aligned table ("(none)": rows without a class)."""
    columns = list(next(iter(counts.values())))
    width = max(8, *(len(c) + 2 for c in columns))
    lines = ["class counts" + "".join(f"{c:>{width}}" for c in columns)]
    lines += [f"{role:<12}" + "".join(f"{n[c]:>{width}}" for c in columns) for role, n in counts.items()]
    return "\n".join(lines)


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{100 * value:.2f}" if pct else f"{value:.4f}"


def summary_table(result: dict) -> str:
    """Readable end-of-run table: one line per evaluated split, per-class F1, timing, definitions."""
    lines = []
    if "best_epoch" in result:  # a trained run (ensembles pass only their splits)
        sel = result["selection"]
        lines.append(f"run {result['out']}: best epoch {result['best_epoch']} of {result['epochs_run']} "
                     f"(selected on dev {sel['metric']} = {_fmt(sel['value'])})")
    if "timing" in result:
        t = result["timing"]
        lines.append(f"time {t['total_s']:.1f} s: load {t['load_s']:.1f} s, first step {t['first_step_s']:.1f} s, "
                     f"{t['epoch_s_mean']:.2f} s/epoch; padding waste {100 * t['padding_waste']:.1f} %")
    has_cls = any("macro_f1" in m for m in result["splits"].values())
    has_avd = any("ccc_mean" in m for m in result["splits"].values())
    head = f"{'split':<8}{'n':>7}"
    if has_cls:
        head += f"{'Macro-F1':>10}{'Micro-F1':>10}{'WA':>8}{'UA':>8}"
    if has_avd:
        head += f"{'CCC-A':>8}{'CCC-V':>8}{'CCC-D':>8}{'CCC':>8}"
    lines += [head, "-" * len(head)]
    for split, m in result["splits"].items():
        row = f"{split:<8}{m.get('n', m.get('n_avd', 0)):>7}"
        if has_cls:
            row += "".join(f"{_fmt(m.get(k), True):>{w}}" for k, w in
                           (("macro_f1", 10), ("micro_f1", 10), ("accuracy", 8), ("balanced_accuracy", 8)))
        if has_avd:
            row += "".join(f"{_fmt(m.get(k)):>8}" for k in ("ccc_arousal", "ccc_valence", "ccc_dominance", "ccc_mean"))
        lines.append(row)
    intervals = {split: m["ci95"] for split, m in result["splits"].items() if m.get("ci95")}
    for split, ci in intervals.items():
        shown = [(label, ci[key], key != "ccc_mean") for key, label in
                 (("macro_f1", "Macro-F1"), ("balanced_accuracy", "UA"), ("accuracy", "WA"), ("ccc_mean", "CCC"))
                 if key in ci]
        lines.append(f"95 % interval ({split}, bootstrap over its utterances): " + ", ".join(
            f"{label} {_fmt(lo, pct)}-{_fmt(hi, pct)}" for label, (lo, hi), pct in shown))
    for split, m in result["splits"].items():
        if "per_class_f1" in m:
            per_class = "  ".join(f"{c} {100 * v:.1f}" for c, v in m["per_class_f1"].items())
            lines.append(f"per-class F1 ({split}): {per_class}")
    for split, m in result["splits"].items():
        lines += reference_lines(split, m)
    if has_cls:
        lines.append(f"WA = {DEFINITIONS['accuracy']}; UA = {DEFINITIONS['balanced_accuracy']}")
    return "\n".join(lines)


_GROUP_SCORES = (("macro_f1", "Macro-F1", True), ("balanced_accuracy", "UA", True), ("accuracy", "WA", True),
                 ("ccc_mean", "CCC", False))


def _scores(m: dict, keys: Sequence[str] = ("macro_f1", "balanced_accuracy", "accuracy", "ccc_mean")) -> str:
    return ", ".join(f"{label} {_fmt(m[key], pct)}" for key, label, pct in _GROUP_SCORES if key in m and key in keys)


def reference_lines(split: str, m: dict) -> list[str]:
    """A split's scores in context: the majority-class and chance floors, the scores per gender, and the
    spread over speakers (min / median / max; metrics.json lists every speaker)."""
    lines = []
    if "reference" in m:
        ref = m["reference"]
        lines.append(f"reference ({split}): majority class {ref['majority']['class']}: {_scores(ref['majority'])}; "
                     f"chance: {_scores(ref['chance'])}")
    if "by_gender" in m:
        lines.append(f"by gender ({split}): " + "; ".join(
            f"{name} n={g['n']} {_scores(g, ('macro_f1', 'balanced_accuracy', 'ccc_mean'))}"
            for name, g in m["by_gender"].items()))
    speakers = m.get("by_speaker", {})
    key, label, pct = ("balanced_accuracy", "UA", True) if any("balanced_accuracy" in g for g in speakers.values()) \
        else ("ccc_mean", "CCC", False)
    values = np.array([g[key] for g in speakers.values() if g.get(key) is not None], dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values):
        low, mid, high = (_fmt(float(v), pct) for v in (values.min(), np.median(values), values.max()))
        lines.append(f"by speaker ({split}, {len(values)} speakers): {label} min {low} median {mid} max {high}")
    return lines


@dataclass
class RunResult:
    out: Path
    summary: dict[str, Any]

    @property
    def dev(self) -> dict:
        return self.summary["splits"][self.summary["dev_split"]]

    def table(self) -> str:
        return summary_table(self.summary)

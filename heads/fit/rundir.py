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

from .metrics import DEFINITIONS


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


def write_epochs(out: Path, epochs: list[dict]) -> None:
    write_json(out / "epochs.json", epochs)
    rows = [flat_epoch(e) for e in epochs]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "epochs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def write_predictions(path: Path, ids: Sequence[str], letters: Sequence[str], true_letter: Sequence[str],
                      pred: dict[str, np.ndarray], attributes: np.ndarray | None) -> None:
    """One row per utterance: truth, prediction, the per-class probabilities and A/V/D if predicted."""
    header = ["FileName"]
    if "probs" in pred:
        header += ["EmoClass", "Prediction", *[f"prob_{c}" for c in letters]]
    if "avd" in pred:
        header += ["EmoAct", "EmoVal", "EmoDom", "pred_EmoAct", "pred_EmoVal", "pred_EmoDom"]
    if "gender" in pred:
        header += ["prob_female", "prob_male"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i, uid in enumerate(ids):
            row: list[Any] = [uid]
            if "probs" in pred:
                p = pred["probs"][i]
                row += [true_letter[i], letters[int(np.argmax(p))], *[f"{v:.6f}" for v in p]]
            if "avd" in pred:
                row += [("" if not np.isfinite(v) else f"{v:.4f}") for v in attributes[i]]
                row += [f"{v:.4f}" for v in pred["avd"][i]]
            if "gender" in pred:
                row += [f"{v:.6f}" for v in pred["gender"][i]]
            writer.writerow(row)


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
    for split, m in result["splits"].items():
        if "per_class_f1" in m:
            per_class = "  ".join(f"{c} {100 * v:.1f}" for c, v in m["per_class_f1"].items())
            lines.append(f"per-class F1 ({split}): {per_class}")
    if has_cls:
        lines.append(f"WA = {DEFINITIONS['accuracy']}; UA = {DEFINITIONS['balanced_accuracy']}")
    return "\n".join(lines)


@dataclass
class RunResult:
    out: Path
    summary: dict[str, Any]

    @property
    def dev(self) -> dict:
        return self.summary["splits"][self.summary["dev_split"]]

    def table(self) -> str:
        return summary_table(self.summary)

"""A corpus' fold protocol (IEMOCAP: 5-fold leave-one-session-out): one run per fold, UA and WA per fold and
across folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..inputs.corpora import resolve_corpus
from .config import HeadConfig
from .rundir import RunResult, write_json


def fold_configs(cfg: HeadConfig) -> list[HeadConfig]:
    """One run per fold of the corpus' protocol, into <out>/fold<k>."""
    folds = resolve_corpus(cfg.corpus, cfg.labels).folds
    return [cfg.replace(fold=fold, out=str(Path(cfg.out) / f"fold{fold}")) for fold in folds]


def write_folds_summary(out: Path, per_fold: list[tuple[str, RunResult]], verbose: bool = False) -> RunResult:
    """<out>/folds.json from the fold runs (test split of each fold); the RunResult of the group."""
    folds = []
    for fold, result in per_fold:
        test = result.summary["splits"].get("test", {})
        folds.append({"fold": int(fold) if fold.isdigit() else fold, "UA": test.get("balanced_accuracy"),
                      "WA": test.get("accuracy"), "macro_f1": test.get("macro_f1"), "n": test.get("n"),
                      "best_epoch": result.summary["best_epoch"]})
    ua = np.array([f["UA"] for f in folds], dtype=float)
    wa = np.array([f["WA"] for f in folds], dtype=float)
    summary = {"out": str(out), "folds": folds, "UA_mean": float(ua.mean()), "UA_std": float(ua.std()),
               "WA_mean": float(wa.mean()), "WA_std": float(wa.std()),
               "definitions": {"UA": "balanced accuracy (mean per-class recall) on the held-out session",
                               "WA": "accuracy on the held-out session"}}
    write_json(out / "folds.json", summary)
    if verbose:
        print(f"{'fold':<6}{'n':>6}{'UA':>8}{'WA':>8}")
        for f in folds:
            print(f"{f['fold']:<6}{f['n']:>6}{100 * f['UA']:>8.2f}{100 * f['WA']:>8.2f}")
        print(f"{'mean':<6}{'':>6}{100 * ua.mean():>8.2f}{100 * wa.mean():>8.2f}  (std UA {100 * ua.std():.2f}, "
              f"WA {100 * wa.std():.2f})")
    return RunResult(out, summary)

"""A corpus' fold protocol (IEMOCAP: 5-fold leave-one-session-out): one run per fold, UA and WA per fold and across
folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import HeadConfig
from .inputs.corpora import get_corpus, read_labels
from .rundir import write_json


def run_folds(cfg: HeadConfig, table=None, pool=None, verbose: bool = True):
    from .inputs.features import FeaturePool
    from .train import RunResult, train

    corpus = get_corpus(cfg.corpus)
    table = table if table is not None else read_labels(cfg.corpus, cfg.labels, cfg.detailed, cfg.classes)
    if pool is None:
        pool = FeaturePool.for_config(cfg)
    out = Path(cfg.out)
    folds = []
    for fold in corpus.folds:
        result = train(cfg.replace(fold=fold, out=str(out / f"fold{fold}")), table=table, pool=pool, verbose=verbose)
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

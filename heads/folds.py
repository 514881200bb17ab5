"""IEMOCAP's 5-fold leave-one-session-out protocol: five runs, UA and WA per fold and across folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import HeadConfig
from .rundir import write_json


def run_iemocap_folds(cfg: HeadConfig, table=None, pool=None, verbose: bool = True):
    from .data import FeaturePool
    from .iemocap import read_iemocap
    from .train import RunResult, train

    table = table if table is not None else read_iemocap(cfg.labels)
    if pool is None:
        pool = FeaturePool.for_config(cfg)
    out = Path(cfg.out)
    folds = []
    for k in range(1, 6):
        result = train(cfg.replace(fold=str(k), out=str(out / f"fold{k}")), table=table, pool=pool, verbose=verbose)
        test = result.summary["splits"].get("test", {})
        folds.append({"fold": k, "UA": test.get("balanced_accuracy"), "WA": test.get("accuracy"),
                      "macro_f1": test.get("macro_f1"), "n": test.get("n"), "best_epoch": result.summary["best_epoch"]})
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

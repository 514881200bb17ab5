"""Stage 2's Python API: training, then the steps after training that a config asks for.

Training (heads/fit) writes run directories and knows nothing of what reads them; a config's --tune-bias is
such a reader (heads/after/decision.py tunes on the dev predictions a run wrote), so it runs here, once the
runs exist: for one head, each of its --seeds, each fold, or each config of a sweep.
"""

from __future__ import annotations

from typing import Any

from .after.decision import tune_requested
from .fit.config import HeadConfig
from .fit.rundir import RunResult
from .fit.sweep import rank_world
from .fit.train import train as train_runs
from .fit.train import train_sweep
from .inputs.features import FeaturePool
from .inputs.labels import LabelTable


def train(cfg: HeadConfig, table: LabelTable | None = None, pool: FeaturePool | None = None,
          verbose: bool = True) -> RunResult:
    """Train one head (or its --seeds, or the corpus' folds for --fold all) into cfg.out; tune its decision
    bias on dev if --tune-bias."""
    result = train_runs(cfg, table, pool, verbose)
    if cfg.tune_bias:
        tune_requested(result.out, verbose)
    return result


def sweep(base: HeadConfig, spec: str, verbose: bool = True) -> list[dict[str, Any]]:
    """Train every config of a sweep (heads/fit/sweep.py) into base.out/runs; tune the runs that ask for it."""
    rows = train_sweep(base, spec, verbose)
    if rank_world()[0] == 0:  # after every rank's runs are written (train_sweep waits for them)
        tune_requested(base.out, verbose)
    return rows

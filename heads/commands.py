"""Stage 2's commands, registered with `sercache` in pipeline order."""

from __future__ import annotations

from types import ModuleType

from sercache.command import Stage


def _train() -> ModuleType:
    from . import cli  # lazy: loads torch; `sercache --help` must not

    return cli


def _after() -> ModuleType:
    from .after import cli  # lazy: loads torch; `sercache --help` must not

    return cli


STAGES = (
    Stage("train", "train a speech-emotion head (or a sweep, or IEMOCAP folds) from cached features",
          lambda: _train().TRAIN, ("train-head",)),
    Stage("ensemble", "combine trained heads (vote, averaging, stacking)", lambda: _after().ENSEMBLE),
    Stage("tune-decision", "per-class biases or prior correction on dev", lambda: _after().TUNE),
    Stage("report", "confusion matrices, learning curves, leaderboard", lambda: _after().REPORT, ("report-heads",)),
)

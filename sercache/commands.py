"""The commands that join the stages, registered with `sercache` after stage 2's."""

from __future__ import annotations

import importlib
from types import ModuleType

from .command import Stage


def _module(name: str) -> ModuleType:
    """A command's module, imported when the command runs: each loads torch and the encoders, which
    `sercache --help` must not, and one command's imports must not hold up another's."""
    return importlib.import_module(f"{__package__}.{name}")


STAGES = (
    Stage("export-head", "a head or ensemble as a self-describing directory (weights, provenance, metrics, "
          "model card; with --include-encoders the encoders too)", lambda: _module("export_cli").EXPORT),
    Stage("predict", "run a head or ensemble on audio files (audio in, emotion out) or on cached features",
          lambda: _module("predict_cli").PREDICT, ("predict-head",)),
    Stage("bench", "every head on every corpus by its protocol, and across corpora: a train x test matrix",
          lambda: _module("bench").BENCH),
    Stage("demo", "the whole pipeline on a synthesised corpus, offline", lambda: _module("demo").DEMO),
)

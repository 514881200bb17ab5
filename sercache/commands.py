"""The commands that join the stages, registered with `sercache` after stage 2's."""

from __future__ import annotations

from types import ModuleType

from .command import Stage


def _code() -> tuple[ModuleType, ModuleType, ModuleType]:
    from . import demo, export_cli, predict_cli  # lazy: loads torch and the encoders; `sercache --help` must not

    return predict_cli, demo, export_cli


STAGES = (
    Stage("export-head", "a head or ensemble as a self-describing directory (weights, provenance, metrics, "
          "model card; with --include-encoders the encoders too)", lambda: _code()[2].EXPORT),
    Stage("predict", "run a head or ensemble on audio files (audio in, emotion out) or on cached features",
          lambda: _code()[0].PREDICT, ("predict-head",)),
    Stage("demo", "the whole pipeline on a synthesised corpus, offline", lambda: _code()[1].DEMO),
)

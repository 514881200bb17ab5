"""The commands that join the stages, registered with `sercache` after stage 2's."""

from __future__ import annotations

from types import ModuleType

from .command import Stage


def _code() -> tuple[ModuleType, ModuleType]:
    from . import demo, predict_cli  # lazy: loads torch and the encoders; `sercache --help` must not

    return predict_cli, demo


STAGES = (
    Stage("predict", "run a head or ensemble on audio files (audio in, emotion out) or on cached features",
          lambda: _code()[0].PREDICT, ("predict-head",)),
    Stage("demo", "the whole pipeline on a synthesised corpus, offline", lambda: _code()[1].DEMO),
)

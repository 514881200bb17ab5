"""Stage 1's commands, registered with `sercache` in pipeline order."""

from __future__ import annotations

from types import ModuleType

from sercache.command import Stage


def _code() -> tuple[ModuleType, ModuleType]:
    from . import cli, text_cli  # lazy: loads torch and the encoders; `sercache --help` must not

    return cli, text_cli


STAGES = (
    Stage("extract", "run a frozen audio or text encoder once over a corpus into a feature store",
          lambda: _code()[0].EXTRACT, ("extract-features",)),
    Stage("transcribe", "Whisper transcripts into a text set of a store", lambda: _code()[1].TRANSCRIBE),
    Stage("import-transcripts", "human transcripts into a text set", lambda: _code()[1].IMPORT),
    Stage("train-aec", "fine-tune a seq2seq ASR error corrector on (ASR, human) pairs", lambda: _code()[1].TRAIN_AEC),
    Stage("correct-transcripts", "rewrite an ASR text set with an AEC model", lambda: _code()[1].CORRECT),
    Stage("evaluate-aec", "WER / BLEU / GLEU of text sets against human transcripts", lambda: _code()[1].EVALUATE),
)

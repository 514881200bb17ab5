"""`sercache <stage> ...`: every command of the pipeline behind one entry point, in pipeline order.

Each stage module defines a `Command` (its options, generated from its config dataclass by
`sercache.dataclass_cli`, and the function that runs them); this module lists the stages and builds
their parsers. The older console scripts (`extract-features`, `train-head`, ...) are aliases that build
the same parser, so `extract-features --help` and `sercache extract --help` list the same flags.
Stage modules are imported only when their stage runs: `sercache --help` loads no encoder library.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from typing import Callable

from . import __version__, command
from .command import HelpFormatter


@dataclass(frozen=True)
class Stage:
    name: str
    target: str  # "module:ATTRIBUTE" of the stage's Command
    summary: str  # its line in `sercache --help`
    aliases: tuple[str, ...] = ()  # console scripts that run the same parser


STAGES = (
    Stage("extract", "sercache.extract.cli:EXTRACT", "run a frozen audio or text encoder once over a corpus into "
          "a feature store", ("extract-features",)),
    Stage("transcribe", "sercache.extract.text_cli:TRANSCRIBE", "Whisper transcripts into a text set of a store"),
    Stage("import-transcripts", "sercache.extract.text_cli:IMPORT", "human transcripts into a text set"),
    Stage("train-aec", "sercache.extract.text_cli:TRAIN_AEC", "fine-tune a seq2seq ASR error corrector on "
          "(ASR, human) pairs"),
    Stage("correct-transcripts", "sercache.extract.text_cli:CORRECT", "rewrite an ASR text set with an AEC model"),
    Stage("evaluate-aec", "sercache.extract.text_cli:EVALUATE", "WER / BLEU / GLEU of text sets against human "
          "transcripts"),
    Stage("train", "sercache.heads.cli:TRAIN", "train a speech-emotion head (or a sweep, or IEMOCAP folds) from "
          "cached features", ("train-head",)),
    Stage("ensemble", "sercache.heads.after.cli:ENSEMBLE", "combine trained heads (vote, averaging, stacking)"),
    Stage("tune-decision", "sercache.heads.after.cli:TUNE", "per-class biases or prior correction on dev"),
    Stage("predict", "sercache.predict_cli:PREDICT", "run a head or ensemble on audio files (audio in, emotion "
          "out) or on cached features", ("predict-head",)),
    Stage("export-head", "sercache.heads.after.cli:EXPORT", "a head or ensemble as a self-describing directory "
          "(weights, provenance, metrics, model card)"),
    Stage("report", "sercache.heads.after.cli:REPORT", "confusion matrices, learning curves, leaderboard",
          ("report-heads",)),
    Stage("cache", "sercache.cache.cli:CACHE", "inspect, verify or export a feature store"),
    Stage("text", "sercache.cache.cli:TEXT", "list or export a store's text sets (transcripts)"),
    Stage("demo", "sercache.demo:DEMO", "the whole pipeline on a synthesised corpus, offline"),
)
_BY_NAME = {name: stage for stage in STAGES for name in (stage.name, *stage.aliases)}


def stage_command(name: str) -> command.Command:
    """The Command of a stage (or of one of its aliases), its module loaded now."""
    module, attribute = _BY_NAME[name].target.split(":")
    return getattr(importlib.import_module(module), attribute)


def build_parser(name: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of a stage; `prog` is how the user called it (`extract-features`, `sercache extract`)."""
    return command.build_parser(stage_command(name), prog or f"sercache {name}")


def run(name: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse `argv` for a stage and run it; input errors print `prog: error: ...` and return 2."""
    return command.run(stage_command(name), argv, prog or f"sercache {name}")


def umbrella_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sercache", formatter_class=HelpFormatter,
                                     description="Speech-emotion recognition from cached frozen-encoder features. "
                                                 "`sercache STAGE --help` lists a stage's options.")
    parser.add_argument("--version", action="version", version=f"sercache {__version__}")
    sub = parser.add_subparsers(title="stages, in pipeline order", metavar="STAGE", dest="stage", required=True)
    for stage in STAGES:
        sub.add_parser(stage.name, help=stage.summary, aliases=list(stage.aliases), add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _BY_NAME:
        return run(argv[0], argv[1:], f"sercache {argv[0]}")
    umbrella_parser().parse_args(argv)  # --help, --version, or a usage error; every stage was handled above
    return 2


def _alias(name: str, prog: str) -> Callable[[], int]:
    def entry() -> int:
        return run(name, sys.argv[1:], prog)

    entry.__doc__ = f"The `{prog}` console script: `sercache {name}` under its older name."
    return entry


# console scripts of pyproject.toml, one per stage under its older name
extract_features = _alias("extract", "extract-features")
transcribe = _alias("transcribe", "transcribe")
import_transcripts = _alias("import-transcripts", "import-transcripts")
train_aec = _alias("train-aec", "train-aec")
correct_transcripts = _alias("correct-transcripts", "correct-transcripts")
evaluate_aec = _alias("evaluate-aec", "evaluate-aec")
train_head = _alias("train", "train-head")
ensemble = _alias("ensemble", "ensemble")
tune_decision = _alias("tune-decision", "tune-decision")
predict_head = _alias("predict", "predict-head")
report_heads = _alias("report", "report-heads")


if __name__ == "__main__":
    sys.exit(main())

"""`sercache <stage> ...`: every command of the pipeline behind one entry point, in pipeline order.

Each stage package registers its commands (sercache.command: name, summary, and a loader of the `Command`
whose options are generated from a config dataclass by `sercache.dataclass_cli`); this module imports those
registrations and builds the parsers. The older console scripts (`extract-features`, `train-head`, ...) are
aliases that build the same parser, so `extract-features --help` and `sercache extract --help` list the same
flags. A stage's code loads only when it runs: `sercache --help` loads no model library.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from . import __version__, command
from . import commands as joining
from .cache import commands as store
from .command import HelpFormatter
from .extract import commands as stage_one
from .heads import commands as stage_two

# each package declares its stages (lhotse's bin/modes pattern); joined here in pipeline order
STAGES = (*stage_one.STAGES, *stage_two.STAGES, *joining.STAGES, *store.STAGES)
_BY_NAME = {name: stage for stage in STAGES for name in (stage.name, *stage.aliases)}


def stage_command(name: str) -> command.Command:
    """The Command of a stage (or of one of its aliases), its code loaded now."""
    return _BY_NAME[name].load()


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

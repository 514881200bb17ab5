"""`sercache extract` (alias `extract-features`): one encoder over one corpus into one feature set of a store."""

from __future__ import annotations

import argparse
import sys

from sercache.command import Command, run
from sercache.dataclass_cli import add_dataclass_arguments, from_namespace

from .config import ExtractConfig
from .pipeline import run_extraction


def _run(args: argparse.Namespace) -> int:
    cfg = from_namespace(ExtractConfig, args)
    summary = run_extraction(cfg)
    return 1 if getattr(summary, "failures", None) and cfg.on_error == "stop" else 0


EXTRACT = Command(
    configure=lambda parser: add_dataclass_arguments(parser, ExtractConfig),
    run=_run,
    description="Run a frozen audio encoder once over a corpus and cache its frame-level features (or a text "
                "encoder over a text set of the store, with --text). Resumable: run the same command again after "
                "a crash. Multi-GPU: torchrun --nproc-per-node N -m sercache.extract.cli ...",
)


def main(argv: list[str] | None = None) -> int:
    """`python -m sercache.extract.cli` (what torchrun runs), same as `extract-features`."""
    return run(EXTRACT, argv, "extract-features")


if __name__ == "__main__":
    sys.exit(main())

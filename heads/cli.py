"""`sercache train` (alias `train-head`): one head, the IEMOCAP folds, or a sweep, with flags from HeadConfig."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from sercache.command import Command, run
from sercache.dataclass_cli import add_dataclass_arguments, from_namespace, given

from . import api
from .errors import HeadError
from .fit.config import HeadConfig
from .fit.plan import check, ineffective
from .fit.sweep import markdown_table


@dataclass
class TrainOptions:
    """What train-head does besides training the one HeadConfig: sweeps, a config file, printing."""

    sweep: str = field(default="", metadata={
        "help": "train many heads over one loaded copy of the data: a grid 'loss=ce,focal;gamma=2,2.5', a preset "
                "(sheffield7), or a JSON file of override dicts; under torchrun the configs are spread over the "
                "processes"})
    config: str = field(default="", metadata={
        "help": "JSON file of HeadConfig values, e.g. a run's config.json (flags typed on the command line win)"})
    print_config: bool = field(default=False, metadata={"help": "print the resolved config as JSON and exit"})


def configure(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, TrainOptions, group="run")
    add_dataclass_arguments(parser, HeadConfig)


def resolve(args: argparse.Namespace) -> tuple[HeadConfig, TrainOptions]:
    """The HeadConfig of a command line: dataclass defaults, then the preset named, then --config's values,
    then the typed flags."""
    opts = from_namespace(TrainOptions, args)
    base: dict = {}
    if opts.config:
        try:
            values = json.loads(Path(opts.config).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise HeadError(f"--config {opts.config}: {err}") from None
        if not isinstance(values, dict):
            raise HeadError(f"--config {opts.config}: expected a JSON object of HeadConfig values")
        values.pop("resolved", None)  # a run's config.json can be fed back in
        HeadConfig.from_dict(values)  # unknown keys are refused here
        base = values  # only what the file sets: its preset still applies under it
    typed = {name: getattr(args, name) for name in given(args, HeadConfig)}
    return HeadConfig.from_values({**base, **typed}), opts


def _run(args: argparse.Namespace) -> int:
    cfg, opts = resolve(args)
    if opts.print_config:
        print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
        return 0
    check(cfg)
    for note in ineffective(cfg, sweep=bool(opts.sweep)):
        warnings.warn(note, stacklevel=1)
    if opts.sweep:
        rows = api.sweep(cfg, opts.sweep)
        if rows:
            keys = list(dict.fromkeys(k for r in rows for k in r))
            print(markdown_table(rows, keys))
        return 0
    api.train(cfg)
    return 0


TRAIN = Command(
    configure=configure,
    run=_run,
    description="Train a speech-emotion head from cached features: one run, the IEMOCAP leave-one-session-out "
                "folds, or a sweep.",
    epilog="example:\n  train-head --store cache/ --features wavlm-large/L-1 \\\n"
           "      --text-features 'roberta-large/asr/whisper-large-v2/mean(L-4..-1)' \\\n"
           "      --labels Labels/labels_consensus.csv --out runs/focal --loss focal --gamma 2 --weights prior",
)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m sercache.heads.cli` (what torchrun runs), same as `train-head`."""
    return run(TRAIN, None if argv is None else list(argv), "train-head")


if __name__ == "__main__":
    sys.exit(main())

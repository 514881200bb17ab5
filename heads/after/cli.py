"""Commands after training: `ensemble`, `tune-decision`, `report` (alias `report-heads`), each with its options
as a dataclass turned into flags by sercache.dataclass_cli (`predict` and `export-head` join both stages:
sercache/predict_cli.py, sercache/export_cli.py).

Errors in the inputs exit with status 2 and one line on stderr, like train-head.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Sequence

from sercache.command import Command, run
from sercache.dataclass_cli import add_dataclass_arguments, from_namespace, given

from ..errors import HeadError
from ..fit.config import HeadConfig
from .decision import DECISION_METHODS, STACKERS, tune_run
from .ensemble import METHODS, RECIPES, TIE_RULES, TIE_TEXT, build_ensemble, run_recipe
from .report import build_report


# ----------------------------------------------------------------------------------- ensemble
@dataclass
class EnsembleOptions:
    members: list[str] = field(default_factory=list, metadata={
        "positional": True, "help": "run directories (a sweep directory stands for all its runs)"})
    method: str = field(default="vote", metadata={
        "choices": METHODS, "help": "vote: one vote per member; mean / logmean: probability (geometric) averaging; "
                                    "stack: meta-classifier over the members' log-probabilities trained on dev "
                                    "(out-of-fold)"})
    tie_rule: str = field(default="prob", metadata={"choices": TIE_RULES, "help": "how --method vote breaks ties"})
    stacker: str = field(default="logreg", metadata={"choices": STACKERS, "help": "meta-classifier of --method stack"})
    folds: int = field(default=5, metadata={
        "help": "cross-validation folds on dev (stacking and the CV estimate of bias tuning)"})
    prior_correction: bool = field(default=False, metadata={
        "help": "add -log(train prior) to the log-probabilities (for a balanced test set)"})
    prior_counts: str = field(default="", metadata={
        "help": "training class counts for --prior-correction, e.g. A=3053,S=3882,... (default: the first "
                "member's label file)"})
    common_ids: bool = field(default=False, metadata={
        "help": "use the utterances every member predicted, instead of refusing members that differ"})
    member_decisions: bool = field(default=False, metadata={
        "help": "apply each member's decision.json (tune-decision) before combining"})
    recipe: str = field(default="", metadata={
        "choices": RECIPES, "help": "train the recipe's members as one sweep, then vote (the train-head options "
                                    "below apply to all members)"})
    recipe_features: str = field(default="", metadata={
        "help": "audio feature set per encoder family of the recipe: whisper=NAME,wavlm=NAME,hubert=NAME, or one "
                "NAME for every member (the 7 loss/weight variants on one feature set; duplicate configs get "
                "seed+i)"})


def _ensemble(args: argparse.Namespace) -> None:
    o = from_namespace(EnsembleOptions, args)
    cfg = from_namespace(HeadConfig, args)
    if "out" not in given(args, HeadConfig):
        raise HeadError("--out is required" + (" with --recipe" if o.recipe else " (the ensemble directory)"))
    decision = ("prior+bias" if o.prior_correction else "bias") if cfg.tune_bias else \
        ("prior" if o.prior_correction else "")
    options = dict(method=o.method, tie_rule=o.tie_rule, stacker=o.stacker, folds=o.folds, seed=cfg.seed,
                   decision=decision, prior_counts=o.prior_counts, common_ids=o.common_ids,
                   member_decisions=o.member_decisions, cv_folds=o.folds)
    if o.recipe:
        if o.members:
            raise HeadError("--recipe trains its own members; give no run directories")
        run_recipe(o.recipe, cfg, o.recipe_features, verbose=True, **options)  # members validated there
        return
    if not o.members:
        raise HeadError("give run directories to combine, or --recipe")
    build_ensemble(o.members, cfg.out, verbose=True, **options)


def _ensemble_options(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, EnsembleOptions, group="ensemble")
    add_dataclass_arguments(parser, HeadConfig)  # for --recipe (and --out, --seed, --tune-bias)


ENSEMBLE = Command(
    configure=_ensemble_options,
    run=_ensemble,
    description="Combine trained heads (run directories, or sweeps = all their runs) into one system, or train a "
                "recipe and vote in one command.",
    epilog="tie rules of --method vote:\n" + "\n".join(f"  {k}: {v}" for k, v in TIE_TEXT.items()) +
           "\n\nexamples:\n  ensemble runs/a runs/b runs/c --out runs/vote3\n"
           "  ensemble runs/sweep --method stack --stacker logreg --out runs/stack\n"
           "  ensemble --recipe sheffield7 --store cache/ --labels Labels/labels_consensus.csv \\\n"
           "      --text-features roberta-large/asr/mean-4..-1 --out runs/sheffield7 \\\n"
           "      --recipe-features whisper=whisper-large-v3/L-1,wavlm=wavlm-large/L-1,hubert=hubert-xlarge/L-1",
)


# ----------------------------------------------------------------------------------- tune-decision
@dataclass
class TuneOptions:
    runs: list[str] = field(metadata={"positional": True, "help": "run or ensemble directories"})
    method: str = field(default="bias", metadata={
        "choices": DECISION_METHODS, "help": "bias: tuned biases; prior: b = -log(train prior); prior+bias: tuned "
                                             "starting from the prior"})
    prior_counts: str = field(default="", metadata={
        "help": "training class counts, e.g. A=3053,S=3882,... (default: from the run's label file)"})
    folds: int = field(default=5, metadata={"help": "folds of the out-of-fold estimate of the tuning (0: off)"})
    limit: float = field(default=20.0, metadata={"help": "largest |bias| in nats"})
    seed: int = field(default=0, metadata={"help": "random seed of the folds"})


def _tune(args: argparse.Namespace) -> None:
    o = from_namespace(TuneOptions, args)
    for path in o.runs:
        tune_run(path, o.method, o.prior_counts, o.folds, o.seed, o.limit, verbose=True)


TUNE = Command(
    configure=lambda parser: add_dataclass_arguments(parser, TuneOptions),
    run=_tune,
    description="Per-class bias tuning on dev (maximises Macro-F1, never lowers it) and/or the prior correction "
                "-log(pi) for a balanced test set, for a trained head or an averaging/stacking ensemble. Writes "
                "decision.json in the run directory; predict-head applies it.",
)


# ----------------------------------------------------------------------------------- report
@dataclass
class ReportOptions:
    runs: list[str] = field(metadata={
        "positional": True, "help": "run, sweep or ensemble directories (searched recursively)"})
    out: str = field(metadata={"help": "report directory"})
    title: str = field(default="sercache heads report", metadata={"help": "title of report.md and report.html"})
    html: bool = field(default=True, metadata={"help": "also write a self-contained report.html"})
    curves: bool = field(default=True, metadata={"help": "draw learning-curve figures"})
    jobs: int = field(default=0, metadata={"help": "processes drawing the figures (0: one per core)"})


def _report(args: argparse.Namespace) -> None:
    o = from_namespace(ReportOptions, args)
    build_report(o.runs, o.out, o.title, o.html, o.curves, verbose=True, jobs=o.jobs)


REPORT = Command(
    configure=lambda parser: add_dataclass_arguments(parser, ReportOptions),
    run=_report,
    description="Confusion matrices, learning curves, per-class tables and a leaderboard of runs, sweeps and "
                "ensembles, as PNG + report.md (+ a self-contained report.html).",
)


# ----------------------------------------------------------------------------------- Python entry points
def ensemble_main(argv: Sequence[str] | None = None) -> int:
    return run(ENSEMBLE, None if argv is None else list(argv), "ensemble")


def tune_main(argv: Sequence[str] | None = None) -> int:
    return run(TUNE, None if argv is None else list(argv), "tune-decision")


def report_main(argv: Sequence[str] | None = None) -> int:
    return run(REPORT, None if argv is None else list(argv), "report-heads")

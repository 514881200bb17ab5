"""Commands after training: `ensemble`, `tune-decision`, `predict` (alias `predict-head`), `report`
(alias `report-heads`), each with its options as a dataclass turned into flags by sercache.dataclass_cli.

Errors in the inputs exit with status 2 and one line on stderr, like train-head.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Sequence

from sercache.cli import Command, run
from sercache.dataclass_cli import add_dataclass_arguments, from_namespace, given
from sercache.extract.encoders import PRECISIONS

from .config import HeadConfig
from .decision import DECISION_METHODS, STACKERS
from .ensemble import METHODS, RECIPES, TIE_RULES, TIE_TEXT
from .errors import HeadError
from .inputs.corpora import CORPORA
from .predict import FORMATS


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
    from .ensemble import build_ensemble, run_recipe

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
    from .decision import tune_run

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


# ----------------------------------------------------------------------------------- predict
@dataclass
class PredictOptions:
    model: str = field(default="", metadata={
        "positional": True, "help": "run directory of train-head (best.safetensors) or of ensemble, or a directory "
                                    "of export-head"})
    audio: list[str] = field(default_factory=list, metadata={
        "positional": True, "help": "audio files to classify (audio in, emotion out: the features are computed "
                                    "from them as the head's provenance records; no store needed)"})
    run: str = field(default="", metadata={"help": "the head, ensemble or export (instead of the first positional)"})
    input: str = field(default="", metadata={
        "help": "audio to classify: a directory or a manifest (.csv/.tsv/.jsonl with id,path[,start,end])"})
    out: str = field(default="", metadata={
        "help": "store mode: output directory (required); audio mode: predictions file, .csv or .jsonl "
                "(default: CSV on stdout)"})
    store: str = field(default="", metadata={
        "help": "store mode: the feature store (default: the one the run was trained on); audio mode: also cache "
                "the computed features and transcripts in this store (repeated calls reuse them)"})
    segment: float = field(default=0.0, metadata={
        "help": "audio mode: predict every SEGMENT seconds of each file (a time series; 0: whole files)"})
    model_path: list[str] = field(default_factory=list, metadata={
        "help": "audio mode: where a recorded model is, ROLE=PATH (roles audio, asr, aec, text) or "
                "RECORDED_NAME=PATH; its weights must hash to the recorded value"})
    precision: str = field(default="auto", metadata={
        "choices": PRECISIONS, "help": "audio mode: encoder precision (auto: as recorded on GPU, fp32 on CPU)"})
    features: list[str] = field(default_factory=list, metadata={
        "help": "audio feature set(s) (default: the run's); their provenance must match the checkpoint's"})
    text_features: list[str] = field(default_factory=list, metadata={
        "help": "text feature set(s) (default: the run's)"})
    ids: str = field(default="", metadata={
        "help": "utterances: a file with one id per line or a CSV with a FileName column"})
    labels: str = field(default="", metadata={
        "help": "utterances from a label file (with --split); labels there are scored"})
    split: str = field(default="", metadata={"help": "split of --labels, e.g. test3"})
    corpus: str = field(default="", metadata={"choices": CORPORA, "help": "format of --labels (default: the run's)"})
    decision: str = field(default="auto", metadata={
        "help": "auto: apply the run's decision.json if present; none; or a decision.json path"})
    format: str = field(default="letter", metadata={
        "choices": FORMATS, "help": "categorical submission: letter = FileName,EmoClass (class letter); baseline = "
                                    "the challenge baseline's Filename,Prediction with the 8 scores in order "
                                    "A S H U F D C N"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N or auto"})
    drop_missing: bool = field(default=False, metadata={"help": "skip utterances missing from the cache"})


def _predict(args: argparse.Namespace) -> None:
    from .predict import predict

    o = from_namespace(PredictOptions, args)
    run, audio = (o.run, [*([o.model] if o.model else []), *o.audio]) if o.run else (o.model, o.audio)
    if not run:
        raise HeadError("give the head: a run, ensemble or export directory (first argument or --run)")
    if audio or o.input:
        from .audio_predict import predict_audio

        store_only = [f"--{k.replace('_', '-')}" for k in ("features", "text_features", "ids", "labels", "split")
                      if getattr(o, k)]
        if store_only:
            raise HeadError(f"{', '.join(store_only)}: options of predicting from a store, not from audio")
        predict_audio(run, audio, o.input, o.out, o.store, o.segment, o.model_path, o.decision, o.device,
                      o.precision, verbose=True)
        return
    if o.segment or o.model_path:
        raise HeadError("--segment and --model-path apply to audio input (files or --input)")
    if not o.out:
        raise HeadError("--out is required (the output directory)")
    predict(run, o.out, o.store, o.features, o.text_features, o.ids, o.labels, o.split, o.corpus, o.decision,
            o.format, o.device, o.drop_missing, verbose=True)


PREDICT = Command(
    configure=lambda parser: add_dataclass_arguments(parser, PredictOptions),
    run=_predict,
    description="Run a trained head, an ensemble or an exported head on audio files (audio in, emotion out: the "
                "encoders, ASR, AEC and text encoder the head was trained with run in memory and the per-file "
                "class, probabilities and A/V/D are written as CSV or JSONL; files that cannot be used get an "
                "error row), or on cached features (store mode: the challenge submission "
                "submission_categorical.csv / submission_attributes.csv, probabilities.csv and predict.json).",
    epilog="examples:\n  sercache predict runs/focal a.wav b.flac --out preds.csv\n"
           "  sercache predict --run exported/ --input my_audio/ --segment 5 --out series.jsonl\n"
           "  predict-head runs/focal --store cache/ --labels Labels/labels_consensus.csv --split test3 "
           "--out submissions/focal",
)


# ----------------------------------------------------------------------------------- export-head
@dataclass
class ExportOptions:
    run: str = field(metadata={"positional": True, "help": "run directory of train-head or of ensemble"})
    to: str = field(metadata={"help": "new directory to write (must not exist or be empty)"})


def _export(args: argparse.Namespace) -> None:
    from .export import export_head

    o = from_namespace(ExportOptions, args)
    export_head(o.run, o.to, verbose=True)


EXPORT = Command(
    configure=lambda parser: add_dataclass_arguments(parser, ExportOptions),
    run=_export,
    description="Export a trained head or ensemble as a self-describing directory: safetensors weights, config, "
                "classes, provenance (encoders, weights hashes, layers, Whisper mode, ASR, AEC, text encoder), "
                "dev/test metrics and a model card (README.md); `predict` loads it with no run directory or "
                "store around.",
    epilog="example:\n  sercache export-head runs/focal --to models/focal\n"
           "  sercache predict models/focal recording.wav",
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
    from .report import build_report

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
    return run("ensemble", None if argv is None else list(argv), "ensemble")


def tune_main(argv: Sequence[str] | None = None) -> int:
    return run("tune-decision", None if argv is None else list(argv), "tune-decision")


def predict_main(argv: Sequence[str] | None = None) -> int:
    return run("predict", None if argv is None else list(argv), "predict-head")


def report_main(argv: Sequence[str] | None = None) -> int:
    return run("report", None if argv is None else list(argv), "report-heads")

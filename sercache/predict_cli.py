"""`sercache predict` (alias `predict-head`): a trained head, ensemble or export on audio files (stage 1 and
stage 2 in memory: predict_audio.py) or on cached features (stage 2 alone: heads/after/predict.py)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from sercache.extract.encoders import PRECISIONS
from sercache.heads.after.predict import ENGINES, FORMATS, predict
from sercache.heads.errors import HeadError
from sercache.heads.inputs.corpora import CORPORA

from .command import Command, run
from .dataclass_cli import add_dataclass_arguments, apply_threads, from_namespace, threads_field
from .predict_audio import predict_audio
from .segments import Segmenting


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
        "help": "store mode: output directory (required; not a .csv or .jsonl name); audio mode: predictions file, "
                ".csv or .jsonl (default: CSV on stdout)"})
    store: str = field(default="", metadata={
        "help": "store mode: the feature store (default: the one the run was trained on); audio mode: also cache "
                "the computed features and transcripts in this store (repeated calls reuse them)"})
    segment: str = field(default="", metadata={
        "help": "audio mode: predict every SEGMENT seconds of each file, or each speech segment a voice-activity "
                "detector finds ('speech'): one row per segment with its start and end (default: whole files)"})
    min_segment: float = field(default=1.0, metadata={
        "help": "--segment speech: shorter speech segments are left out (seconds)"})
    max_segment: float = field(default=10.0, metadata={
        "help": "--segment speech: longer speech segments are cut into equal pieces no longer than this (seconds)"})
    plot: bool = field(default=False, metadata={
        "help": "with --segment: a PNG per recording of its class probabilities over time, in <out>_plots/"})
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
    engine: str = field(default="torch", metadata={
        "choices": ENGINES, "help": "what runs the head (the encoders are PyTorch either way): torch, or onnx = "
                                    "each head's head.onnx through onnxruntime (an export made with "
                                    "`export-head --onnx`)"})
    classes: list[str] = field(default_factory=list, metadata={
        "help": "predict within these of the head's classes (its letters, e.g. A H N for MSP-Podcast, or the "
                "corpus's labels): softmax heads renormalise over them, WBCE heads take the best of them, a tuned "
                "decision's biases apply first, ensemble members are restricted before they combine"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N or auto"})
    threads: int = threads_field()
    drop_missing: bool = field(default=False, metadata={"help": "skip utterances missing from the cache"})


# what audio mode writes to a file; store mode writes a directory
FILE_SUFFIXES = (".csv", ".jsonl", ".json")


def _predict(args: argparse.Namespace) -> None:
    o = from_namespace(PredictOptions, args)
    apply_threads(o.threads)
    run, audio = (o.run, [*([o.model] if o.model else []), *o.audio]) if o.run else (o.model, o.audio)
    if not run:
        raise HeadError("give the head: a run, ensemble or export directory (first argument or --run)")
    if audio or o.input:
        store_only = [f"--{k.replace('_', '-')}" for k in ("features", "text_features", "ids", "labels", "split")
                      if getattr(o, k)]
        if store_only:
            raise HeadError(f"{', '.join(store_only)}: options of predicting from a store, not from audio")
        segmenting = Segmenting.parse(o.segment, o.min_segment, o.max_segment)
        if o.plot and not segmenting.active:
            raise HeadError("--plot draws a recording's segments over time: give --segment SECONDS or speech")
        predict_audio(run, audio, o.input, o.out, o.store, segmenting, o.model_path, o.decision, o.device,
                      o.precision, verbose=True, engine=o.engine, classes=o.classes, plot=o.plot)
        return
    if o.out.lower().endswith(FILE_SUFFIXES):
        raise HeadError(f"--out {o.out}: no audio files and no --input were given, so this would be store mode, "
                        "which writes a directory (submission CSVs, probabilities.csv, predict.json), not a "
                        f"{Path(o.out).suffix} file; audio files were expected: give them after the head (or "
                        "--input DIR_OR_MANIFEST), or give store mode a directory name")
    if o.segment or o.model_path or o.plot:
        raise HeadError("--segment, --plot and --model-path apply to audio input (files or --input)")
    if not o.out:
        raise HeadError("--out is required (the output directory)")
    predict(run, o.out, o.store, o.features, o.text_features, o.ids, o.labels, o.split, o.corpus, o.decision,
            o.format, o.device, o.drop_missing, verbose=True, engine=o.engine, classes=o.classes)


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
           "  sercache predict runs/focal meeting.wav --segment speech --plot --out meeting.csv\n"
           "  sercache predict exported-onnx/ a.wav --engine onnx --classes A H N S --out preds.csv\n"
           "  predict-head runs/focal --store cache/ --labels Labels/labels_consensus.csv --split test3 "
           "--out submissions/focal",
)



def predict_main(argv: Sequence[str] | None = None) -> int:
    return run(PREDICT, None if argv is None else list(argv), "predict-head")



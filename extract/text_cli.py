"""Commands of the text branch: transcribe, import-transcripts, train-aec, correct-transcripts, evaluate-aec.

Each command's options are a dataclass (the Python API's config where there is one), turned into flags
by `sercache.dataclass_cli`; `sercache.cli` lists the stages.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from sercache.cache import Store, open_store
from sercache.cache.columns import ID_COLUMNS, TRANSCRIPT_COLUMNS
from sercache.cache.texts import TextSetWriter
from sercache.command import Command
from sercache.dataclass_cli import add_dataclass_arguments, apply_threads, from_namespace, threads_field

from .aec import AECTrainConfig, correct_text_set, evaluate_text_sets, format_scores, read_splits, train_aec
from .aec_fallback import RECORD_FILE, check_dev_wer
from .manifest import read_id_column
from .transcribe import TranscribeConfig, run_transcription


def read_human_transcripts(path: Path) -> dict[str, str]:
    """MSP-Podcast `Transcripts/` (one .txt per utterance; id = stem + '.wav') or a CSV
    with (FileName|id) and (Transcript|text) columns."""
    if path.is_dir():
        return {p.stem + ".wav": p.read_text(errors="replace").strip() for p in sorted(path.glob("*.txt"))}
    return read_id_column(path, ID_COLUMNS, TRANSCRIPT_COLUMNS, "transcript")


# ----------------------------------------------------------------------------------------- transcribe
def _transcribe(args: argparse.Namespace) -> None:
    run_transcription(from_namespace(TranscribeConfig, args))


TRANSCRIBE = Command(
    configure=lambda parser: add_dataclass_arguments(parser, TranscribeConfig),
    run=_transcribe,
    description="Whisper transcripts into a text set of the store, resumable, with per-utterance confidence "
                "(avg_logprob, no_speech_prob). Deterministic decoding: temperature 0, beam search, no conditioning "
                "on previous text; empty or silent audio gives an empty transcript.",
)


# ----------------------------------------------------------------------------------- import-transcripts
@dataclass
class ImportOptions:
    store: str = field(metadata={"help": "store directory (created if missing)"})
    source: str = field(metadata={"help": "Transcripts/ directory (one .txt per utterance) or a CSV with "
                                          "FileName/id and Transcript/text columns", "flag": "from"})
    name: str = field(default="human", metadata={"help": "text-set name"})


def _import(args: argparse.Namespace) -> None:
    opts = from_namespace(ImportOptions, args)
    texts = read_human_transcripts(Path(opts.source))
    writer = TextSetWriter(Store.create(opts.store), opts.name)
    writer.ensure_metadata({"kind": "human", "model": None, "source": str(opts.source)})
    new = {u: t for u, t in texts.items() if u not in writer.done()}
    if new:
        writer.commit([{"id": u, "text": t} for u, t in sorted(new.items())])
    print(f"{opts.name}: imported {len(new)} transcripts ({len(texts) - len(new)} already there)")


IMPORT = Command(
    configure=lambda parser: add_dataclass_arguments(parser, ImportOptions),
    run=_import,
    description="Import human transcripts into a text set: " + (read_human_transcripts.__doc__ or ""),
)


# ------------------------------------------------------------------------------------------ train-aec
def _train_aec(args: argparse.Namespace) -> None:
    train_aec(from_namespace(AECTrainConfig, args))


TRAIN_AEC = Command(
    configure=lambda parser: add_dataclass_arguments(parser, AECTrainConfig),
    run=_train_aec,
    description="Fine-tune a seq2seq ASR error-correction model on (ASR hypothesis -> human transcript) pairs of "
                "the Train split; keep the checkpoint with the best Development WER. The model is --model (a "
                "seq2seq checkpoint) or a warm start from a BERT-style encoder (--init; default: the bundled "
                "all-minilm-l6-v2). The dev WERs and the fallback threshold tuned on dev are recorded in "
                f"OUT/best/{RECORD_FILE}.",
)


# -------------------------------------------------------------------------------- correct-transcripts
@dataclass
class CorrectOptions:
    store: str = field(metadata={"help": "store directory"})
    source: str = field(metadata={"help": "ASR text set, e.g. asr/whisper-large-v2"})
    model: str = field(metadata={"help": "seq2seq checkpoint (e.g. train-aec's OUT/best)"})
    name: str = field(default="", metadata={"help": "text-set name (default: corrected/<asr>+<model>)"})
    batch_size: int = field(default=32, metadata={"help": "transcripts per generation batch"})
    beam_size: int = field(default=4, metadata={"help": "beam width"})
    max_length: int = field(default=128, metadata={"help": "tokens per text at most"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto"})
    threads: int = threads_field()
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    fallback: bool = field(default=True, metadata={"help": "keep the ASR text of utterances whose correction "
                                                           "scores below the threshold train-aec tuned on dev"})
    force: bool = field(default=False, metadata={"help": "correct even with a model whose recorded dev WER is "
                                                         "above the uncorrected text's"})


def _correct(args: argparse.Namespace) -> None:
    o = from_namespace(CorrectOptions, args)
    apply_threads(o.threads)
    check_dev_wer(o.model, o.force)
    correct_text_set(open_store(o.store), o.source, o.model, o.name, o.batch_size, o.beam_size, o.max_length,
                     o.device, o.progress, fallback=o.fallback)


CORRECT = Command(
    configure=lambda parser: add_dataclass_arguments(parser, CorrectOptions),
    run=_correct,
    description="Rewrite an ASR text set with a seq2seq AEC model into a new text set (the raw one is kept). "
                "Refuses a model whose dev WER, as train-aec recorded it, is above the uncorrected text's "
                "(unless --force); utterances whose correction scores below the recorded threshold keep their "
                "ASR text (--no-fallback: never).",
)


# --------------------------------------------------------------------------------------- evaluate-aec
@dataclass
class EvaluateOptions:
    store: str = field(metadata={"help": "store directory"})
    text: list[str] = field(metadata={"help": "text set(s) to score"})
    reference: str = field(default="human", metadata={"help": "human text set"})
    splits: str = field(default="", metadata={"help": "labels_consensus.csv or an id,split CSV (default: all ids)"})
    split: str = field(default="development", metadata={"help": "split to score"})


def _evaluate(args: argparse.Namespace) -> None:
    o = from_namespace(EvaluateOptions, args)
    splits = read_splits(o.splits) if o.splits else None
    print(format_scores(evaluate_text_sets(open_store(o.store), o.text, o.reference, splits, o.split)))


EVALUATE = Command(
    configure=lambda parser: add_dataclass_arguments(parser, EvaluateOptions),
    run=_evaluate,
    description="WER / BLEU / GLEU of text sets against human transcripts, on lower-cased, punctuation-free text.",
)

"""Console commands of the text branch: import-transcripts, correct-transcripts, train-aec, evaluate-aec."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from sercache.cache import CacheError, Store, open_store
from sercache.cache.texts import TextSetWriter
from sercache.dataclass_cli import add_dataclass_arguments, from_namespace

from .aec import AECTrainConfig, correct_text_set, evaluate_text_sets, format_scores, read_splits, train_aec


def _run(fn, prog: str) -> int:
    try:
        fn()
    except (CacheError, ValueError, KeyError, FileNotFoundError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


def read_human_transcripts(path: Path) -> dict[str, str]:
    """MSP-Podcast `Transcripts/` (one .txt per utterance; id = stem + '.wav') or a CSV
    with (FileName|id) and (Transcript|text) columns."""
    if path.is_dir():
        return {p.stem + ".wav": p.read_text(errors="replace").strip() for p in sorted(path.glob("*.txt"))}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        id_key = next((k for k in ("FileName", "id", "utt_id") if k in fields), None)
        text_key = next((k for k in ("Transcript", "transcript", "text") if k in fields), None)
        if not id_key or not text_key:
            raise ValueError(f"{path}: needs (FileName or id) and (Transcript or text) columns")
        return {row[id_key]: row[text_key].strip() for row in reader}


def import_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="import-transcripts", description=read_human_transcripts.__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--from", dest="source", required=True, help="Transcripts/ directory or CSV")
    parser.add_argument("--name", default="human")
    args = parser.parse_args(argv)

    def work():
        texts = read_human_transcripts(Path(args.source))
        writer = TextSetWriter(Store.create(args.store), args.name)
        writer.ensure_metadata({"kind": "human", "model": None, "source": str(args.source)})
        new = {u: t for u, t in texts.items() if u not in writer.done()}
        if new:
            writer.commit([{"id": u, "text": t} for u, t in sorted(new.items())])
        print(f"{args.name}: imported {len(new)} transcripts ({len(texts) - len(new)} already there)")

    return _run(work, "import-transcripts")


def correct_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="correct-transcripts",
                                     description="Rewrite an ASR text set with a seq2seq AEC model.")
    parser.add_argument("--store", required=True)
    parser.add_argument("--source", required=True, help="ASR text set, e.g. asr/whisper-large-v2")
    parser.add_argument("--model", required=True, help="seq2seq checkpoint (e.g. train-aec's OUT/best)")
    parser.add_argument("--name", default="", help="default: corrected/<asr>+<model>")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    return _run(lambda: correct_text_set(open_store(args.store), args.source, args.model, args.name,
                                         args.batch_size, args.beam_size, args.max_length, args.device),
                "correct-transcripts")


def train_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="train-aec", description="Fine-tune a seq2seq AEC model "
                                     "on (ASR hypothesis -> human transcript) pairs; keep the best dev WER.")
    add_dataclass_arguments(parser, AECTrainConfig)
    cfg = from_namespace(AECTrainConfig, parser.parse_args(argv))
    return _run(lambda: train_aec(cfg), "train-aec")


def evaluate_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evaluate-aec", description="WER / BLEU / GLEU of text sets "
                                     "against human transcripts (paper table 5 shape).")
    parser.add_argument("--store", required=True)
    parser.add_argument("--reference", default="human")
    parser.add_argument("--text", action="append", required=True, help="text set to score (repeatable)")
    parser.add_argument("--splits", default="", help="labels_consensus.csv or id,split CSV (default: all ids)")
    parser.add_argument("--split", default="development")
    args = parser.parse_args(argv)

    def work():
        splits = read_splits(args.splits) if args.splits else None
        scores = evaluate_text_sets(open_store(args.store), args.text, args.reference, splits, args.split)
        print(format_scores(scores))

    return _run(work, "evaluate-aec")

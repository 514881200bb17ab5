"""The embedded default run (README command 1): the whole pipeline on a synthesised corpus, offline.

synthesise (espeak-ng, MSP-Podcast layout) -> audio features (real whisper-base encoder)
-> transcripts (real whisper-base, faster-whisper) -> ASR error correction (a small seq2seq
trained by train-aec on the train split) -> text features (real all-MiniLM-L6-v2, last-4 mean)
-> heads (paper default, CE/uniform, audio-only, text-only, soft labels) -> majority-vote
ensemble -> report (confusion matrices, learning curves, leaderboard).

Every stage skips what its cache already holds, so a second run retrains the heads only.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sercache.cache import open_store
from sercache.cache.texts import TextSet, TextSetWriter
from sercache.cli import Command, run
from sercache.dataclass_cli import add_dataclass_arguments, from_namespace
from sercache.democorpus import synthesize_corpus

CLASSES = ["A", "S", "H", "N"]
AUDIO = "whisper-base-ct2/L-1"
ASR = "asr/whisper-base-ct2"
HUMAN = "human"


@dataclass
class DemoSettings:
    out: Path = field(default=Path("demo-output"), metadata={"help": "where the corpus, store and runs go"})
    utterances: int = field(default=240, metadata={"help": "utterances to synthesise"})
    seed: int = field(default=0, metadata={"help": "random seed of the corpus, the AEC model and the heads"})
    epochs: int = field(default=20, metadata={"help": "epochs per head"})
    aec_epochs: int = field(default=15, metadata={"help": "epochs of the ASR error-correction model"})


def _stage(name: str, started: float) -> None:
    print(f"\n=== {name} (t = {time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)


def extract_audio(s: DemoSettings, corpus: Path, store: Path) -> None:
    from sercache.extract import ExtractConfig, run_extraction

    # Trimmed mode: ~20x less encoder compute for 2-4 s clips on a CPU; the store records the mode.
    run_extraction(ExtractConfig(input=str(corpus), store=str(store), model="whisper-base-ct2",
                                 whisper_mode="trimmed"))


def transcribe(corpus: Path, store: Path) -> None:
    from sercache.extract.text_cli import read_human_transcripts
    from sercache.extract.transcribe import TranscribeConfig, run_transcription

    run_transcription(TranscribeConfig(input=str(corpus), store=str(store), model="whisper-base-ct2",
                                       compute_type="int8", beam_size=1, device="cpu"))
    writer = TextSetWriter(open_store(store), HUMAN)
    writer.ensure_metadata({"kind": "human", "model": None, "source": str(corpus / "Transcripts")})
    texts = read_human_transcripts(corpus / "Transcripts")
    new = {u: t for u, t in texts.items() if u not in writer.done()}
    if new:
        writer.commit([{"id": u, "text": t} for u, t in sorted(new.items())])


def build_small_seq2seq(path: Path, texts: list[str], seed: int) -> Path:
    """A small BART (2+2 layers, d 128) with a byte-level BPE tokenizer trained on the given texts.

    No pretrained seq2seq checkpoint ships offline, so the demo's AEC model starts from this and
    learns the corpus' language from the train pairs alone. A user passes a real one (bart-base, ...).
    """
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=1000, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(path))
    tokenizer = BartTokenizerFast(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"))
    tokenizer.save_pretrained(path)
    torch.manual_seed(seed)
    config = BartConfig(vocab_size=len(tokenizer), d_model=128, encoder_layers=2, decoder_layers=2,
                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=256,
                        decoder_ffn_dim=256, max_position_embeddings=128, pad_token_id=1, bos_token_id=0,
                        eos_token_id=2, decoder_start_token_id=2, forced_bos_token_id=0, dropout=0.1)
    BartForConditionalGeneration(config).save_pretrained(path)
    return path


def correct(s: DemoSettings, corpus: Path, store: Path) -> str:
    from sercache.extract.aec import AECTrainConfig, correct_text_set, read_splits, train_aec

    labels = corpus / "Labels" / "labels_consensus.csv"
    best = s.out / "aec" / "best"
    if not (s.out / "aec" / "metrics.json").is_file():
        st = open_store(store)
        splits = read_splits(labels)
        train_texts = [t.text(u) for t in (TextSet(st, ASR), TextSet(st, HUMAN))
                       for u in t.records if splits.get(u) == "train"]
        init = build_small_seq2seq(s.out / "aec-init", train_texts, s.seed)
        train_aec(AECTrainConfig(store=str(store), source=ASR, reference=HUMAN, splits=str(labels),
                                 model=str(init), out=str(s.out / "aec"), epochs=s.aec_epochs, batch_size=8,
                                 lr=2e-3, max_length=48, beam_size=1, seed=s.seed, device="cpu", progress=False))
    metrics = json.loads((s.out / "aec" / "metrics.json").read_text())
    if metrics["dev_corrected"]["WER"] >= metrics["dev_original"]["WER"]:
        print(f"AEC does not beat the raw transcripts on dev (WER {metrics['dev_corrected']['WER']} vs "
              f"{metrics['dev_original']['WER']}): the heads use the ASR text", file=sys.stderr)
        return ASR
    return correct_text_set(open_store(store), ASR, str(best), name="corrected/whisper-base-ct2+aec",
                            beam_size=1, max_length=48, device="cpu", progress=False)


def extract_text(store: Path, text_set: str) -> str:
    from sercache.extract import ExtractConfig, run_extraction

    summary = run_extraction(ExtractConfig(store=str(store), model="all-minilm-l6-v2", text=text_set))
    return summary.name


HEADS = {  # name -> overrides of the shared settings below
    "fusion-focal-prior": {"loss": "focal", "gamma": 2.0, "weights": "prior"},
    "fusion-ce-uniform": {"loss": "ce", "weights": "uniform"},
    "audio-only": {"loss": "focal", "gamma": 2.0, "weights": "prior", "text_features": []},
    "text-only": {"loss": "focal", "gamma": 2.0, "weights": "prior", "features": []},
    "fusion-soft-P-kld": {"loss": "kld", "soft_labels": "P", "weights": "uniform"},
}


def train_heads(s: DemoSettings, corpus: Path, store: Path, text_features: str) -> dict[str, Path]:
    from sercache.heads import HeadConfig, train

    runs = {}
    for name, overrides in HEADS.items():
        values = dict(store=str(store), features=[AUDIO], text_features=[text_features],
                      labels=str(corpus / "Labels" / "labels_consensus.csv"),
                      detailed=str(corpus / "Labels" / "labels_detailed.csv"), classes=CLASSES,
                      # a few hundred utterances: small batches give enough optimiser steps per epoch
                      d_model=64, hidden=64, ff_dim=128, batch_size=8, lr=1e-3, max_epochs=s.epochs, patience=s.epochs,
                      seed=s.seed, out=str(s.out / "runs" / name), progress=False)
        values.update(overrides)
        print(f"--- head {name}", file=sys.stderr, flush=True)
        train(HeadConfig(**values))
        runs[name] = s.out / "runs" / name
    return runs


def ensemble_and_report(s: DemoSettings, runs: dict[str, Path]) -> tuple[Path, Path]:
    from sercache.heads.ensemble import build_ensemble
    from sercache.heads.report import build_report

    vote = s.out / "ensemble-vote"
    build_ensemble([str(p) for p in runs.values()], vote, method="vote", tie_rule="prob", seed=s.seed,
                   verbose=False)
    report = s.out / "report"
    build_report([str(p) for p in runs.values()] + [str(vote)], report, title="sercache demo", verbose=False)
    return vote, report


def baselines(corpus: Path) -> dict[str, float]:
    """Macro-F1 on Test1 of always predicting train's majority class, and of chance (uniform guessing)."""
    import csv

    from sklearn.metrics import f1_score

    rows = list(csv.DictReader(open(corpus / "Labels" / "labels_consensus.csv")))
    train = [r["EmoClass"] for r in rows if r["Split_Set"] == "Train" and r["EmoClass"] in CLASSES]
    test = [r["EmoClass"] for r in rows if r["Split_Set"] == "Test1" and r["EmoClass"] in CLASSES]
    majority = max(CLASSES, key=train.count)
    return {"majority": 100 * f1_score(test, [majority] * len(test), labels=CLASSES, average="macro"),
            "chance": 100 / len(CLASSES)}


def summary(runs: dict[str, Path], base: dict[str, float]) -> str:
    import json

    lines = ["| model | dev Macro-F1 | Test1 Macro-F1 | Test1 UA | Test1 WA |", "|---|---|---|---|---|"]
    for name, path in runs.items():
        m = json.loads((path / "metrics.json").read_text())["splits"]
        dev, test = m["dev"], m["test1"]
        lines.append(f"| {name} | {100 * dev['macro_f1']:.1f} | {100 * test['macro_f1']:.1f} | "
                     f"{100 * test['balanced_accuracy']:.1f} | {100 * test['accuracy']:.1f} |")
    lines.append(f"| majority-class baseline | | {base['majority']:.1f} | 25.0 | |")
    lines.append(f"| chance (uniform guess) | | {base['chance']:.1f} | 25.0 | 25.0 |")
    return "\n".join(lines)


def run_demo(s: DemoSettings) -> str:
    started = time.perf_counter()
    _stage("1/7 synthesise the corpus", started)
    corpus = synthesize_corpus(s.out / "corpus", s.utterances, s.seed)
    store = s.out / "store"
    _stage("2/7 audio features: whisper-base encoder", started)
    extract_audio(s, corpus, store)
    _stage("3/7 transcripts: whisper-base via faster-whisper", started)
    transcribe(corpus, store)
    _stage("4/7 ASR error correction: train-aec, correct-transcripts", started)
    corrected = correct(s, corpus, store)
    _stage("5/7 text features: all-MiniLM-L6-v2, mean of the last 4 layers", started)
    text_features = extract_text(store, corrected)
    _stage("6/7 heads", started)
    runs = train_heads(s, corpus, store, text_features)
    _stage("7/7 ensemble and report", started)
    vote, report = ensemble_and_report(s, runs)
    table = summary({**runs, "ensemble (majority vote)": vote}, baselines(corpus))
    print(table)
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s. Where things are:\n"
          f"  corpus        {corpus}\n  feature store {store}   (sercache cache info {store})\n"
          f"  AEC model     {s.out / 'aec'}\n  heads         {s.out / 'runs'}\n  ensemble      {vote}\n"
          f"  report        {report / 'report.md'} and report.html")
    return table


def _run(args) -> None:
    run_demo(from_namespace(DemoSettings, args))


DEMO = Command(
    configure=lambda parser: add_dataclass_arguments(parser, DemoSettings),
    run=_run,
    description=__doc__ or "",
)


def main(argv: list[str] | None = None) -> int:
    """`python -m sercache.demo` (what bin/demo runs), same as `sercache demo`."""
    return run("demo", argv, "sercache demo")


if __name__ == "__main__":
    sys.exit(main())

"""ASR error correction: a pretrained encoder-decoder rewrites Whisper hypotheses.

`train-aec` fine-tunes it on (ASR hypothesis -> human transcript) pairs of the training split
and keeps the checkpoint with the best development WER (the paper: 10 epochs, best on dev); the model is a
seq2seq checkpoint (--model) or warm-started from a BERT-style text encoder (--init; aec_models.py);
`correct-transcripts` writes the corrections as a new text set beside the raw one (both kept), refusing a
model worse than the raw text on dev and keeping the ASR text of low-confidence utterances (aec_fallback.py);
`evaluate-aec` scores original and corrected text against human transcripts (paper table 5).
"""

from __future__ import annotations

import csv
import json
import random
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from sercache.cache import Store, open_store
from sercache.cache.columns import ID_COLUMNS, SPLIT_COLUMNS, canonical_split
from sercache.cache.layout import disk_full_is_input_error
from sercache.cache.texts import TextSet, TextSetWriter
from sercache.dataclass_cli import apply_threads, threads_field
from sercache.errors import SercacheError

from .aec_fallback import (
    correct_texts,
    fallback_meta,
    generate_scored,
    recorded_threshold,
    tune_threshold,
    write_record,
)
from .aec_models import (
    CROSS_ATTENTION_INITS,
    DEFAULT_INIT,
    load_seq2seq,
    save_model,
    seq2seq_loss,
    target_ids,
    warm_start,
)
from .aec_synthetic import error_profile, synthetic_pairs
from .encoder_base import weights_digest
from .manifest import read_id_column
from .text_metrics import TextScores, normalize, score

# The new cross-attention and LM-head transform of a warm start need a larger step than fine-tuning a pretrained
# seq2seq model does; 3e-4 is the rate the warm start was measured with (BENCHMARKS.md, "Text branch").
WARM_START_LR, FINE_TUNE_LR = 3e-4, 5e-5
RETRAIN_HINT = "free some space (or choose another --out) and run the same command again (training starts over)"


class AECError(SercacheError):
    """The text sets and splits given cannot train or score a corrector; the message says what is missing."""


def read_splits(path: str | Path) -> dict[str, str]:
    """utterance id -> split (train, dev, test, or the name as written, lower-cased), from MSP-Podcast's
    labels_consensus.csv or any CSV with id and split columns."""
    return {u: canonical_split(s) for u, s in read_id_column(path, ID_COLUMNS, SPLIT_COLUMNS, "split").items()}


def check_references(references: list[str], reference: str, which: str) -> None:
    """Refuse to score against references that are all empty (score() leaves empty ones out)."""
    if not any(normalize(r) for r in references):
        raise AECError(f"every {which} text of {reference!r} is empty (after lower-casing and removing "
                       f"punctuation): nothing to score against; check the {reference!r} text set")


def pairs_for(source: TextSet, reference: TextSet, splits: dict[str, str], wanted: str
              ) -> list[tuple[str, str, str]]:
    """(id, hypothesis, reference) for utterances of the wanted split (any of its spellings) that have both texts."""
    wanted = canonical_split(wanted)
    return sorted((u, source.text(u), reference.text(u)) for u, s in splits.items()
                  if canonical_split(s) == wanted and u in source and u in reference)


def generate(model, tokenizer, texts: list[str], batch_size: int = 32, beam_size: int = 4, max_length: int = 128,
             progress: bool = False) -> list[str]:
    """Batched beam-search rewriting, in input order (the corrections alone, without the fallback)."""
    return generate_scored(model, tokenizer, texts, batch_size, beam_size, max_length, progress)[0]


@dataclass
class AECTrainConfig:
    store: str = field(metadata={"help": "store holding the ASR and human text sets"})
    source: str = field(metadata={"help": "ASR text set, e.g. asr/whisper-large-v2"})
    reference: str = field(metadata={"help": "human text set (see import-transcripts)"})
    splits: str = field(metadata={"help": "labels_consensus.csv (Split_Set) or a CSV with id,split"})
    out: str = field(metadata={"help": "output directory: best/ checkpoint, metrics.json, epochs.csv"})
    model: str = field(default="", metadata={"help": "pretrained seq2seq checkpoint to fine-tune (hub id or "
                                                     "directory: BART, T5, ...); or give --init"})
    init: str = field(default="", metadata={"help": "warm start: encoder and decoder both initialised from this "
                                                    "BERT-style checkpoint (directory, hub id or bundled name); "
                                                    f"default, when --model is not given either: {DEFAULT_INIT}"})
    share_weights: bool = field(default=False, metadata={"help": "with --init: the decoder shares the encoder's "
                                                                 "weights (cross-attention apart)"})
    cross_attention: str = field(default="self", metadata={
        "help": "with --init: the decoder's new cross-attention starts as a copy of its self-attention (self; "
                "learns to copy from few pairs) or random (Rothe et al.)", "choices": CROSS_ATTENTION_INITS})
    train_embeddings: bool = field(default=False, metadata={"help": "with --init: also train the token embeddings "
                                                                    "(and the LM head tied to them)"})
    synthetic: int = field(default=10, metadata={
        "help": "pre-train first on this many synthetic pairs per clean sentence (the train references and "
                "--pretrain-text), corrupted with the ASR errors measured on the train pairs (0: none; it won on "
                "dev in BENCHMARKS.md, 'Text branch', at the cost of one pass over that many more pairs)"})
    synthetic_cap: int = field(default=20000, metadata={"help": "synthetic pairs at most"})
    pretrain_text: list[str] = field(default_factory=list, metadata={
        "help": "text files of clean sentences, one per line, corrupted for pre-training as well"})
    pretrain_epochs: int = field(default=1, metadata={"help": "passes over the synthetic pairs"})
    epochs: int = field(default=10, metadata={"help": "training epochs (Chen et al., Sheffield: 10)"})
    batch_size: int = field(default=16, metadata={"help": "pairs per step"})
    lr: float = field(default=0.0, metadata={"help": "AdamW learning rate (0: 3e-4 for a warm start, 5e-5 for a "
                                                     "seq2seq --model, as fine-tuning a pretrained one takes)"})
    max_length: int = field(default=128, metadata={"help": "tokens per text at most"})
    beam_size: int = field(default=4, metadata={"help": "beam width when correcting dev"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto"})
    threads: int = threads_field()
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def initial_model(cfg: AECTrainConfig, device: str) -> tuple[Any, Any, str]:
    """Tokenizer, model and a description of where it started: --model as it is, else a warm start from
    --init (by default the bundled all-MiniLM-L6-v2, so the recipe runs offline)."""
    if cfg.model and cfg.init:
        raise AECError(f"give --model (a seq2seq checkpoint) or --init (a text encoder to warm-start from), not "
                       f"both (got --model {cfg.model!r} and --init {cfg.init!r})")
    if cfg.model and (cfg.share_weights or cfg.train_embeddings or cfg.cross_attention != "self"):
        raise AECError("--share-weights, --train-embeddings and --cross-attention apply to a warm start (--init), "
                       "not to a seq2seq --model")
    if cfg.model:
        tokenizer, model = load_seq2seq(cfg.model, device)
        return tokenizer, model, cfg.model
    init = cfg.init or DEFAULT_INIT
    tokenizer, model = warm_start(init, cfg.share_weights, cfg.cross_attention, cfg.train_embeddings)
    how = ["cross-attention copied from self-attention" if cfg.cross_attention == "self" else "random cross-attention"]
    how += ["shared weights"] * cfg.share_weights + ["trained embeddings"] * cfg.train_embeddings
    return tokenizer, model.to(device), f"warm start from {init} ({', '.join(how)})"


def training_pairs(cfg: AECTrainConfig) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """Train and development (id, hypothesis, reference) pairs; an AECError when either is empty."""
    store = open_store(cfg.store)
    source, reference = TextSet(store, cfg.source), TextSet(store, cfg.reference)
    splits = read_splits(cfg.splits)
    train = pairs_for(source, reference, splits, "train")
    dev = pairs_for(source, reference, splits, "dev")
    if not train or not dev:
        raise AECError(f"need train and development pairs with both {cfg.source!r} and {cfg.reference!r} "
                         f"texts; found {len(train)} train, {len(dev)} dev")
    check_references([r for _, _, r in dev], cfg.reference, "development")
    return train, dev


def train_aec(cfg: AECTrainConfig) -> dict[str, Any]:
    """Fine-tune, keep the checkpoint with the best dev WER in OUT/best, then tune the fallback threshold on
    that checkpoint's dev corrections and record it with the dev WERs beside the weights."""
    apply_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    cfg = replace(cfg, lr=cfg.lr or (FINE_TUNE_LR if cfg.model else WARM_START_LR))  # metrics.json shows the one used
    train, dev = training_pairs(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    pretraining = pretraining_pairs(cfg, train, out)
    device = _device(cfg.device)
    tokenizer, model, started = initial_model(cfg, device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    hyps, refs = [h for _, h, _ in dev], [r for _, _, r in dev]
    history, best, rng = [], None, random.Random(cfg.seed)
    pretrain_epochs = cfg.pretrain_epochs if pretraining else 0  # numbered up to 0: epoch 1 is the first on real pairs
    stages = [("pretrain", pretraining)] * pretrain_epochs + [("train", train)] * cfg.epochs
    for epoch, (stage, pairs) in enumerate(stages, start=1 - pretrain_epochs):
        train_loss = _train_epoch(model, tokenizer, optimizer, pairs, cfg, rng, device)
        corrected, scores = generate_scored(model, tokenizer, hyps, cfg.batch_size, cfg.beam_size, cfg.max_length)
        dev_scores = score(corrected, refs)
        history.append({"epoch": epoch, "stage": stage, "train_loss": train_loss, **dev_scores.row()})
        print(f"{stage} epoch {epoch}: train loss {train_loss:.4f}, dev WER {dev_scores.wer:.2f}", file=sys.stderr)
        if best is None or dev_scores.wer < best[1].wer:
            best = (epoch, dev_scores, corrected, scores)
            with disk_full_is_input_error(out, RETRAIN_HINT):
                save_model(model, tokenizer, out / "best")
    return _finish(cfg, out, started, dev, best, history, len(train), len(pretraining))


def pretraining_pairs(cfg: AECTrainConfig, train: list[tuple[str, str, str]], out: Path
                      ) -> list[tuple[str, str, str]]:
    """Synthetic (id, corrupted, clean) pairs from the train pairs' error profile (none when --synthetic is 0);
    the profile goes to OUT/error_profile.json, so that what was simulated can be read."""
    if cfg.pretrain_text and cfg.synthetic <= 0:
        raise AECError("--pretrain-text needs --synthetic N (pairs per clean sentence) to be used")
    if cfg.synthetic <= 0:
        return []
    if cfg.pretrain_epochs < 1:
        raise AECError(f"--synthetic {cfg.synthetic} needs --pretrain-epochs 1 or more (got {cfg.pretrain_epochs})")
    clean = [r for _, _, r in train] + [line for path in cfg.pretrain_text for line in _text_lines(path)]
    profile = error_profile([h for _, h, _ in train], [r for _, _, r in train])
    vocabulary = [w for _, h, r in train for w in normalize(f"{h} {r}").split()]
    pairs = synthetic_pairs(clean, profile, cfg.synthetic, cfg.synthetic_cap, vocabulary, cfg.seed)
    summary = profile.summary(top=10)
    with disk_full_is_input_error(out, RETRAIN_HINT):
        (out / "error_profile.json").write_text(json.dumps(profile.to_json(), indent=1))
    print(f"synthetic pre-training: {len(pairs)} pairs from {len(clean)} clean sentences; train-pair errors per "
          f"word: substitution {summary['substitution_rate']:.3f}, deletion {summary['deletion_rate']:.3f}, "
          f"insertion {summary['insertion_rate']:.3f}; most frequent: "
          + ", ".join(f"{r}->{h} ({n})" for r, h, n in summary["top_substitutions"][:5]), file=sys.stderr)
    return [("synthetic", source, target) for source, target in pairs]


def _text_lines(path: str) -> list[str]:
    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise AECError(f"--pretrain-text {path}: cannot read it as UTF-8 text ({e})") from e
    if not any(lines):
        raise AECError(f"--pretrain-text {path}: no sentence in it (one per line expected)")
    return [line for line in lines if line]


def _finish(cfg: AECTrainConfig, out: Path, started: str, dev: list[tuple[str, str, str]], best: tuple,
            history: list[dict[str, Any]], train_pairs: int, synthetic: int) -> dict[str, Any]:
    """Tune the fallback on the best checkpoint, write metrics.json, epochs.csv and best/sercache-aec.json."""
    epoch, best_scores, corrected, scores = best
    hyps, refs = [h for _, h, _ in dev], [r for _, _, r in dev]
    original = score(hyps, refs)
    fallback = tune_threshold(hyps, corrected, scores, refs)
    record = {"dev_wer_original": original.row()["WER"], "dev_wer_corrected": best_scores.row()["WER"],
              "dev_wer_with_fallback": fallback["dev_wer"], "fallback": fallback, "best_epoch": epoch,
              "init": started}
    result = {"best_epoch": epoch, "dev_original": original.row(), "dev_corrected": best_scores.row(),
              "dev_with_fallback": fallback["dev_wer"], "fallback": fallback, "init": started,
              "train_pairs": train_pairs, "synthetic_pairs": synthetic, "dev_pairs": len(dev), "config": asdict(cfg),
              "epochs": history}
    with disk_full_is_input_error(out, RETRAIN_HINT):
        write_record(out / "best", record)
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
        _write_csv(out / "epochs.csv", history)
    print(format_scores({"Original": original, "Corrected": best_scores}))
    print(f"fallback: utterances whose correction scores below {fallback['threshold']:.4f} keep the ASR text "
          f"({fallback['dev_fallbacks']} of {fallback['dev_pairs']} on dev; dev WER {fallback['dev_wer']:.2f})")
    if best_scores.wer >= original.wer:
        print(f"warning: the best checkpoint's dev WER ({best_scores.wer:.2f}) does not beat the uncorrected "
              f"transcripts ({original.wer:.2f}); correcting with it would make the text worse"
              + ("; correct-transcripts refuses it unless --force" if best_scores.wer > original.wer else ""),
              file=sys.stderr)
    return result


def _train_epoch(model, tokenizer, optimizer, pairs, cfg: AECTrainConfig, rng: random.Random, device: str) -> float:
    model.train()
    order = list(range(len(pairs)))
    rng.shuffle(order)
    total, steps = 0.0, 0
    for start in tqdm(range(0, len(order), cfg.batch_size), desc="aec", unit="step", disable=not cfg.progress,
                      leave=False):
        batch = [pairs[i] for i in order[start:start + cfg.batch_size]]
        enc = tokenizer([h for _, h, _ in batch], text_target=[r for _, _, r in batch], return_tensors="pt",
                        padding=True, truncation=True, max_length=cfg.max_length,
                        return_token_type_ids=False).to(device)
        enc["labels"] = target_ids(enc["labels"], model, tokenizer.pad_token_id)
        loss = seq2seq_loss(model, enc)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
        steps += 1
    return total / max(steps, 1)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def format_scores(rows: dict[str, TextScores]) -> str:
    lines = ["| Transcription | WER ↓ | BLEU ↑ | GLEU ↑ |", "|---|---|---|---|"]
    lines += [f"| {name} | {s.wer:.2f} | {s.bleu:.2f} | {s.gleu:.2f} |" for name, s in rows.items()]
    return "\n".join(lines)


def correct_text_set(store: Store, source_name: str, model_path: str, name: str = "", batch_size: int = 32,
                     beam_size: int = 4, max_length: int = 128, device: str = "auto", progress: bool = True,
                     fallback: bool | float = True) -> str:
    """Write the model's corrections of every transcript in `source_name` as a new text set.

    `fallback`: True applies the threshold train-aec recorded with the model (none recorded: no fallback),
    False none, a number that threshold (predict replays the one a text set recorded)."""
    source = TextSet(store, source_name)
    leaf = Path(model_path.rstrip("/")).name
    name = name or f"corrected/{source_name.split('/')[-1]}+{leaf}"
    threshold = _threshold(model_path, fallback)
    writer = TextSetWriter(store, name)
    # The weights hash and the fallback are part of the identity: a retrained model at the same path, or
    # another threshold, must not silently reuse the corrections made before.
    local = Path(model_path)
    writer.ensure_metadata({"kind": "corrected", "model": model_path, "source": source_name,
                            "model_path": str(local.resolve()) if local.exists() else model_path,
                            "asr_model": source.meta.get("model"), "aec_weights_sha256": weights_digest(model_path),
                            "decoding": {"beam_size": beam_size, "max_length": max_length,
                                         "batch_size": batch_size},
                            "fallback": fallback_meta(threshold)},
                           identity=("kind", "model", "source", "aec_weights_sha256", "fallback"))
    todo = sorted(u for u in source.records if u not in writer.done())
    if todo:
        tokenizer, model = load_seq2seq(model_path, _device(device))
        texts = [source.text(u) for u in todo]
        out = correct_texts(model, tokenizer, texts, threshold, batch_size, beam_size, max_length, progress)
        with disk_full_is_input_error(store.root):
            writer.commit([{"id": u, "text": c.text, "source_text": t, "aec_text": c.aec_text,
                            "aec_logprob": round(c.logprob, 6), "fallback": c.fell_back}
                           for u, t, c in zip(todo, texts, out)])
    kept = f", {sum(c.fell_back for c in out)} kept the ASR text (fallback)" if todo and threshold is not None else ""
    print(f"{name}: {len(todo)} transcripts corrected from {source_name}{kept}", file=sys.stderr)
    return name


def _threshold(model_path: str, fallback: bool | float) -> float | None:
    if isinstance(fallback, bool):
        return recorded_threshold(model_path) if fallback else None
    return float(fallback)


def evaluate_text_sets(store: Store, names: list[str], reference: str, splits: dict[str, str] | None,
                       split: str = "development") -> dict[str, TextScores]:
    """Score each text set against the reference on one split (all shared ids when splits is None)."""
    ref = TextSet(store, reference)
    sets = [TextSet(store, n) for n in names]
    ids = sorted(u for u in ref.records if all(u in s for s in sets)
                 and (splits is None or canonical_split(splits.get(u, "")) == canonical_split(split)))
    if not ids:
        raise AECError(f"no utterance of split {split!r} has text in {reference!r} and in every one of {names}")
    check_references([ref.text(u) for u in ids], reference, split if splits is not None else "shared")
    return {n: score([s.text(u) for u in ids], [ref.text(u) for u in ids]) for n, s in zip(names, sets)}

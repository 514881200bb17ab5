"""ASR error correction: a pretrained encoder-decoder rewrites Whisper hypotheses.

`train-aec` fine-tunes it on (ASR hypothesis -> human transcript) pairs of the training split
and keeps the checkpoint with the best development WER (the paper: 10 epochs, best on dev);
`correct-transcripts` writes the corrections as a new text set beside the raw one (both kept);
`evaluate-aec` scores original and corrected text against human transcripts (paper table 5).
"""

from __future__ import annotations

import csv
import json
import random
import sys
from dataclasses import asdict, dataclass, field
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

from .encoder_base import weights_digest
from .manifest import read_id_column
from .text_metrics import TextScores, normalize, score

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


def load_seq2seq(path: str, device: str):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).to(device)
    return tokenizer, model


@torch.inference_mode()
def generate(model, tokenizer, texts: list[str], batch_size: int = 32, beam_size: int = 4, max_length: int = 128,
             progress: bool = False) -> list[str]:
    """Batched beam-search rewriting, longest first (less padding), returned in input order."""
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out: list[str] = [""] * len(texts)
    for start in tqdm(range(0, len(order), batch_size), desc="correcting", unit="batch", disable=not progress):
        index = order[start:start + batch_size]
        enc = tokenizer([texts[i] for i in index], return_tensors="pt", padding=True, truncation=True,
                        max_length=max_length).to(model.device)
        ids = model.generate(**enc, num_beams=beam_size, max_length=max_length, do_sample=False)
        for i, text in zip(index, tokenizer.batch_decode(ids, skip_special_tokens=True)):
            out[i] = text.strip()
    return out


@dataclass
class AECTrainConfig:
    store: str = field(metadata={"help": "store holding the ASR and human text sets"})
    source: str = field(metadata={"help": "ASR text set, e.g. asr/whisper-large-v2"})
    reference: str = field(metadata={"help": "human text set (see import-transcripts)"})
    splits: str = field(metadata={"help": "labels_consensus.csv (Split_Set) or a CSV with id,split"})
    model: str = field(metadata={"help": "pretrained seq2seq checkpoint (hub id or directory)"})
    out: str = field(metadata={"help": "output directory: best/ checkpoint, metrics.json, epochs.csv"})
    epochs: int = field(default=10, metadata={"help": "training epochs (Chen et al., Sheffield: 10)"})
    batch_size: int = field(default=16, metadata={"help": "pairs per step"})
    lr: float = field(default=5e-5, metadata={"help": "AdamW learning rate"})
    max_length: int = field(default=128, metadata={"help": "tokens per text at most"})
    beam_size: int = field(default=4, metadata={"help": "beam width when correcting dev"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto"})
    threads: int = threads_field()
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def train_aec(cfg: AECTrainConfig) -> dict[str, Any]:
    apply_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    store = open_store(cfg.store)
    source, reference = TextSet(store, cfg.source), TextSet(store, cfg.reference)
    splits = read_splits(cfg.splits)
    train = pairs_for(source, reference, splits, "train")
    dev = pairs_for(source, reference, splits, "dev")
    if not train or not dev:
        raise AECError(f"need train and development pairs with both {cfg.source!r} and {cfg.reference!r} "
                         f"texts; found {len(train)} train, {len(dev)} dev")
    check_references([r for _, _, r in dev], cfg.reference, "development")
    device = _device(cfg.device)
    tokenizer, model = load_seq2seq(cfg.model, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    original = score([h for _, h, _ in dev], [r for _, _, r in dev])
    history, best = [], None
    rng = random.Random(cfg.seed)
    for epoch in range(1, cfg.epochs + 1):
        train_loss = _train_epoch(model, tokenizer, optimizer, train, cfg, rng, device)
        corrected = generate(model, tokenizer, [h for _, h, _ in dev], cfg.batch_size, cfg.beam_size, cfg.max_length)
        dev_scores = score(corrected, [r for _, _, r in dev])
        history.append({"epoch": epoch, "train_loss": train_loss, **dev_scores.row()})
        print(f"epoch {epoch}: train loss {train_loss:.4f}, dev WER {dev_scores.wer:.2f}", file=sys.stderr)
        if best is None or dev_scores.wer < best[1].wer:
            best = (epoch, dev_scores)
            with disk_full_is_input_error(out, RETRAIN_HINT):
                model.save_pretrained(out / "best")
                tokenizer.save_pretrained(out / "best")
    result = {"best_epoch": best[0], "dev_original": original.row(), "dev_corrected": best[1].row(),
              "train_pairs": len(train), "dev_pairs": len(dev), "config": asdict(cfg), "epochs": history}
    with disk_full_is_input_error(out, RETRAIN_HINT):
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
        _write_csv(out / "epochs.csv", history)
    print(format_scores({"Original": original, "Corrected": best[1]}))
    if best[1].wer >= original.wer:
        print(f"warning: the best checkpoint's dev WER ({best[1].wer:.2f}) does not beat the uncorrected "
              f"transcripts ({original.wer:.2f}); correcting with it would make the text worse", file=sys.stderr)
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
                        padding=True, truncation=True, max_length=cfg.max_length).to(device)
        enc["labels"] = enc["labels"].masked_fill(enc["labels"] == tokenizer.pad_token_id, -100)
        loss = model(**enc).loss
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
                     beam_size: int = 4, max_length: int = 128, device: str = "auto", progress: bool = True) -> str:
    """Write the model's corrections of every transcript in `source_name` as a new text set."""
    source = TextSet(store, source_name)
    leaf = Path(model_path.rstrip("/")).name
    name = name or f"corrected/{source_name.split('/')[-1]}+{leaf}"
    writer = TextSetWriter(store, name)
    # The weights hash is part of the identity: a retrained model at the same path must not
    # silently reuse the corrections of the previous one.
    local = Path(model_path)
    writer.ensure_metadata({"kind": "corrected", "model": model_path, "source": source_name,
                            "model_path": str(local.resolve()) if local.exists() else model_path,
                            "asr_model": source.meta.get("model"), "aec_weights_sha256": weights_digest(model_path),
                            "decoding": {"beam_size": beam_size, "max_length": max_length,
                                         "batch_size": batch_size}},
                           identity=("kind", "model", "source", "aec_weights_sha256"))
    todo = sorted(u for u in source.records if u not in writer.done())
    if todo:
        tokenizer, model = load_seq2seq(model_path, _device(device))
        corrected = generate(model, tokenizer, [source.text(u) for u in todo], batch_size, beam_size, max_length,
                             progress)
        with disk_full_is_input_error(store.root):
            writer.commit([{"id": u, "text": t, "source_text": source.text(u)} for u, t in zip(todo, corrected)])
    print(f"{name}: {len(todo)} transcripts corrected from {source_name}", file=sys.stderr)
    return name


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

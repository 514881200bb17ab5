"""Preparing a run: every input check, then the rows of each role, the targets on the compute device and the
modalities to gather from.

Everything that can be wrong with the inputs is checked here, before the model exists, so that a sweep of many
configs fails fast instead of after an hour of training.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import HeadError
from ..inputs.corpora import resolve_corpus
from ..inputs.corpora.base import WHOLE
from ..inputs.features import FeaturePool, Modality, build_modalities, missing_rows, standardise_speakers
from ..inputs.labels import LabelTable
from .config import HeadConfig, selection_metric
from .losses import Targets


@dataclass
class Prepared:
    """Label rows per role, targets on the compute device, and the modalities to gather from."""

    cfg: HeadConfig
    table: LabelTable
    modalities: dict[str, Modality]
    device: torch.device
    train: np.ndarray
    dev: np.ndarray  # dev rows scored for selection
    predict: dict[str, np.ndarray]  # split -> rows written to predictions_<split>.csv
    groups: np.ndarray  # sampler group of every train row
    sort_lengths: np.ndarray  # per table row, of the longest modality
    label_t: torch.Tensor
    avd_t: torch.Tensor
    gender_t: torch.Tensor
    soft_t: torch.Tensor | None
    annot_t: torch.Tensor | None
    avd_range: tuple[list[float], list[float]]
    notes: list[str] = field(default_factory=list)

    def targets(self, rows_t: torch.Tensor, train: bool = False) -> Targets:
        soft = None
        if self.soft_t is not None:
            soft = self.soft_t[rows_t]
            if train and self.annot_t is not None and self.cfg.annotation_dropout > 0:
                soft = annotation_dropout(self.annot_t[rows_t], soft, self.cfg.annotation_dropout)
        return Targets(self.label_t[rows_t], soft, self.avd_t[rows_t], self.gender_t[rows_t])


def annotation_dropout(annot: torch.Tensor, full: torch.Tensor, p: float) -> torch.Tensor:
    """SAIL: recompute each soft label from a random subset of its annotators (each kept with 1 - p);
    when nothing with a class mention survives, the full distribution is used."""
    keep = torch.rand(annot.shape[:2], device=annot.device) >= p
    counts = (annot.float() * keep[..., None]).sum(1)
    total = counts.sum(1, keepdim=True)
    return torch.where(total > 0, counts / total.clamp_min(1e-12), full)


def _split_error(table: LabelTable, name: str, flag: str) -> HeadError:
    return HeadError(f"{flag} {name!r}: no such split in the labels (splits: {', '.join(table.splits())})")


def non_class_rows(table: LabelTable, non_class: tuple[str, ...]) -> np.ndarray:
    """Rows the corpus marks as labelled without a class (MSP-Podcast's O and X), whatever --classes kept: they
    carry A/V/D and soft-label targets, so a class subset must not let them back into training through those."""
    letters = table.letter.astype(str)
    return np.isin(letters, list(non_class)) & ~np.isin(letters, table.classes.letters)


def _check_balanced_selection(cfg: HeadConfig, table: LabelTable, dev: np.ndarray) -> None:
    """--select balanced draws k dev samples per emotion class (USC), for A/V/D too: without class labels
    on dev there is nothing to balance over, and every epoch would score NaN."""
    if selection_metric(cfg).startswith("balanced_") and not (table.label[dev] >= 0).any():
        raise HeadError(f"--select balanced draws the same number of {cfg.dev_split!r} samples from each emotion "
                        "class, but that split has no class labels (attribute-only labels); use --select ccc")


def select_rows(cfg: HeadConfig, table: LabelTable) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    task = cfg.resolved_task()
    splits = table.splits()
    if cfg.train_split not in splits:
        raise _split_error(table, cfg.train_split, "--train-split")
    if cfg.dev_split not in splits:
        raise _split_error(table, cfg.dev_split, "--dev-split")
    ox = non_class_rows(table, resolve_corpus(cfg.corpus, cfg.labels).non_class)
    has_class = table.label >= 0
    if cfg.soft_labels:
        soft = table.soft(cfg.soft_labels)
        has_class = has_class | np.isfinite(soft).all(1)
    has_avd = np.isfinite(table.attributes).any(1)
    train = table.rows(cfg.train_split)
    if not cfg.include_ox:
        train = train[~ox[train]]
    need = {"class": has_class, "avd": has_avd, "both": has_class | has_avd}[task]
    train = train[need[train]]
    if cfg.min_agreement > 0:
        if table.agreement is None:
            raise HeadError("--min-agreement needs --detailed labels")
        keep = np.nan_to_num(table.agreement[train], nan=0.0) >= cfg.min_agreement
        train = train[keep]
    if not len(train):
        raise HeadError(f"no training samples left in split {cfg.train_split!r} after filtering")
    dev_all = table.rows(cfg.dev_split)
    dev = dev_all[(table.label[dev_all] >= 0) if task in ("class", "both") else has_avd[dev_all]]
    if not len(dev):
        raise HeadError(f"split {cfg.dev_split!r} has no labelled samples to select a checkpoint on")
    _check_balanced_selection(cfg, table, dev)
    tests = cfg.test_splits or [s for s in splits if s not in (cfg.train_split, cfg.dev_split)]
    for s in cfg.test_splits:
        if s not in splits:
            raise _split_error(table, s, "--test-splits")
    predict = {cfg.dev_split: dev_all, **{s: table.rows(s) for s in tests}}
    return train, dev, predict


def _class_name(table: LabelTable, j: int) -> str:
    letter, name = table.classes.letters[j], table.classes.names[j]
    return letter if letter == name else f"{letter} ({name})"


def fold_notes(cfg: HeadConfig) -> list[str]:
    """How this fold's dev set was made where the corpus leaves a choice (EmoBox carves it), for config.json."""
    corpus = resolve_corpus(cfg.corpus, cfg.labels)
    if corpus.fold_note is None or not cfg.fold or cfg.fold == "all":
        return []
    fold = corpus.folds[0] if cfg.fold == WHOLE and corpus.folds else cfg.fold
    note = corpus.fold_note(cfg.label_source(), fold)
    return [f"fold {fold} dev: " + ", ".join(f"{k} {v}" for k, v in note.items())]


def prepare(cfg: HeadConfig, table: LabelTable, pool: FeaturePool, device: torch.device) -> Prepared:
    """All input checks, then targets and feature modalities. Raises HeadError before any training."""
    task = cfg.resolved_task()
    notes = fold_notes(cfg)
    train, dev, predict = select_rows(cfg, table)
    if task in ("class", "both"):
        _check_class_counts(cfg, table, train, dev)
    # features: everything that will be touched must be in the cache
    needed = np.unique(np.concatenate([train, dev, *predict.values()]))
    modalities = build_modalities(pool, cfg.features, cfg.text_features, table, needed, cfg.max_seconds,
                                  cfg.allow_human_text, cfg.resident_dtype)
    train, dev, predict = _rows_in_cache(cfg, table, modalities, train, dev, predict, notes)
    if cfg.speaker_norm:
        _speaker_norm(cfg, table, modalities, np.unique(np.concatenate([train, dev, *predict.values()])), notes)
    if task in ("class", "both") and not cfg.soft_labels:
        counts = table.class_counts(train)
        if (counts == 0).any():
            raise HeadError(f"after dropping missing utterances, class(es) "
                            f"{', '.join(_class_name(table, j) for j in np.flatnonzero(counts == 0))} have no "
                            "training samples")
    soft_t, annot_t = _soft_targets(cfg, table, train, device, notes)
    low, high = _avd_range(task, table, train)
    main = modalities.get("audio") or modalities["text"]  # batches are sorted by the dominant modality
    return Prepared(cfg, table, modalities, device, train, dev, predict, _sampler_groups(cfg, table, train),
                    main.lengths, torch.as_tensor(table.label).to(device), torch.as_tensor(table.attributes).to(device),
                    torch.as_tensor(table.gender).to(device), soft_t, annot_t, (low.tolist(), high.tolist()), notes)


def _check_class_counts(cfg: HeadConfig, table: LabelTable, train: np.ndarray, dev: np.ndarray) -> None:
    """Every class must be trainable; a class missing from dev is scored 0, so it needs --allow-empty-classes."""
    C = len(table.classes)
    counts = table.class_counts(train)
    if cfg.soft_labels:  # soft training needs every class to carry some mass somewhere
        counts = counts + (np.nan_to_num(table.soft(cfg.soft_labels)[train]).sum(0) > 0)
    empty = [j for j in range(C) if counts[j] == 0]
    if empty:
        raise HeadError(f"class(es) {', '.join(_class_name(table, j) for j in empty)} have no samples in split "
                        f"{cfg.train_split!r}: check --classes / the label file, or the filters applied")
    dev_counts = table.class_counts(dev)
    dev_empty = [j for j in range(C) if dev_counts[j] == 0]
    if dev_empty:
        msg = (f"class(es) {', '.join(_class_name(table, j) for j in dev_empty)} have no samples in split "
               f"{cfg.dev_split!r}, so dev Macro-F1 counts them as 0")
        if not cfg.allow_empty_classes:
            raise HeadError(msg + " (pass --allow-empty-classes to accept)")
        warnings.warn(msg, stacklevel=3)


def _rows_in_cache(cfg: HeadConfig, table: LabelTable, modalities: dict[str, Modality], train: np.ndarray,
                   dev: np.ndarray, predict: dict[str, np.ndarray], notes: list[str]
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The rows of each role that every feature set has. A labelled row missing from the cache is an error
    (or dropped with --drop-missing); a split absent from the cache altogether is skipped unless asked for."""
    must = {"train": train, "dev": dev}
    for split, rows in predict.items():
        if split == cfg.dev_split:
            continue
        labelled = rows[(table.label[rows] >= 0) | np.isfinite(table.attributes[rows]).any(1)]
        present = np.all([m.present[rows] for m in modalities.values()], axis=0)
        if not present.any() and not (cfg.test_splits and split in cfg.test_splits):
            notes.append(f"split {split!r}: not in the cache, skipped")
            predict[split] = rows[:0]
            continue
        must[split] = labelled
    for role, rows in must.items():
        gone = missing_rows(modalities, rows)
        if not gone:
            continue
        missing = np.unique(np.concatenate(list(gone.values())))
        example = ", ".join(table.ids[i] for i in missing[:3])
        where = "; ".join(f"{m}: {len(r)}" for m, r in gone.items())
        if not cfg.drop_missing:
            raise HeadError(f"{len(missing)} labelled utterance(s) of {role!r} are missing from the cache ({where}), "
                            f"e.g. {example}; extract them, or pass --drop-missing to train without them")
        notes.append(f"{role}: dropped {len(missing)} utterance(s) missing from the cache, e.g. {example}")
    present = np.all([m.present for m in modalities.values()], axis=0)
    train, dev = train[present[train]], dev[present[dev]]
    predict = {s: r[present[r]] for s, r in predict.items()}
    if not len(train) or not len(dev):
        raise HeadError("no training or dev samples left after dropping utterances missing from the cache")
    return train, dev, predict


SPEAKER_REMEDY = ("give every utterance its speaker (a csv corpus reads a speaker/SpkrID/speaker_id column), drop "
                  "those utterances from the labels, or train without --speaker-norm")


def _speaker_norm(cfg: HeadConfig, table: LabelTable, modalities: dict[str, Modality], rows: np.ndarray,
                  notes: list[str]) -> None:
    """--speaker-norm over every utterance this run touches (train, dev and every predicted split), each split's
    speakers from their own utterances there; said in config.json's notes."""
    source = f"the {cfg.corpus} labels {cfg.labels}" + (f" (fold {cfg.fold})" if cfg.fold else "")
    n_groups = standardise_speakers(modalities, table, rows, source, SPEAKER_REMEDY)
    notes.append(f"--speaker-norm: {len(rows)} utterance(s) standardised with the statistics of their own speaker "
                 f"in their split ({n_groups} split/speaker groups)")


def _soft_targets(cfg: HeadConfig, table: LabelTable, train: np.ndarray, device: torch.device, notes: list[str]
                  ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """--soft-labels: the annotator distributions (one-hot consensus where no annotator named a class), and the
    per-annotator mentions that --annotation-dropout redraws them from."""
    if not cfg.soft_labels:
        return None, None
    soft = table.soft(cfg.soft_labels)
    fallback = ~np.isfinite(soft).all(1) & (table.label >= 0)
    n_fb = int(fallback[train].sum())
    if n_fb:
        notes.append(f"{n_fb} training utterance(s) without a class mention in the detailed labels use their "
                     "one-hot consensus label")
    soft[fallback] = np.eye(len(table.classes), dtype=np.float32)[table.label[fallback]]
    annot_t = torch.as_tensor(table.annotations[cfg.soft_labels]).to(device) if cfg.annotation_dropout > 0 else None
    return torch.as_tensor(soft).to(device), annot_t


def _sampler_groups(cfg: HeadConfig, table: LabelTable, train: np.ndarray) -> np.ndarray:
    """The sampler group of every training row: its class, or one group per non-class code (O, X), or one for
    every other row without a class."""
    C = len(table.classes)
    groups = table.label[train].copy()
    non_class = groups < 0
    if non_class.any():
        codes = {code: C + k for k, code in enumerate(resolve_corpus(cfg.corpus, cfg.labels).non_class)}
        groups[non_class] = [codes.get(str(letter), C + len(codes)) for letter in table.letter[train][non_class]]
    return groups


def _avd_range(task: str, table: LabelTable, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The training range of each attribute (the A/V/D head's output scale); 1..7 without A/V/D targets."""
    avd = table.attributes
    low = np.nanmin(avd[train], axis=0) if task in ("avd", "both") else np.ones(3, np.float32)
    high = np.nanmax(avd[train], axis=0) if task in ("avd", "both") else np.full(3, 7.0, np.float32)
    return np.nan_to_num(low, nan=1.0), np.nan_to_num(high, nan=7.0)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def autocast(device: torch.device, cfg: HeadConfig):
    use = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use)


def residency(prep: Prepared) -> dict[str, dict[str, Any]]:
    """What each feature set holds in memory: float16 (the cache dtype), bfloat16, float8, or stream."""
    return {s.name: {"resident": s.resident, "dtype": str(s.frames.dtype).removeprefix("torch.")
                     if s.frames is not None else None,
                     "bytes": int(s.frames.nbytes) if s.frames is not None else 0}
            for m in prep.modalities.values() for s in m.sets}


def batch_inputs(prep: Prepared, rows: np.ndarray, rows_t: torch.Tensor | None, dtype: torch.dtype
                 ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {name: m.gather(rows, rows_t, max(int(m.lengths[rows].max()), 1), dtype)
            for name, m in prep.modalities.items()}


def class_counts(prep: Prepared) -> dict[str, dict[str, int]]:
    """Rows of each class per role (train, dev, then every other split predicted), and those without a class: what
    a head learns from and is scored on, shown before training starts."""
    table = prep.table
    roles = {"train": prep.train, "dev": prep.dev,
             **{s: r for s, r in prep.predict.items() if s != prep.cfg.dev_split and len(r)}}
    counts = {}
    for role, rows in roles.items():
        labels = table.label[rows]
        per_class = np.bincount(labels[labels >= 0], minlength=len(table.classes))
        counts[role] = {**dict(zip(table.classes.letters, per_class.tolist())), "(none)": int((labels < 0).sum())}
    return counts

"""The label table every corpus is read into, and the helpers its readers share.

Everything downstream (sampling, losses, metrics, predictions) works on a LabelTable: plain
numpy arrays aligned with a list of utterance ids. Each corpus' reader lives in heads/inputs/corpora/
and refuses what it cannot map with the offending rows named, because a silently mis-mapped class
is the most expensive bug in this field (results look plausible).
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import HeadError

ATTRIBUTES = ("EmoAct", "EmoVal", "EmoDom")  # arousal (activation), valence, dominance

GENDERS = {"female": 0, "f": 0, "male": 1, "m": 1, "unknown": -1, "": -1}


@dataclass(frozen=True)
class ClassSet:
    """An ordered set of class letters with display names; the order is the logit order."""

    letters: tuple[str, ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.letters) != len(self.names) or len(set(self.letters)) != len(self.letters):
            raise HeadError(f"bad class set {self.letters} / {self.names}")

    def __len__(self) -> int:
        return len(self.letters)

    def index(self, letter: str) -> int:
        return self.letters.index(letter)

    def to_dict(self) -> dict[str, list[str]]:
        return {"letters": list(self.letters), "names": list(self.names)}




@dataclass
class LabelTable:
    """Labels of one corpus, one row per utterance. label -1: no class (O, X, unlabelled test)."""

    classes: ClassSet
    ids: list[str]
    split: np.ndarray  # str
    label: np.ndarray  # int64, -1 = no class
    letter: np.ndarray  # str: the corpus' own code (MSP letter incl. O/X; "" if unlabelled)
    attributes: np.ndarray  # float32 [N, 3] arousal, valence, dominance; NaN where unknown
    gender: np.ndarray  # int64: 0 female, 1 male, -1 unknown
    speaker: np.ndarray  # str
    # per-annotator class mentions, uint8 [N, A_max, C]: row a = what annotator a contributed to
    # the soft label ("P": one-hot primary, "S": primary plus secondaries). Empty dict without detailed labels.
    annotations: dict[str, np.ndarray] = field(default_factory=dict)
    agreement: np.ndarray | None = None  # share of annotators whose primary equals the plurality primary

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray | Sequence[int]) -> "LabelTable":
        index = np.asarray(index, dtype=np.int64)
        return replace(
            self, ids=[self.ids[i] for i in index], split=self.split[index], label=self.label[index],
            letter=self.letter[index], attributes=self.attributes[index], gender=self.gender[index],
            speaker=self.speaker[index], annotations={k: v[index] for k, v in self.annotations.items()},
            agreement=None if self.agreement is None else self.agreement[index])

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def splits(self) -> list[str]:
        return list(dict.fromkeys(self.split.tolist()))

    def soft(self, kind: str) -> np.ndarray:
        """Soft label [N, C]: class mentions summed over annotators and normalised.

        Rows without any class mention (all annotators said Other, or no detailed labels) are NaN.
        """
        if kind not in self.annotations:
            raise HeadError(f"soft labels {kind!r} need the detailed (per-annotator) label file")
        counts = self.annotations[kind].sum(axis=1, dtype=np.float64)
        total = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, counts / total, np.nan).astype(np.float32)

    def class_counts(self, rows: np.ndarray | None = None) -> np.ndarray:
        labels = self.label if rows is None else self.label[rows]
        return np.bincount(labels[labels >= 0], minlength=len(self.classes))



def csv_dialect(path: Path) -> str:
    """The delimiter of a label table: tab for .tsv, else comma."""
    return "\t" if path.suffix.lower() == ".tsv" else ","


def read_csv_header(path: Path) -> tuple[list[str], str]:
    """The column names of a label table (and its delimiter), read without its rows."""
    if not path.is_file():
        raise HeadError(f"{path}: label file not found")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        first = next(csv.reader(handle, delimiter=csv_dialect(path)), [])
    return [h.strip() for h in first], csv_dialect(path)


def read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise HeadError(f"{path}: label file not found")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=csv_dialect(path))
        rows = list(reader)
        header = [h.strip() for h in (reader.fieldnames or [])]
    for row in rows:  # tolerate spaces after commas in hand-edited files
        extra = row.pop(None, None)
        for key in list(row):
            if key != key.strip():
                row[key.strip()] = row.pop(key)
        if extra and header:  # an unquoted last field with commas (EmoDetail "Annoyed,Frustrated")
            row[header[-1]] = ",".join([row[header[-1]] or "", *extra])
    return header, rows


def rows_note(rows: Iterable[int], limit: int = 5) -> str:
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def parse_float(text: str | None) -> float:
    text = (text or "").strip()
    if not text or text.lower() in ("nan", "none", "unknown"):
        return float("nan")
    return float(text)


def check_unique(ids: list[str], path: Path) -> None:
    dupes = [k for k, n in Counter(ids).items() if n > 1]
    if dupes:
        raise HeadError(f"{path}: duplicate utterance id(s): {', '.join(dupes[:5])}")



def restrict_classes(table: LabelTable, letters: Sequence[str]) -> LabelTable:
    """Keep a subset of the classes, in the given order (e.g. the 4-class A S H N task); samples of
    the other classes get no class label, like O and X, and their soft-label mentions are dropped."""
    unknown = [c for c in letters if c not in table.classes.letters]
    if unknown or len(set(letters)) != len(letters):
        raise HeadError(f"--classes {' '.join(letters)}: use distinct letters of {' '.join(table.classes.letters)}"
                        + (f" (unknown: {' '.join(unknown)})" if unknown else ""))
    keep = [table.classes.index(c) for c in letters]
    subset = ClassSet(tuple(letters), tuple(table.classes.names[i] for i in keep))
    remap = np.full(len(table.classes) + 1, -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    return replace(table, classes=subset, label=remap[table.label],
                   annotations={k: v[:, :, keep] for k, v in table.annotations.items()})



"""Any other corpus as one CSV: id, split, and a label and/or arousal/valence/dominance per utterance."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from sercache.cache.columns import ID_COLUMNS, LABEL_COLUMNS, SPLIT_COLUMNS, canonical_split, pick_column

from ...errors import HeadError
from ..labels import GENDERS, ClassSet, LabelTable, check_unique, parse_float, read_csv_rows, rows_note
from .base import Corpus, LabelSource, register

# Column names the generic reader recognises (case-insensitive), in the order it looks for them; --id-column,
# --label-column and --split-column name any other.
GENERIC_COLUMNS = {"id": ID_COLUMNS, "label": LABEL_COLUMNS, "split": SPLIT_COLUMNS}
GENERIC_ATTRIBUTE_COLUMNS = (("arousal", "EmoAct", "activation"), ("valence", "EmoVal"),
                             ("dominance", "EmoDom"))
TABLE_SUFFIXES = (".csv", ".tsv")


def find_columns(path: Path, header: list[str], named: dict[str, str]) -> dict[str, str | None]:
    """The id, label and split columns: those named on the command line (which must exist), else the first
    recognised name; an id and a split column are required."""
    found: dict[str, str | None] = {}
    for role, names in GENERIC_COLUMNS.items():
        if role in named:
            found[role] = pick_column(header, (named[role],))
            if found[role] is None:
                raise HeadError(f"{path}: --{role}-column {named[role]!r} is not a column (found: {', '.join(header)})")
        else:
            found[role] = pick_column(header, names)
    missing = [role for role in ("id", "split") if found[role] is None]
    if missing:
        wanted = "; ".join(f"{role}: {'/'.join(GENERIC_COLUMNS[role])} or --{role}-column" for role in missing)
        raise HeadError(f"{path}: a generic label table needs an id and a split column ({wanted}); found "
                        f"{', '.join(header)}")
    return found


def class_order(path: Path, raw_labels: list[str], classes: tuple[str, ...], has_attributes: bool = False
                ) -> tuple[str, ...]:
    """--classes in the order given (labels of the file outside it are left out, like MSP-Podcast's O/X, and
    counted in a warning; a listed label the file does not hold is an error: a typo must not drop rows), else
    the sorted labels of the file."""
    present = Counter(lab for lab in raw_labels if lab)
    if not classes:
        return tuple(sorted(present))
    absent = [c for c in classes if c not in present]
    if absent:
        raise HeadError(f"{path}: --classes {', '.join(absent)} not among the file's labels "
                        f"({', '.join(sorted(present))})")
    left_out = {lab: n for lab, n in present.items() if lab not in classes}
    if left_out:
        counts = ", ".join(f"{lab} {n}" for lab, n in sorted(left_out.items()))
        avd = "; they keep their A/V/D values" if has_attributes else ""
        warnings.warn(f"{path}: labels outside --classes are left out of classification ({counts} rows){avd}",
                      stacklevel=3)
    return classes


def read_generic_csv(path: str | Path, classes: Sequence[str] = (), columns: Sequence[tuple[str, str]] = ()
                     ) -> LabelTable:
    """Any other corpus: id, split, and a label and/or arousal/valence/dominance; gender, speaker optional.

    Split names are read as train / dev / test where they mean those (training, development, validation, val,
    testing, ...). An empty label, or one outside --classes, means "no class" (kept for regression, never for
    classification).
    """
    path = Path(path)
    header, rows = read_csv_rows(path)
    found = find_columns(path, header, dict(columns))
    id_col, split_col, label_col = found["id"], found["split"], found["label"]
    attr_cols = [pick_column(header, names) for names in GENERIC_ATTRIBUTE_COLUMNS]
    if label_col is None and not any(attr_cols):
        raise HeadError(f"{path}: no label column ({'/'.join(GENERIC_COLUMNS['label'])} or --label-column) and no "
                        "arousal/valence/dominance column")
    raw_labels = [(r.get(label_col) or "").strip() if label_col else "" for r in rows]
    letters = class_order(path, raw_labels, tuple(classes), any(attr_cols))
    cs = ClassSet(letters, letters) if letters else ClassSet(("none",), ("none",))
    genders, speakers = _speakers(path, header, rows)
    ids = [r[id_col].strip() for r in rows]
    check_unique(ids, path)
    attrs = np.array([[parse_float(r.get(c)) if c else np.nan for c in attr_cols] for r in rows],
                     dtype=np.float32).reshape(-1, 3)
    return LabelTable(
        cs, ids, np.array([canonical_split(r[split_col]) for r in rows], dtype=object),
        np.array([letters.index(lab) if lab in letters else -1 for lab in raw_labels], dtype=np.int64),
        np.array(raw_labels, dtype=object), attrs, genders, speakers)


def _speakers(path: Path, header: list[str], rows: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """The optional gender (female/male/f/m/unknown) and speaker columns."""
    gender_col = pick_column(header, ("gender", "sex"))
    speaker_col = pick_column(header, ("speaker", "SpkrID", "speaker_id"))
    genders, bad_gender = [], []
    for line, r in enumerate(rows, start=2):
        g = (r.get(gender_col) or "").strip().lower() if gender_col else ""
        if g not in GENDERS:
            bad_gender.append(line)
        genders.append(GENDERS.get(g, -1))
    if bad_gender:
        raise HeadError(f"{path}: unknown gender on line(s) {rows_note(bad_gender)} (use female/male/f/m/unknown)")
    speakers = [(r.get(speaker_col) or "").strip() if speaker_col else "" for r in rows]
    return np.array(genders, dtype=np.int64), np.array(speakers, dtype=object)


def read_csv_corpus(source: LabelSource) -> LabelTable:
    return read_generic_csv(source.labels, source.classes, source.columns)


def is_label_table(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in TABLE_SUFFIXES


GENERIC_CSV = register(Corpus(name="csv", read=read_csv_corpus, detect=is_label_table, generic=True,
                              labels_help="any other .csv/.tsv with an id, a split and a label column",
                              audio_of=lambda path: (str(path.parent), "")))  # the audio beside the table

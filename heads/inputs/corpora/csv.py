"""Any other corpus as one CSV: id, split, and a label and/or arousal/valence/dominance per utterance."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import HeadError
from ..labels import GENDERS, ClassSet, LabelTable, check_unique, parse_float, pick_column, read_csv_rows, rows_note
from .base import Corpus, register

GENERIC_ID_COLUMNS = ("id", "utterance_id", "uid", "FileName", "filename", "file")
GENERIC_LABEL_COLUMNS = ("label", "emotion", "EmoClass", "class")
GENERIC_ATTRIBUTE_COLUMNS = (("arousal", "EmoAct", "activation"), ("valence", "EmoVal"),
                             ("dominance", "EmoDom"))



def read_generic_csv(path: str | Path, classes: Sequence[str] = ()) -> LabelTable:
    """Any other corpus: id, split, and a label and/or arousal/valence/dominance; gender, speaker optional.

    The class order is `classes` when given (labels outside it are an error), else the sorted set of
    labels in the file. An empty label means "no class" (kept for regression, never for classification).
    """
    path = Path(path)
    header, rows = read_csv_rows(path)
    id_col, split_col = pick_column(header, GENERIC_ID_COLUMNS), pick_column(header, ("split", "Split_Set", "set"))
    label_col = pick_column(header, GENERIC_LABEL_COLUMNS)
    attr_cols = [pick_column(header, names) for names in GENERIC_ATTRIBUTE_COLUMNS]
    if id_col is None or split_col is None:
        raise HeadError(f"{path}: a generic label CSV needs an id column ({'/'.join(GENERIC_ID_COLUMNS)}) "
                        f"and a split column; found {', '.join(header)}")
    if label_col is None and not any(attr_cols):
        raise HeadError(f"{path}: no label column ({'/'.join(GENERIC_LABEL_COLUMNS)}) and no "
                        "arousal/valence/dominance column")
    raw_labels = [(r.get(label_col) or "").strip() if label_col else "" for r in rows]
    if classes:
        letters = tuple(classes)
        unknown: dict[str, list[int]] = {}
        for line, lab in enumerate(raw_labels, start=2):
            if lab and lab not in letters:
                unknown.setdefault(lab, []).append(line)
        if unknown:
            listed = "; ".join(f"{k!r} on line(s) {rows_note(v)}" for k, v in unknown.items())
            raise HeadError(f"{path}: label(s) outside --classes {','.join(letters)}: {listed}")
    else:
        letters = tuple(sorted({lab for lab in raw_labels if lab}))
    cs = ClassSet(letters, letters) if letters else ClassSet(("none",), ("none",))
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
    ids = [r[id_col].strip() for r in rows]
    check_unique(ids, path)
    attrs = np.array([[parse_float(r.get(c)) if c else np.nan for c in attr_cols] for r in rows],
                     dtype=np.float32).reshape(-1, 3)
    return LabelTable(
        cs, ids, np.array([r[split_col].strip().lower() for r in rows], dtype=object),
        np.array([letters.index(lab) if lab else -1 for lab in raw_labels], dtype=np.int64),
        np.array(raw_labels, dtype=object), attrs, np.array(genders, dtype=np.int64),
        np.array([(r.get(speaker_col) or "").strip() if speaker_col else "" for r in rows], dtype=object))




def read_csv_corpus(labels: str, detailed: str = "", classes: Sequence[str] = (), strict_detailed: bool = True
                    ) -> LabelTable:
    return read_generic_csv(labels, classes)


GENERIC_CSV = register(Corpus(name="csv", read=read_csv_corpus, labels_help="generic label CSV"))

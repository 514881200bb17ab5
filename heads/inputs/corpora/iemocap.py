"""IEMOCAP in the 4-class protocol (Pan et al., GMP-ATL): ang, hap+exc, sad, neu; 5 leave-one-session-out folds.

The speaker of an utterance is its session plus the gender letter of the *last* id field
(Ses01F_impro01_M012 is spoken by Ses01M although the dialog is named after the F actor).
Dev sets are carved from the training sessions by speaker, never at random, because random
splits put the same speaker in train and dev and inflate the dev score used for selection.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...errors import HeadError
from ..labels import ClassSet, LabelTable, restrict_classes
from .base import Corpus, LabelSource, register

IEMOCAP = ClassSet(("A", "S", "H", "N"), ("Angry", "Sad", "Happy+Excited", "Neutral"))
IEMOCAP_CODES = {"ang": "A", "sad": "S", "hap": "H", "exc": "H", "neu": "N"}
ALL_CODES = ("ang", "hap", "exc", "sad", "neu", "fru", "fea", "sur", "dis", "oth", "xxx")
_LINE = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\t(\S+)\t(\S+)\t\[([^\]]*)\]")


def parse_emo_evaluation(text: str, source: str = "") -> list[tuple[str, str, tuple[float, float, float]]]:
    """(utterance id, category code, (V, A, D)) for every summary line of one EmoEvaluation file."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("["):
            continue
        match = _LINE.match(line)
        if not match:
            raise HeadError(f"{source}:{number}: not an EmoEvaluation summary line: {line!r}")
        code = match[4]
        if code not in ALL_CODES:
            raise HeadError(f"{source}:{number}: unknown IEMOCAP category {code!r} (known: {', '.join(ALL_CODES)})")
        try:
            vad = tuple(float(v) for v in match[5].split(","))
        except ValueError:
            raise HeadError(f"{source}:{number}: bad [V, A, D] {match[5]!r}") from None
        if len(vad) != 3:
            raise HeadError(f"{source}:{number}: expected [V, A, D], got {match[5]!r}")
        out.append((match[3], code, vad))  # type: ignore[arg-type]
    return out


def speaker_of(utterance: str) -> str:
    session, last = utterance[:5], utterance.rsplit("_", 1)[-1]
    if not re.fullmatch(r"Ses0[1-5]", session) or last[:1] not in ("F", "M"):
        raise HeadError(f"{utterance!r} is not an IEMOCAP utterance id like Ses01F_impro01_F000")
    return session + last[0]


def read_iemocap(root: str | Path) -> LabelTable:
    """The four-class table; split = 'session1'..'session5' (folds reassign it)."""
    root = Path(root)
    files = sorted(root.glob("Session[1-5]/dialog/EmoEvaluation/*.txt"))
    if not files:
        raise HeadError(f"{root}: no Session{{1..5}}/dialog/EmoEvaluation/*.txt files")
    ids, split, label, letter, attrs, gender, speaker = [], [], [], [], [], [], []
    for path in files:
        session = path.parts[-4]
        for uid, code, (v, a, d) in parse_emo_evaluation(path.read_text(errors="replace"), str(path)):
            if code not in IEMOCAP_CODES:
                continue
            spk = speaker_of(uid)
            ids.append(uid)
            split.append(session.lower())
            label.append(IEMOCAP.index(IEMOCAP_CODES[code]))
            letter.append(code)
            attrs.append((a, v, d))  # table order is arousal, valence, dominance
            gender.append(0 if spk[-1] == "F" else 1)
            speaker.append(spk)
    return LabelTable(IEMOCAP, ids, np.array(split, dtype=object), np.array(label, dtype=np.int64),
                      np.array(letter, dtype=object), np.array(attrs, dtype=np.float32).reshape(-1, 3),
                      np.array(gender, dtype=np.int64), np.array(speaker, dtype=object))


def iemocap_fold(table: LabelTable, fold: int, dev: str = "next-session") -> LabelTable:
    """Fold k: test = session k; dev = the next session (or one speaker of it); train = the rest.

    next-speaker takes only the next session's female (odd folds) or male (even folds) speaker as dev,
    so that training keeps 7 of 8 speakers; either way dev shares no speaker with train or test.
    """
    if fold not in range(1, 6):
        raise HeadError(f"IEMOCAP fold must be 1..5, got {fold}")
    nxt = fold % 5 + 1
    session = np.array([s[-1] for s in table.split.tolist()])  # 'session3' -> '3'
    split = np.full(len(table), "train", dtype=object)
    split[session == str(fold)] = "test"
    if dev == "next-session":
        split[session == str(nxt)] = "dev"
    elif dev == "next-speaker":
        who = f"Ses0{nxt}" + ("F" if fold % 2 else "M")
        split[table.speaker == who] = "dev"
    else:
        raise HeadError(f"unknown IEMOCAP dev choice {dev!r}")
    return replace(table, split=split)


def read_iemocap_labels(source: LabelSource) -> LabelTable:
    """The four-class table, restricted to --classes (letters of A S H N) in the order given."""
    table = read_iemocap(source.labels)
    return restrict_classes(table, source.classes) if source.classes else table


def is_iemocap_root(path: Path) -> bool:
    """A release root: Session1..5/dialog/EmoEvaluation/*.txt."""
    return path.is_dir() and any(path.glob("Session[1-5]/dialog/EmoEvaluation/*.txt"))


def fold_split(table: LabelTable, fold: str, dev: str) -> LabelTable:
    return iemocap_fold(table, int(fold), dev or "next-session")


IEMOCAP_CORPUS = register(Corpus(
    name="iemocap", read=read_iemocap_labels, detect=is_iemocap_root, labels_help="the release root (Session1..5)",
    codes=IEMOCAP_CODES,
    folds=("1", "2", "3", "4", "5"), fold_split=fold_split))

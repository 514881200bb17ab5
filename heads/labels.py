"""Label tables: MSP-Podcast (consensus + detailed, as published), generic CSV; one class order.

Everything downstream (sampling, losses, metrics, predictions) works on a LabelTable: plain
numpy arrays aligned with a list of utterance ids. The MSP readers accept exactly the published
column names and letter codes and refuse anything else with the offending rows named, because
a silently mis-mapped class is the most expensive bug in this field (results look plausible).
IEMOCAP lives in iemocap.py and produces the same table.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import HeadError

CORPORA = ("msp", "iemocap", "csv")  # label formats read_labels reads
# The challenge baseline's output order (Goncalves et al., "Odyssey 2024 SER Challenge: dataset, baseline,
# results"). Recorded in every checkpoint and checked on load.
MSP_CLASSES = ("A", "S", "H", "U", "F", "D", "C", "N")
MSP_CLASS_NAMES = ("Angry", "Sad", "Happy", "Surprise", "Fear", "Disgust", "Contempt", "Neutral")
MSP_NON_CLASS = {"O": "Other", "X": "No agreement"}
MSP_SPLITS = {"Train": "train", "Development": "dev", "Validation": "dev",
              "Test1": "test1", "Test2": "test2", "Test3": "test3"}
CONSENSUS_COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
DETAILED_NEW_COLUMNS = ("FileName", "EmoDetail")
DETAILED_OLD_COLUMNS = ("Workers", "EmoClass_Major", "EmoClass_Second", "EmoAct", "EmoVal", "EmoDom")
ATTRIBUTES = ("EmoAct", "EmoVal", "EmoDom")  # arousal (activation), valence, dominance

GENDERS = {"female": 0, "f": 0, "male": 1, "m": 1, "unknown": -1, "": -1}

# Emotion words of the detailed files, mapped to a class letter, "O" (Other) or "-" (a valid
# secondary emotion that is none of the 8 classes). Misspellings seen in the published files included.
_EMOTION_WORDS = {
    "angry": "A", "anger": "A", "sad": "S", "sadness": "S", "happy": "H", "happiness": "H",
    "surprise": "U", "surprised": "U", "fear": "F", "fearful": "F", "disgust": "D", "disgusted": "D",
    "contempt": "C", "neutral": "N", "other": "O",
    "amused": "-", "frustrated": "-", "depressed": "-", "concerned": "-", "disappointed": "-",
    "dissapointed": "-", "disapointed": "-", "excited": "-", "confused": "-", "annoyed": "-",
}
_DETAIL_RE = re.compile(
    r"^\s*(?P<worker>[^;]*?)\s*;\s*(?P<middle>.*?)\s*;\s*A\s*:\s*(?P<a>[^;]*?)\s*;\s*V\s*:\s*(?P<v>[^;]*?)\s*;"
    r"\s*D\s*:\s*(?P<d>[^;]*?)\s*;?\s*$")


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


MSP = ClassSet(MSP_CLASSES, MSP_CLASS_NAMES)


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


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise HeadError(f"{path}: label file not found")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
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


def _rows_note(rows: Iterable[int], limit: int = 5) -> str:
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _float(text: str | None) -> float:
    text = (text or "").strip()
    if not text or text.lower() in ("nan", "none", "unknown"):
        return float("nan")
    return float(text)


def find_consensus(path: str | Path) -> Path:
    """Accept the CSV itself, its Labels/ directory or the corpus root (old spelling 'concensus' too)."""
    path = Path(path)
    if path.is_dir():
        for candidate in ("labels_consensus.csv", "labels_concensus.csv", "Labels/labels_consensus.csv",
                          "Labels/labels_concensus.csv"):
            if (path / candidate).is_file():
                return path / candidate
        raise HeadError(f"{path}: no labels_consensus.csv (or labels_concensus.csv) in it or in Labels/")
    return path


def read_msp_consensus(path: str | Path) -> LabelTable:
    """Read MSP-Podcast Labels/labels_consensus.csv with its published columns and letter codes."""
    path = find_consensus(path)
    header, rows = _read_csv(path)
    missing = [c for c in CONSENSUS_COLUMNS if c not in header]
    if missing:
        raise HeadError(f"{path}: not an MSP-Podcast consensus file: missing column(s) {', '.join(missing)} "
                        f"(found: {', '.join(header)}; expected {', '.join(CONSENSUS_COLUMNS)})")
    ids, split, label, letter, attrs, gender, speaker = [], [], [], [], [], [], []
    bad_class: dict[str, list[int]] = {}
    bad_split: dict[str, list[int]] = {}
    bad_gender: dict[str, list[int]] = {}
    for line, row in enumerate(rows, start=2):
        code = (row["EmoClass"] or "").strip()
        if code in MSP_CLASSES:
            label.append(MSP_CLASSES.index(code))
        elif code in MSP_NON_CLASS or code == "":
            label.append(-1)
        else:
            bad_class.setdefault(code, []).append(line)
        raw_split = (row["Split_Set"] or "").strip()
        if raw_split not in MSP_SPLITS:
            bad_split.setdefault(raw_split, []).append(line)
        raw_gender = (row["Gender"] or "").strip().lower()
        if raw_gender not in GENDERS:
            bad_gender.setdefault(row["Gender"], []).append(line)
        ids.append(row["FileName"].strip())
        letter.append(code)
        split.append(MSP_SPLITS.get(raw_split, raw_split))
        try:
            attrs.append([_float(row[c]) for c in ATTRIBUTES])
        except ValueError as err:
            raise HeadError(f"{path}: line {line}: bad attribute value ({err})") from None
        gender.append(GENDERS.get(raw_gender, -1))
        speaker.append((row["SpkrID"] or "").strip() or "Unknown")
    problems = []
    for code, lines in bad_class.items():
        problems.append(f"unknown EmoClass code {code!r} on line(s) {_rows_note(lines)}")
    for value, lines in bad_split.items():
        problems.append(f"unknown Split_Set {value!r} on line(s) {_rows_note(lines)}")
    for value, lines in bad_gender.items():
        problems.append(f"unknown Gender {value!r} on line(s) {_rows_note(lines)}")
    if problems:
        raise HeadError(f"{path}: " + "; ".join(problems) + f". Expected EmoClass in "
                        f"{' '.join(MSP_CLASSES)} {' '.join(MSP_NON_CLASS)}, Split_Set in "
                        f"{', '.join(MSP_SPLITS)}, Gender Female/Male/Unknown")
    _check_unique(ids, path)
    return LabelTable(MSP, ids, np.array(split, dtype=object), np.array(label, dtype=np.int64),
                      np.array(letter, dtype=object), np.array(attrs, dtype=np.float32).reshape(-1, 3),
                      np.array(gender, dtype=np.int64), np.array(speaker, dtype=object))


def _check_unique(ids: list[str], path: Path) -> None:
    dupes = [k for k, n in Counter(ids).items() if n > 1]
    if dupes:
        raise HeadError(f"{path}: duplicate utterance id(s): {', '.join(dupes[:5])}")


@dataclass
class Annotation:
    """One annotator's judgement of one file as written in labels_detailed.csv."""

    worker: str
    primary: str  # class letter, "O" or "-" (non-class emotion)
    secondary: tuple[str, ...]  # the same codes, as listed (may or may not repeat the primary)


def emotion_code(word: str) -> str | None:
    """Class letter / 'O' / '-' for one emotion word of the detailed file; None if unknown."""
    w = word.strip().lower()
    if w.startswith("other"):  # "Other", "Other-bored", "Other - sarcastic", ...
        return "O"
    if w in _EMOTION_WORDS:
        return _EMOTION_WORDS[w]
    if word.strip() in MSP_CLASSES or word.strip() == "O":  # single-letter codes
        return word.strip()
    return None


def read_msp_detailed(path: str | Path, strict: bool = True) -> dict[str, list[Annotation]]:
    """Per-file annotations of labels_detailed.csv, either published layout (sniffed from the header).

    v1.11+: FileName, EmoDetail ("WORKER00001; Angry; Annoyed,Frustrated; A:5.0; V:2.0; D:4.0;").
    Older: [FileName,] Workers, EmoClass_Major, EmoClass_Second, EmoAct, EmoVal, EmoDom.
    Unknown primary emotions raise (strict) or count as Other; unknown secondary words (free text
    split at commas) count as non-class mentions and are reported in one warning.
    """
    path = Path(path)
    header, rows = _read_csv(path)
    if "EmoDetail" in header:
        layout = "new"
        if "FileName" not in header:
            raise HeadError(f"{path}: EmoDetail layout without a FileName column (found: {', '.join(header)})")
    elif all(c in header for c in DETAILED_OLD_COLUMNS[:3]):
        layout = "old"
    else:
        raise HeadError(f"{path}: not an MSP-Podcast detailed label file: expected columns "
                        f"{', '.join(DETAILED_NEW_COLUMNS)} (v1.11+) or {', '.join(DETAILED_OLD_COLUMNS)} "
                        f"(older); found {', '.join(header)}")
    name_col = "FileName" if "FileName" in header else header[0]
    if layout == "old" and name_col in DETAILED_OLD_COLUMNS:
        raise HeadError(f"{path}: old detailed layout without a file-name column (found: {', '.join(header)})")
    out: dict[str, list[Annotation]] = {}
    unknown_primary: dict[str, list[int]] = {}
    unknown_secondary: Counter = Counter()
    for line, row in enumerate(rows, start=2):
        if layout == "new":
            match = _DETAIL_RE.match(row["EmoDetail"] or "")
            if not match:
                raise HeadError(f"{path}: line {line}: EmoDetail {row['EmoDetail']!r} does not read as "
                                "'WORKER; Primary; Secondary,...; A:x; V:y; D:z;'")
            worker = match["worker"]
            primary_word, _, secondary_text = match["middle"].partition(";")
        else:
            worker = row["Workers"]
            primary_word, secondary_text = row["EmoClass_Major"] or "", row["EmoClass_Second"] or ""
        primary = emotion_code(primary_word)
        if primary is None:
            if strict:
                unknown_primary.setdefault(primary_word.strip(), []).append(line)
            primary = "O"
        secondary = []
        for word in secondary_text.split(","):
            if not word.strip():
                continue
            code = emotion_code(word)
            if code is None:
                unknown_secondary[word.strip()] += 1
                code = "-"
            secondary.append(code)
        out.setdefault(row[name_col].strip(), []).append(Annotation(worker.strip(), primary, tuple(secondary)))
    if unknown_primary:
        listed = "; ".join(f"{w!r} on line(s) {_rows_note(lines)}" for w, lines in unknown_primary.items())
        raise HeadError(f"{path}: unknown primary emotion(s): {listed}. Known: the 8 classes, Other[-...], "
                        f"and {', '.join(w for w, c in _EMOTION_WORDS.items() if c == '-')}")
    if unknown_secondary:
        common = ", ".join(f"{w!r} x{n}" for w, n in unknown_secondary.most_common(5))
        warnings.warn(f"{path}: {sum(unknown_secondary.values())} secondary mention(s) are no known emotion "
                      f"and count as non-class ({common})", stacklevel=2)
    return out


def attach_detailed(table: LabelTable, detailed: dict[str, list[Annotation]]) -> LabelTable:
    """Add per-annotator P/S mentions and primary agreement to a consensus table.

    P: an annotator contributes its primary emotion if it is one of the classes.
    S: an annotator contributes every class among {primary} U secondaries (each once), i.e. the
    secondary mentions *including* the primary (CONILIUM fig. 2); Other and non-class emotions
    are dropped before the per-utterance normalisation done in LabelTable.soft().
    """
    C = len(table.classes)
    per_file = [detailed.get(uid, []) for uid in table.ids]
    a_max = max((len(a) for a in per_file), default=0) or 1
    P = np.zeros((len(table), a_max, C), dtype=np.uint8)
    S = np.zeros((len(table), a_max, C), dtype=np.uint8)
    agreement = np.full(len(table), np.nan, dtype=np.float32)
    for i, file_annotations in enumerate(per_file):
        for a, ann in enumerate(file_annotations):
            if ann.primary in table.classes.letters:
                P[i, a, table.classes.index(ann.primary)] = 1
            for code in {ann.primary, *ann.secondary}:
                if code in table.classes.letters:
                    S[i, a, table.classes.index(code)] = 1
        if file_annotations:
            votes = Counter(ann.primary for ann in file_annotations)
            agreement[i] = votes.most_common(1)[0][1] / len(file_annotations)
    missing = sum(1 for a in per_file if not a)
    if missing:
        warnings.warn(f"{missing} of {len(table)} utterances have no rows in the detailed label file", stacklevel=2)
    return replace(table, annotations={"P": P, "S": S}, agreement=agreement)


GENERIC_ID_COLUMNS = ("id", "utterance_id", "uid", "FileName", "filename", "file")
GENERIC_LABEL_COLUMNS = ("label", "emotion", "EmoClass", "class")
GENERIC_ATTRIBUTE_COLUMNS = (("arousal", "EmoAct", "activation"), ("valence", "EmoVal"),
                             ("dominance", "EmoDom"))


def _pick(header: Sequence[str], names: Sequence[str]) -> str | None:
    lower = {h.lower(): h for h in header}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def read_generic_csv(path: str | Path, classes: Sequence[str] = ()) -> LabelTable:
    """Any other corpus: id, split, and a label and/or arousal/valence/dominance; gender, speaker optional.

    The class order is `classes` when given (labels outside it are an error), else the sorted set of
    labels in the file. An empty label means "no class" (kept for regression, never for classification).
    """
    path = Path(path)
    header, rows = _read_csv(path)
    id_col, split_col = _pick(header, GENERIC_ID_COLUMNS), _pick(header, ("split", "Split_Set", "set"))
    label_col = _pick(header, GENERIC_LABEL_COLUMNS)
    attr_cols = [_pick(header, names) for names in GENERIC_ATTRIBUTE_COLUMNS]
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
            listed = "; ".join(f"{k!r} on line(s) {_rows_note(v)}" for k, v in unknown.items())
            raise HeadError(f"{path}: label(s) outside --classes {','.join(letters)}: {listed}")
    else:
        letters = tuple(sorted({lab for lab in raw_labels if lab}))
    cs = ClassSet(letters, letters) if letters else ClassSet(("none",), ("none",))
    gender_col, speaker_col = _pick(header, ("gender", "sex")), _pick(header, ("speaker", "SpkrID", "speaker_id"))
    genders, bad_gender = [], []
    for line, r in enumerate(rows, start=2):
        g = (r.get(gender_col) or "").strip().lower() if gender_col else ""
        if g not in GENDERS:
            bad_gender.append(line)
        genders.append(GENDERS.get(g, -1))
    if bad_gender:
        raise HeadError(f"{path}: unknown gender on line(s) {_rows_note(bad_gender)} (use female/male/f/m/unknown)")
    ids = [r[id_col].strip() for r in rows]
    _check_unique(ids, path)
    attrs = np.array([[_float(r.get(c)) if c else np.nan for c in attr_cols] for r in rows],
                     dtype=np.float32).reshape(-1, 3)
    return LabelTable(
        cs, ids, np.array([r[split_col].strip().lower() for r in rows], dtype=object),
        np.array([letters.index(lab) if lab else -1 for lab in raw_labels], dtype=np.int64),
        np.array(raw_labels, dtype=object), attrs, np.array(genders, dtype=np.int64),
        np.array([(r.get(speaker_col) or "").strip() if speaker_col else "" for r in rows], dtype=object))


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


def read_labels(corpus: str, labels: str, detailed: str = "", classes: Sequence[str] = (),
                strict_detailed: bool = True) -> LabelTable:
    """The label table of one corpus as configured (IEMOCAP folds are applied by the caller)."""
    if not labels:
        raise HeadError("--labels is required")
    if corpus == "msp":
        table = read_msp_consensus(labels)
        if detailed:
            table = attach_detailed(table, read_msp_detailed(detailed, strict=strict_detailed))
        return restrict_classes(table, classes) if classes else table
    if corpus == "csv":
        return read_generic_csv(labels, classes)
    if corpus == "iemocap":
        from .iemocap import read_iemocap

        return read_iemocap(labels)
    raise HeadError(f"unknown corpus {corpus!r}; choose one of {', '.join(CORPORA)}")

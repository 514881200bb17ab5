"""MSP-Podcast: labels_consensus.csv and labels_detailed.csv as published, eight classes plus O and X.

The readers accept exactly the published column names and letter codes (both detailed-file layouts)
and refuse anything else with the offending rows named.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ...errors import HeadError
from ..labels import (
    ATTRIBUTES,
    GENDERS,
    ClassSet,
    LabelTable,
    check_unique,
    parse_float,
    read_csv_header,
    read_csv_rows,
    restrict_classes,
    rows_note,
)
from .base import Corpus, LabelSource, register

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


MSP = ClassSet(MSP_CLASSES, MSP_CLASS_NAMES)
# MSP-Podcast train counts (table 4 of Chen et al., Sheffield's Odyssey 2024 solution), in MSP_CLASSES order.
MSP_TRAIN_COUNTS = {"A": 3053, "S": 3882, "H": 13440, "U": 2897, "F": 1139, "D": 1426, "C": 2443, "N": 25016}


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
    header, rows = read_csv_rows(path)
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
            attrs.append([parse_float(row[c]) for c in ATTRIBUTES])
        except ValueError as err:
            raise HeadError(f"{path}: line {line}: bad attribute value ({err})") from None
        gender.append(GENDERS.get(raw_gender, -1))
        speaker.append((row["SpkrID"] or "").strip() or "Unknown")
    problems = []
    for code, lines in bad_class.items():
        problems.append(f"unknown EmoClass code {code!r} on line(s) {rows_note(lines)}")
    for value, lines in bad_split.items():
        problems.append(f"unknown Split_Set {value!r} on line(s) {rows_note(lines)}")
    for value, lines in bad_gender.items():
        problems.append(f"unknown Gender {value!r} on line(s) {rows_note(lines)}")
    if problems:
        raise HeadError(f"{path}: " + "; ".join(problems) + f". Expected EmoClass in "
                        f"{' '.join(MSP_CLASSES)} {' '.join(MSP_NON_CLASS)}, Split_Set in "
                        f"{', '.join(MSP_SPLITS)}, Gender Female/Male/Unknown")
    check_unique(ids, path)
    return LabelTable(MSP, ids, np.array(split, dtype=object), np.array(label, dtype=np.int64),
                      np.array(letter, dtype=object), np.array(attrs, dtype=np.float32).reshape(-1, 3),
                      np.array(gender, dtype=np.int64), np.array(speaker, dtype=object))



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
    header, rows = read_csv_rows(path)
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
        listed = "; ".join(f"{w!r} on line(s) {rows_note(lines)}" for w, lines in unknown_primary.items())
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




def read_msp(source: LabelSource) -> LabelTable:
    """The consensus table, with the detailed file's annotations attached when given, restricted to --classes."""
    table = read_msp_consensus(source.labels)
    if source.detailed:
        table = attach_detailed(table, read_msp_detailed(source.detailed, strict=source.strict_detailed))
    return restrict_classes(table, source.classes) if source.classes else table


def is_msp_consensus(path: Path) -> bool:
    """A labels_consensus.csv (or a directory holding one) with every published column."""
    try:
        header, _ = read_csv_header(find_consensus(path))
    except (HeadError, OSError, UnicodeDecodeError):
        return False
    return all(c in header for c in CONSENSUS_COLUMNS)


MSP_PODCAST = register(Corpus(
    name="msp", read=read_msp, detect=is_msp_consensus, labels_help="labels_consensus.csv (or its Labels/ dir)",
    detailed=True, non_class=tuple(MSP_NON_CLASS), columns=("FileName", "EmoClass"),
    audio_of=lambda path: (str(find_consensus(path).parent.parent), "")))  # the release root, with Audios/

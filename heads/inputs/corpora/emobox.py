"""EmoBox (Ma et al., 2024): one folder per corpus of its data/ directory, read as a fold protocol.

Layout: `<c>.jsonl` (every utterance: key, wav, emo, length, ...), `fold_<k>/<c>_{train,test}_fold_<k>.jsonl`
(some corpora also `<c>_valid_fold_<k>.jsonl`) and `label_map.json` (the corpus' emo codes -> class names).
--labels is that folder (or a file in it); the classes are the label map's targets (--classes keeps a subset);
the folds are the fold_<k> folders found there (1 for most corpora, 3 to 6 for some).

Fold k: fold train -> train, fold test -> test, dev = the fold's valid file where the release has one, else
carved from the fold's train part (EmoBox has no dev split): DEV_FRACTION of it, speaker-disjoint where the
keys encode the speaker (SPEAKER_RULES), the fold tests on speakers it does not train on, and train keeps
MIN_DEV_SPEAKERS or more; else stratified by emo code (a random fold tests on train's speakers, and its dev
should be like its test). The seed is fixed (DEV_SEED and the fold), so every training seed and every
--classes selects on the same dev set; `fold_note` records how dev was made.

Extraction reads `<c>.jsonl` as its manifest: ids = key, wav under --data-root (the folder holding EmoBox's
downloads/).

Quirks of the published repository (emo-box/EmoBox, data/), all handled here or in extract/manifest.py:
- two fold-file namings: emodb's fold_<k>/ holds `emodb_{train,test}_fold_<k>.jsonl` and an older
  `emodb_{train,test}_fold<k>.jsonl` with fields audio/label instead of wav/emo (same keys); `_fold_<k>` is
  read first, `_fold<k>` otherwise, and audio/label stand for wav/emo.
- emovo's label map is `label_dict.json`.
- label-map keys and emo values differ in case: emodb maps "Neutral" while its files say "neutral" (matched
  without regard to case when the exact key is missing); ased maps both "s" and "S" to Sad; emodb's key
  "boredem" (sic) is spelled so in the files as well and maps to Boredom.
- emo values are codes (a, ANG, 01, gio, rab), words (anger, Surprised, neutrality) or the class name itself
  (emns, esd, turevdb); they are always mapped, and a value that is already a target name is accepted.
- several codes share a class (iemocap hap and exc -> Happy); some targets are not emotions (asvpesd
  "breath", "pain, groan", "UnKnown" for 1 utterance; msppodcast "No-agreement" X, "Other" O): --classes.
- m3ed, meld and msppodcast have an official `<c>_valid_fold_1.jsonl`: it is the dev set, nothing is carved
  (as EmoBox does). mer2023's fold_1 also has test1/test2/test3 files: only `mer2023_test_fold_1` is read;
  1246 utterances of mer2023.jsonl are in no fold file and take no part.
- fold counts: cafe 3; casia, jlcorpus, savee 4; emodb, esd, iemocap, polish, subesco 5; emovo, ravdess 6; the
  rest 1. The multi-fold ones leave speakers out, except emodb (random folds: all 10 speakers in every split);
  the single folds are random utterance splits.
- keys are `<c>-` plus the file name, often with its `_` turned into `-` (cremad-1087-IWL-ANG-XX,
  ravdess-03-01-05-01-02-01-18), sometimes with its extension (resd-...wav, enterface-s19_an_4.avi), and
  enterface writes 16 of its speakers as `s_3` instead of `s3`.
- pavoque's utterances are segments of one long flac per style (start_time / end_time): the manifest reads them.
- wav is relative to the EmoBox root ("downloads/<c>/..."); enterface, meld, mer2023, emns and mead point at
  video or .m4a/.webm containers that the extractor does not decode: convert them to wav first.
- EmoBox's own split_sets (EmoDataset.py) carves 80/20 but returns the whole train set, so its dev rows are also
  trained on; here dev rows leave train.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import HeadError
from ..labels import ClassSet, LabelTable
from .base import Corpus, LabelSource, register
from .csv import class_order

LABEL_MAPS = ("label_map.json", "label_dict.json")  # emovo names its map label_dict.json
PARTS = {"train": "train", "test": "test", "valid": "dev"}  # fold file part -> split of the fold
DEV_SEED = 0  # fixed: the carve does not move with --seed, so runs of different seeds select on the same rows
DEV_FRACTION = 0.2  # of a fold's train rows, as EmoBox's own 80/20 carve
MIN_DEV_SPEAKERS = 4  # fewer training speakers (casia, jlcorpus, savee: 3): a stratified carve instead
LABELS_HELP = "an EmoBox corpus folder (label_map.json, fold_<k>/<corpus>_{train,test}_fold_<k>.jsonl)"

# The speaker of an utterance from its key (without "<corpus>-"): (pattern, speaker template). Checked on the
# published keys: the multi-fold corpora then share no speaker between a fold's train and test files.
SPEAKER_RULES: dict[str, tuple[str, str]] = {
    "iemocap": (r"(Ses0\d)[FM]_\w+_([FM])\d+", r"\1\2"),  # Ses01F_impro01_M012 is spoken by Ses01M
    "cremad": (r"(\d{4})-.*", r"\1"),  # 1001-DFA-ANG-XX
    "ravdess": (r"(?:\d\d-){6}(\d\d)", r"\1"),  # 03-01-05-01-02-01-12: the actor last
    "emodb": (r"(\d\d)[a-z]\d\d[A-Za-z]+", r"\1"),  # 03a01Wa
    "oreau": (r"(\d\d)[a-z]\d\d[A-Za-z]+", r"\1"),  # 10a02Ja, EmoDB's scheme
    "emovo": (r"[a-z]{3}-([fm]\d)-.*", r"\1"),  # gio-f2-b2
    "casia": (r"\d+-([a-z]+)-[a-z]+", r"\1"),  # 239-wangzhe-neutral
    "savee": (r"([A-Z]{2})-[a-z]+\d+", r"\1"),  # JE-n23
    "cafe": (r"(\d\d)-.*", r"\1"),  # 12-P-2-5
    "polish": (r"([fm]\d)\..*", r"\1"),  # m3.s_trzymaj_5
    "jlcorpus": (r"((?:fe)?male\d)-.*", r"\1"),  # male2-concerned-6b-1
    "tess": (r"([OY]AF)-.*", r"\1"),  # OAF-lid-fear
    "subesco": (r"([FM]_\d\d_[A-Z]+)_.*", r"\1"),  # F_10_FAHMEE_S_6_FEAR_5
    "shemo": (r"([FM]\d\d)[A-Z]\d\d", r"\1"),  # M36S02
    "esd": (r"(\d{4})-\d+", r"\1"),  # 0018-001668
    "mead": (r"([MW]\d{3})-.*", r"\1"),  # W018-sad-level-2-028
    "enterface": (r"s_?(\d+)_.*", r"s\1"),  # s19_an_4.avi, s_3_su_1.avi
    "emovdb": (r"([a-z]+)-.*", r"\1"),  # jenie-Amused-0057
    "urdu": (r"(S[MF]\d+)_.*", r"\1"),  # SM20_F8_N012
}


def emobox_root(path: Path) -> Path:
    """The corpus folder --labels names: itself, or the folder of a file in it (<c>.jsonl, label_map.json)."""
    return path if path.is_dir() else path.parent


def fold_file(folder: Path, k: str, part: str) -> Path | None:
    """The fold file of one part in either naming: <c>_<part>_fold_<k>.jsonl first, else <c>_<part>_fold<k>.jsonl."""
    for pattern in (f"*_{part}_fold_{k}.jsonl", f"*_{part}_fold{k}.jsonl"):
        found = sorted(folder.glob(pattern))
        if len(found) > 1:
            raise HeadError(f"{folder}: {' and '.join(p.name for p in found)}: one corpus per folder")
        if found:
            return found[0]
    return None


def emobox_folds(path: Path) -> tuple[str, ...]:
    """The numbers of the fold_<k> folders that hold a test file, in order: the corpus' folds."""
    root = emobox_root(path)
    folds = sorted(int(d.name[5:]) for d in root.glob("fold_*") if d.name[5:].isdigit() and d.is_dir()
                   and fold_file(d, d.name[5:], "test"))
    if not folds:
        raise HeadError(f"{root}: no fold_<k>/ folder with a <corpus>_test_fold_<k>.jsonl ({LABELS_HELP}; point "
                        "--labels at one corpus' folder of EmoBox's data/, e.g. data/iemocap)")
    return tuple(str(k) for k in folds)


def is_emobox_dir(path: Path) -> bool:
    """--corpus auto: a folder (or a file in one) with a label map and a fold_<k>/ test file."""
    try:
        root = emobox_root(path)
        return any((root / m).is_file() for m in LABEL_MAPS) and bool(emobox_folds(root))
    except (HeadError, OSError):
        return False


def corpus_name(root: Path, k: str) -> str:
    """The <c> of the fold files (EmoBox names them after the corpus, as its folder): the key prefix."""
    test = fold_file(root / f"fold_{k}", k, "test")
    assert test is not None  # a fold is a folder with a test file
    return re.sub(r"_test_fold_?\d+\.jsonl$", "", test.name)


def read_label_map(root: Path) -> tuple[Path, dict[str, str]]:
    """label_map.json (or label_dict.json): {emo code: class name}."""
    path = next((root / m for m in LABEL_MAPS if (root / m).is_file()), None)
    if path is None:
        raise HeadError(f"{root}: no {' or '.join(LABEL_MAPS)} (the corpus' emo codes -> class names)")
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HeadError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(mapping, dict) or not mapping or not all(isinstance(v, str) for v in mapping.values()):
        raise HeadError(f'{path}: expected a JSON object of emo code -> class name, e.g. {{"ang": "Angry"}}')
    return path, {str(k): v.strip() for k, v in mapping.items()}


class LabelMap:
    """A label map read leniently: exact key, else the key in any case, else a value that is a class name."""

    def __init__(self, path: Path, mapping: dict[str, str]):
        self.path, self.mapping = path, mapping
        lowered: dict[str, set[str]] = {}
        for key, target in [*mapping.items(), *((t, t) for t in mapping.values())]:
            lowered.setdefault(key.lower(), set()).add(target)
        self.lowered = {k: t.pop() for k, t in lowered.items() if len(t) == 1}  # a case clash stays exact

    def target(self, value: str, where: str) -> str:
        found = self.mapping.get(value) or self.lowered.get(value.lower())
        if found is None:
            names = ", ".join(sorted(set(self.mapping.values())))
            raise HeadError(f"{where}: emo {value!r} is not a key of {self.path} (accepted: "
                            f"{', '.join(self.mapping)}, or a class name: {names})")
        return found


def read_jsonl(path: Path) -> list[tuple[str, str, str]]:
    """(where, key, emo) of every row of one fold file; the older naming's `label` stands for `emo`."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise HeadError(f"{path}:{number}: not valid JSON ({err})") from None
        emo = row.get("emo", row.get("label")) if isinstance(row, dict) else None
        if not isinstance(row, dict) or not row.get("key") or emo in (None, ""):
            raise HeadError(f"{path}:{number}: an EmoBox row needs a key and an emo (or label) field")
        rows.append((f"{path}:{number}", str(row["key"]), str(emo)))
    return rows


def read_folds(root: Path, folds: tuple[str, ...]) -> tuple[dict[str, tuple[str, str]], dict[str, dict[str, str]]]:
    """{key: (emo, where first seen)} over every fold file, and per fold {key: split} (train / test / dev)."""
    emo: dict[str, tuple[str, str]] = {}
    roles: dict[str, dict[str, str]] = {}
    for k in folds:
        roles[k] = {}
        for part, split in PARTS.items():
            path = fold_file(root / f"fold_{k}", k, part)
            for where, key, value in read_jsonl(path) if path else ():
                if key in roles[k]:
                    raise HeadError(f"{where}: key {key!r} is in fold {k} twice")
                if emo.setdefault(key, (value, where))[0] != value:
                    raise HeadError(f"{where}: emo {value!r} of {key!r}, but {emo[key][0]!r} at {emo[key][1]}")
                roles[k][key] = split
        if "train" not in roles[k].values():
            raise HeadError(f"{root / f'fold_{k}'}: no <corpus>_train_fold_{k}.jsonl rows")
    return emo, roles


def encode_splits(root: Path, keys: list[str], roles: dict[str, dict[str, str]]) -> list[str]:
    """One split per key that every fold's splits follow from (like IEMOCAP's session): 'fold<k>' = the test
    utterances of fold k (trained on in the others), 'dev' = a valid file's, 'train' = never tested.
    Checked against every fold file, so a fold that is not "its test, its valid, train the rest" is refused."""
    split = []
    for key in keys:
        tested = [k for k in roles if roles[k].get(key) == "test"]
        dev = any(roles[k].get(key) == "dev" for k in roles)
        split.append(f"fold{tested[0]}" if tested else "dev" if dev else "train")
    for k, by_key in roles.items():
        decoded = fold_roles(np.array(split, dtype=object), k)
        wrong = [key for key, role in zip(keys, decoded) if by_key.get(key) != role]
        if wrong:
            raise HeadError(f"{root / f'fold_{k}'}: utterance {wrong[0]!r} (and {len(wrong) - 1} more) is not where "
                            "sercache reads EmoBox folds: each fold's train file holds every utterance outside its "
                            "test (and valid) file, and each utterance is tested in one fold at most")
    return split


def fold_roles(split: np.ndarray, fold: str) -> np.ndarray:
    """Train / dev / test of every row in fold `fold`, from the encoded splits."""
    roles = np.full(len(split), "train", dtype=object)
    roles[split == "dev"] = "dev"
    roles[split == f"fold{fold}"] = "test"
    return roles


def speaker_of(corpus: str, key: str) -> str:
    """The speaker a key encodes (SPEAKER_RULES), '' where the corpus has no rule or the key does not match."""
    if corpus not in SPEAKER_RULES:
        return ""
    pattern, template = SPEAKER_RULES[corpus]
    match = re.fullmatch(pattern, key.removeprefix(f"{corpus}-"))
    return match.expand(template) if match else ""


def read_emobox(source: LabelSource) -> LabelTable:
    """Every utterance of the fold files, split by the fold that tests it ('fold<k>'; 'train' / 'dev' for
    the rest), labelled with the label map's class names (restricted to --classes in the order given)."""
    if not Path(source.labels).exists():
        raise HeadError(f"--labels {source.labels}: no such folder ({LABELS_HELP})")
    root = emobox_root(Path(source.labels))
    folds = emobox_folds(root)
    name = corpus_name(root, folds[0])
    label_map = LabelMap(*read_label_map(root))
    emo, roles = read_folds(root, folds)
    keys = list(emo)
    targets = [label_map.target(value, where) for value, where in emo.values()]
    letters = class_order(label_map.path, targets, source.classes)
    n = len(keys)
    return LabelTable(
        ClassSet(letters, letters), keys, np.array(encode_splits(root, keys, roles), dtype=object),
        np.array([letters.index(t) if t in letters else -1 for t in targets], dtype=np.int64),
        np.array([value for value, _ in emo.values()], dtype=object), np.full((n, 3), np.nan, np.float32),
        np.full(n, -1, np.int64), np.array([speaker_of(name, k) for k in keys], dtype=object))


def carve_dev(table: LabelTable, split: np.ndarray, fold: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Dev rows out of a fold's train rows. Whole speakers when the fold tests on speakers it does not train on
    (known for every row, MIN_DEV_SPEAKERS or more in train): a dev set of train's speakers would flatter the
    score that selects the checkpoint. Else (random folds test on train's speakers too) per emo code, so dev
    is as like test as train is. Seeded by DEV_SEED and the fold; returns the rows and the record."""
    rng = np.random.default_rng([DEV_SEED, int(fold)])
    train = np.flatnonzero(split == "train")
    record: dict[str, Any] = {"dev": "carved from the fold's train part", "seed": DEV_SEED, "fraction": DEV_FRACTION}
    why = why_not_by_speaker(table.speaker[train], table.speaker[split == "test"])
    if not why:
        dev, chosen = speaker_carve(table.speaker, train, sorted(set(table.speaker[train].tolist())), rng)
        return dev, {**record, "method": "speaker-disjoint", "speakers": chosen, "rows": int(len(dev))}
    dev = stratified_carve(table.letter, train, rng)
    return dev, {**record, "method": "stratified by emo code", "why": why, "rows": int(len(dev))}


def why_not_by_speaker(train: np.ndarray, test: np.ndarray) -> str:
    """Why a fold's dev set is not carved by speaker ('' when it is)."""
    trained, tested = set(train.tolist()), set(test.tolist())
    if "" in trained or "" in tested:
        return "the keys do not encode the speaker"
    if trained & tested:
        return f"the fold tests on {len(trained & tested)} of its {len(trained)} training speakers"
    if len(trained) < MIN_DEV_SPEAKERS:
        return f"{len(trained)} training speakers, fewer than {MIN_DEV_SPEAKERS}"
    return ""


def speaker_carve(speaker: np.ndarray, train: np.ndarray, distinct: list[str], rng: np.random.Generator
                  ) -> tuple[np.ndarray, list[str]]:
    """Speakers in a seeded order until they hold DEV_FRACTION of the train rows; one speaker at least stays."""
    chosen: list[str] = []
    for i in rng.permutation(len(distinct))[:-1]:
        chosen.append(distinct[i])
        if np.isin(speaker[train], chosen).sum() >= DEV_FRACTION * len(train):
            break
    return train[np.isin(speaker[train], chosen)], sorted(chosen)


def stratified_carve(code: np.ndarray, train: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """DEV_FRACTION of the train rows of every emo code (rounded half up), drawn in a seeded order."""
    picked = []
    for value in sorted(set(code[train].tolist())):
        rows = train[code[train] == value]
        picked.append(rng.permutation(rows)[:int(DEV_FRACTION * len(rows) + 0.5)])
    return np.sort(np.concatenate(picked)) if picked else train[:0]


def split_fold(table: LabelTable, fold: str) -> tuple[LabelTable, dict[str, Any]]:
    """Fold `fold`'s train / dev / test, and how its dev set was made."""
    folds = sorted({s[4:] for s in table.split.tolist() if s.startswith("fold")}, key=int)
    if fold not in folds:
        raise HeadError(f"--fold {fold!r}: this EmoBox corpus has fold(s) {', '.join(folds)} (its fold_<k>/ "
                        "folders), or all")
    split = fold_roles(table.split, fold)
    if (split == "dev").any():
        return replace(table, split=split), {"dev": "the release's valid file", "rows": int((split == "dev").sum())}
    dev, record = carve_dev(table, split, fold)
    split[dev] = "dev"
    return replace(table, split=split), record


def emobox_fold(table: LabelTable, fold: str, dev_choice: str = "") -> LabelTable:
    """Fold k's splits (dev_choice, IEMOCAP's --iemocap-dev, has no meaning here: the dev rule is fixed)."""
    return split_fold(table, fold)[0]


def emobox_fold_note(source: LabelSource, fold: str) -> dict[str, Any]:
    """How fold `fold`'s dev set was made (official, or carved: method, seed, fraction, speakers), for the record."""
    return split_fold(read_emobox(source), fold)[1]


def emobox_audio(path: Path) -> tuple[str, str]:
    """Extraction's input: the corpus' <c>.jsonl, its wav paths under the EmoBox root (data/<c> -> the root)."""
    root = emobox_root(path)
    name = corpus_name(root, emobox_folds(root)[0])
    return str(root / f"{name}.jsonl"), str(root.parent.parent)


EMOBOX_CORPUS = register(Corpus(
    name="emobox", read=read_emobox, detect=is_emobox_dir, labels_help=LABELS_HELP,
    fold_split=emobox_fold, folds_of=emobox_folds, fold_note=emobox_fold_note, audio_of=emobox_audio))

"""The one vocabulary of the tables a user hands sercache (label files, transcript and split CSVs, id lists): which
column names mean an utterance id, a split, an emotion label or a transcript, and which split names mean train,
dev and test. Both stages read it, so a name one stage accepts, every stage accepts."""

from __future__ import annotations

from typing import Sequence

# Column names in the order they are looked for, matched without regard to case.
ID_COLUMNS = ("id", "utterance_id", "uid", "utt_id", "utt", "utterance", "FileName", "filename", "file", "path")
SPLIT_COLUMNS = ("split", "Split_Set", "set", "partition")
LABEL_COLUMNS = ("label", "emotion", "EmoClass", "class")
TRANSCRIPT_COLUMNS = ("Transcript", "transcript", "text")

# Split names as corpora spell them, and the one each stands for (train / dev / test are the defaults of
# --train-split, --dev-split and the predicted splits); other names (test1, session3, ...) are kept, lower-cased.
SPLIT_ALIASES = {"train": ("train", "training"), "dev": ("dev", "development", "validation", "valid", "val"),
                 "test": ("test", "testing")}
_CANONICAL_SPLIT = {alias: name for name, aliases in SPLIT_ALIASES.items() for alias in aliases}


def canonical_split(name: str) -> str:
    """'Development', 'validation', 'val' -> 'dev'; 'training' -> 'train'; 'testing' -> 'test'; others lower-cased."""
    low = name.strip().lower()
    return _CANONICAL_SPLIT.get(low, low)


def pick_column(header: Sequence[str], names: Sequence[str]) -> str | None:
    """The first of `names` that `header` holds, compared without regard to case; its spelling in the header."""
    lower = {h.lower(): h for h in header}
    return next((lower[n.lower()] for n in names if n.lower() in lower), None)

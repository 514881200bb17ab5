"""What stage 2 needs to know of a corpus, and the registry the corpus modules add themselves to."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ...errors import HeadError
from ..labels import LabelTable

ALL_FOLDS = ("", "all")  # --fold values that mean "every fold of the protocol, one run each"
WHOLE = "whole"  # --fold whole: every labelled utterance but a dev part trains (a model for use elsewhere)
AUTO = "auto"  # --corpus auto: the registered corpus that recognises --labels
PREDICTION_COLUMNS = ("id", "label")  # id and truth headers of predictions files, unless a corpus names its own


@dataclass(frozen=True)
class LabelSource:
    """A run's labels as configured: the file (or release root), the optional per-annotator file, the class
    subset and order (--classes), and the columns named on the command line (role -> column: id, label, split)."""

    labels: str
    detailed: str = ""
    classes: tuple[str, ...] = ()
    columns: tuple[tuple[str, str], ...] = ()
    strict_detailed: bool = True


@dataclass(frozen=True)
class Corpus:
    """One label format: how to read it, and the conventions every later step scores it by.

    `read(source)` returns the table with the corpus' own splits; `detect(path)` says whether --labels is in this
    corpus' format (--corpus auto); a `generic` corpus (any CSV) is chosen only when no other one recognises it.
    A corpus with `folds` is scored by cross-validation: `fold_split(table, fold, dev_choice)` relabels the
    splits of one fold as train / dev / test. `codes` maps the corpus' own codes (as written in the EmoClass
    column of predictions) to class letters where they differ; `non_class` are codes that mark a labelled
    utterance without a class (MSP-Podcast's O and X); `detailed`: per-annotator labels are available
    (soft labels, agreement filtering). `columns`: the id and truth headers of the predictions files a run on
    this corpus writes (MSP-Podcast keeps its challenge's FileName, EmoClass; other corpora id, label).
    `folds_of(path)`: a release whose fold count is its own (EmoBox: 1 to 6 folds per corpus) finds its folds
    in --labels; `for_labels` binds them, and until then every numbered fold is accepted and checked on reading.
    `fold_note(source, fold)`: how a fold's splits were made where the release leaves a choice (EmoBox: the
    dev set carved from the fold's training part), for the run's record. `audio_of(path)`: where extraction
    finds the audio of the corpus whose labels are at `path`, as (--input, --data-root), for commands that run
    both stages on a corpus (sercache bench).
    """

    name: str
    read: Callable[[LabelSource], LabelTable]
    detect: Callable[[Path], bool]
    labels_help: str
    generic: bool = False
    detailed: bool = False
    non_class: tuple[str, ...] = ()
    codes: Mapping[str, str] = field(default_factory=dict)
    folds: tuple[str, ...] = ()
    fold_split: Callable[[LabelTable, str, str], LabelTable] | None = None
    columns: tuple[str, str] = PREDICTION_COLUMNS
    folds_of: Callable[[Path], tuple[str, ...]] | None = None
    fold_note: Callable[[LabelSource, str], dict[str, Any]] | None = None
    audio_of: Callable[[Path], tuple[str, str]] = lambda path: (str(path), "")

    def for_labels(self, labels: str) -> "Corpus":
        """This corpus with the folds --labels holds (a corpus with `folds_of`); as registered otherwise."""
        if self.folds_of is None or not labels or not Path(labels).exists():
            return self
        return replace(self, folds=self.folds_of(Path(labels)))

    def runs_all_folds(self, fold: str) -> bool:
        """--fold all (or none given) on a fold protocol: one run per fold and their summary."""
        if self.folds_of is not None and not self.folds and fold in ALL_FOLDS:
            raise HeadError(f"--corpus {self.name} --fold {fold or 'all'}: the folds of --labels ({self.labels_help}) "
                            "are not known here (no --labels, or the corpus was not resolved with it: "
                            "Corpus.for_labels); name one with --fold <k>")
        return bool(self.folds) and fold in ALL_FOLDS

    def check_fold(self, fold: str) -> None:
        if self.folds and fold not in (*ALL_FOLDS, WHOLE, *self.folds):
            raise HeadError(f"--fold {fold!r}: use {'..'.join((self.folds[0], self.folds[-1]))}, all or {WHOLE}")
        if self.folds_of is not None and not (fold in (*ALL_FOLDS, WHOLE) or fold.isdigit()):
            raise HeadError(f"--fold {fold!r}: use a fold number of --labels ({self.labels_help}) or all")

    def table(self, source: LabelSource, fold: str = "", dev_choice: str = "") -> LabelTable:
        """The label table of one run: read, then (for one fold of a fold protocol) that fold's splits."""
        if not source.labels:
            raise HeadError("--labels is required")
        if source.columns and not self.generic:
            raise HeadError(f"--{'/--'.join(f'{role}-column' for role, _ in source.columns)}: the column names of "
                            f"--corpus {self.name} are fixed by its release; these options apply to a generic CSV")
        return self.of_fold(self.read(source), fold, dev_choice)

    def of_fold(self, table: LabelTable, fold: str, dev_choice: str = "") -> LabelTable:
        """A table as read, with one fold's train / dev / test splits when `fold` names a fold (or `whole`)."""
        if fold == WHOLE:
            return self.whole(table, dev_choice)
        if (not self.folds and self.folds_of is None) or fold in ALL_FOLDS:
            return table
        assert self.fold_split is not None
        return self.fold_split(table, fold, dev_choice)


    def whole(self, table: LabelTable, dev_choice: str = "") -> LabelTable:
        """Every labelled utterance trains but a dev part, for a model used on other data (another corpus,
        deployment): the first fold's dev part for a fold protocol, the published dev split otherwise."""
        first = self.of_fold(table, self.folds[0], dev_choice) if self.folds else table
        if not (first.split == "dev").any():
            raise HeadError(f"--fold {WHOLE}: --corpus {self.name} gives no dev split to keep apart")
        return replace(first, split=np.where(first.split == "dev", "dev", "train").astype(object))


COLUMN_ROLES = ("id", "label", "split")  # --id-column, --label-column, --split-column


def named_columns(values: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The columns a config names (role -> column), from a HeadConfig's fields or a run's config.json alike."""
    return tuple((role, values[f"{role}_column"]) for role in COLUMN_ROLES if values.get(f"{role}_column"))


REGISTRY: dict[str, Corpus] = {}


def register(corpus: Corpus) -> Corpus:
    if corpus.name in REGISTRY:
        raise ValueError(f"corpus {corpus.name!r} registered twice")
    REGISTRY[corpus.name] = corpus
    return corpus


def get_corpus(name: str) -> Corpus:
    if name not in REGISTRY:
        raise HeadError(f"unknown corpus {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def detect_corpus(labels: str) -> Corpus:
    """The corpus whose format --labels is: the one registered corpus that recognises it, else the generic one
    when it does; the error lists what each corpus reads."""
    if not labels:
        raise HeadError("--labels is required")
    path = Path(labels)
    if not path.exists():
        raise HeadError(f"--labels {labels}: no such file or directory")
    found = [c for c in REGISTRY.values() if c.detect(path)]
    specific = [c for c in found if not c.generic]
    if len(specific) == 1 or (not specific and len(found) == 1):
        return (specific or found)[0].for_labels(labels)
    if not found:
        formats = "; ".join(f"{c.name}: {c.labels_help}" for c in sorted(REGISTRY.values(), key=lambda c: c.generic))
        raise HeadError(f"--labels {labels}: not a label format sercache recognises ({formats}); name it with --corpus")
    raise HeadError(f"--labels {labels}: could be {' or '.join(c.name for c in specific)}; name it with --corpus")

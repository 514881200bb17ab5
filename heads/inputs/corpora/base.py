"""What stage 2 needs to know of a corpus, and the registry the corpus modules add themselves to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ...errors import HeadError
from ..labels import LabelTable

ALL_FOLDS = ("", "all")  # --fold values that mean "every fold of the protocol, one run each"
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

    def runs_all_folds(self, fold: str) -> bool:
        """--fold all (or none given) on a fold protocol: one run per fold and their summary."""
        return bool(self.folds) and fold in ALL_FOLDS

    def check_fold(self, fold: str) -> None:
        if self.folds and fold not in (*ALL_FOLDS, *self.folds):
            raise HeadError(f"--fold {fold!r}: use {'..'.join((self.folds[0], self.folds[-1]))} or all")

    def table(self, source: LabelSource, fold: str = "", dev_choice: str = "") -> LabelTable:
        """The label table of one run: read, then (for one fold of a fold protocol) that fold's splits."""
        if not source.labels:
            raise HeadError("--labels is required")
        if source.columns and not self.generic:
            raise HeadError(f"--{'/--'.join(f'{role}-column' for role, _ in source.columns)}: the column names of "
                            f"--corpus {self.name} are fixed by its release; these options apply to a generic CSV")
        return self.of_fold(self.read(source), fold, dev_choice)

    def of_fold(self, table: LabelTable, fold: str, dev_choice: str = "") -> LabelTable:
        """A table as read, with one fold's train / dev / test splits when `fold` names a fold."""
        if not self.folds or fold in ALL_FOLDS:
            return table
        assert self.fold_split is not None
        return self.fold_split(table, fold, dev_choice)


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
        return (specific or found)[0]
    if not found:
        formats = "; ".join(f"{c.name}: {c.labels_help}" for c in sorted(REGISTRY.values(), key=lambda c: c.generic))
        raise HeadError(f"--labels {labels}: not a label format sercache recognises ({formats}); name it with --corpus")
    raise HeadError(f"--labels {labels}: could be {' or '.join(c.name for c in specific)}; name it with --corpus")

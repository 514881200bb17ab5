"""What stage 2 needs to know of a corpus, and the registry the corpus modules add themselves to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from ...errors import HeadError
from ..labels import LabelTable

ALL_FOLDS = ("", "all")  # --fold values that mean "every fold of the protocol, one run each"


@dataclass(frozen=True)
class Corpus:
    """One label format: how to read it, and the conventions every later step scores it by.

    `read(labels, detailed, classes, strict_detailed)` returns the table with the corpus' own splits.
    A corpus with `folds` is scored by cross-validation: `fold_split(table, fold, dev_choice)` relabels the
    splits of one fold as train / dev / test. `codes` maps the corpus' own codes (as written in the EmoClass
    column of predictions) to class letters where they differ; `non_class` are codes that mark a labelled
    utterance without a class (MSP-Podcast's O and X); `detailed`: per-annotator labels are available
    (soft labels, agreement filtering).
    """

    name: str
    read: Callable[[str, str, Sequence[str], bool], LabelTable]
    labels_help: str
    detailed: bool = False
    non_class: tuple[str, ...] = ()
    codes: Mapping[str, str] = field(default_factory=dict)
    folds: tuple[str, ...] = ()
    fold_split: Callable[[LabelTable, str, str], LabelTable] | None = None

    def runs_all_folds(self, fold: str) -> bool:
        """--fold all (or none given) on a fold protocol: one run per fold and their summary."""
        return bool(self.folds) and fold in ALL_FOLDS

    def check_fold(self, fold: str) -> None:
        if self.folds and fold not in (*ALL_FOLDS, *self.folds):
            raise HeadError(f"--fold {fold!r}: use {'..'.join((self.folds[0], self.folds[-1]))} or all")

    def table(self, labels: str, detailed: str = "", classes: Sequence[str] = (), fold: str = "",
              dev_choice: str = "", strict_detailed: bool = True) -> LabelTable:
        """The label table of one run: read, then (for one fold of a fold protocol) that fold's splits."""
        if not labels:
            raise HeadError("--labels is required")
        return self.of_fold(self.read(labels, detailed, classes, strict_detailed), fold, dev_choice)

    def of_fold(self, table: LabelTable, fold: str, dev_choice: str = "") -> LabelTable:
        """A table as read, with one fold's train / dev / test splits when `fold` names a fold."""
        if not self.folds or fold in ALL_FOLDS:
            return table
        assert self.fold_split is not None
        return self.fold_split(table, fold, dev_choice)


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

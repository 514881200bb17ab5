"""The corpus registry: every module of this package registers one corpus by name (base.register).

Adding a corpus is one module here (its reader, class codes, splits or folds, scoring conventions) and
its test; the modules are imported in name order when the package loads, so nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Sequence

from ..labels import LabelTable
from .base import AUTO, PREDICTION_COLUMNS, REGISTRY, Corpus, LabelSource, detect_corpus, get_corpus, named_columns

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "base":
        importlib.import_module(f"{__name__}.{_module}")

CORPORA = tuple(sorted(REGISTRY, key=lambda name: (name != "msp", name)))  # the default first, for --help


def resolve_corpus(name: str, labels: str) -> Corpus:
    """The corpus `name` stands for: itself, or for --corpus auto the one that recognises --labels."""
    return (detect_corpus(labels) if name == AUTO else get_corpus(name)).for_labels(labels)


def read_labels(corpus: str, labels: str, detailed: str = "", classes: Sequence[str] = (),
                strict_detailed: bool = True, columns: Sequence[tuple[str, str]] = ()) -> LabelTable:
    """The label table of one corpus as published (a fold protocol's splits are those of its release)."""
    source = LabelSource(labels, detailed, tuple(classes), tuple(columns), strict_detailed)
    return resolve_corpus(corpus, labels).table(source)


__all__ = ["AUTO", "CORPORA", "PREDICTION_COLUMNS", "Corpus", "LabelSource", "detect_corpus", "get_corpus",
           "named_columns", "read_labels", "resolve_corpus"]

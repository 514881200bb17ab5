"""The corpus registry: every module of this package registers one corpus by name (base.register).

Adding a corpus is one module here (its reader, class codes, splits or folds, scoring conventions) and
its test; the modules are imported in name order when the package loads, so nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Sequence

from ..labels import LabelTable
from .base import REGISTRY, Corpus, get_corpus

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "base":
        importlib.import_module(f"{__name__}.{_module}")

CORPORA = tuple(sorted(REGISTRY, key=lambda name: (name != "msp", name)))  # the default first, for --help


def read_labels(corpus: str, labels: str, detailed: str = "", classes: Sequence[str] = (),
                strict_detailed: bool = True) -> LabelTable:
    """The label table of one corpus as published (a fold protocol's splits are those of its release)."""
    return get_corpus(corpus).table(labels, detailed, classes, strict_detailed=strict_detailed)


__all__ = ["CORPORA", "Corpus", "get_corpus", "read_labels"]

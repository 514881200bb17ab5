"""Stage 1: run frozen encoders once over a corpus and write frame-level features to a store.

The names below load on first use (PEP 562): the pipeline and the encoders import torch, and importing a light
part of stage 1 (its command declarations) must not.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"ExtractConfig": "config", "load_encoder": "encoders", "parse_layers": "layers", "Utterance": "manifest",
         "load_manifest": "manifest", "ExtractionError": "pipeline", "ExtractionSummary": "pipeline",
         "run_extraction": "pipeline"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)


__all__ = list(_LAZY)

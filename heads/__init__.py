"""Stage 2: train small speech-emotion heads from the feature cache, many times, quickly.

Python API::

    from sercache.heads import HeadConfig, train
    result = train(HeadConfig(store="cache/", features=["wavlm-large/L-1"], labels="labels_consensus.csv",
                              out="runs/focal", loss="focal", gamma=2.0, weights="prior"))

The command line (`sercache train`) is built from the same dataclass. The names below load on first use
(PEP 562), so that importing a light part of stage 2 (its command declarations, the corpus registry) does not
load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import HeadError

_LAZY = {"HeadConfig": "fit.config", "train": "api", "sweep": "api", "MSP_CLASSES": "inputs.corpora.msp",
         "ClassSet": "inputs.labels", "LabelTable": "inputs.labels"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)


__all__ = ["HeadError", *_LAZY]

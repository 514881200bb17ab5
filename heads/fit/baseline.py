"""`--head baseline`: the Odyssey 2024 challenge baseline's shape as a setting of the fusion head.

The challenge baseline pools SSL frames with attentive statistics pooling and classifies with an
MLP; it has no transformer. The fusion head already has both pieces (ModalityEncoder skips its
transformer when layers == 0, AttentiveStatsPool for pooling='attentive'), so the baseline is a
config, not new model code: the same training loop, checkpoint, predict-head and report apply,
and any difference to `--head paper` is the architecture alone.
"""

from __future__ import annotations

from typing import Any

from ..errors import HeadError
from .config import HeadConfig

# What `--head baseline` sets; written into config.json, so a run directory says what it trained.
BASELINE: dict[str, Any] = {"layers": 0, "pooling": "attentive"}


def resolve_head(cfg: HeadConfig) -> HeadConfig:
    """The config with the `head` field's architecture applied (paper and probe: unchanged)."""
    if cfg.head != "baseline" or all(getattr(cfg, k) == v for k, v in BASELINE.items()):
        return cfg
    return cfg.replace(**BASELINE)


def check_baseline_config(cfg: HeadConfig) -> None:
    """--fusion deep runs transformer layers over the joined sequences, which the baseline does not have."""
    if cfg.head == "baseline" and cfg.fusion == "deep":
        raise HeadError("--head baseline has no transformer, but --fusion deep adds one over the joined sequences; "
                        "use --fusion early or late")

"""Which hidden layers to keep, and how to reduce them.

Indices address the encoder's hidden-state list as transformers returns it: index 0 is the
input to the first transformer layer (CNN / conv-stem output plus positions), index -1 the
last layer's output. Specs:

    -1, 12          one layer                      -> frames [T, D]
    -4..-1          an inclusive range, stacked    -> frames [T, 4, D]
    3,6,9           a subset, stacked              -> frames [T, 3, D]
    all             every hidden state, stacked    -> frames [T, n_layers + 1, D]
    mean(-4..-1)    a range (or subset) averaged   -> frames [T, D]   (alias: last4mean)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from sercache.errors import SercacheError

ALIASES = {"last4mean": "mean(-4..-1)", "last": "-1"}


class LayerSpecError(SercacheError):
    pass


@dataclass(frozen=True)
class LayerSpec:
    text: str  # canonical spec string
    indices: tuple[int, ...] | None  # None = all
    reduce: str  # "none" (one layer or stacked) or "mean"

    @property
    def tag(self) -> str:
        """Feature-set suffix, e.g. 'L-1', 'L-4..-1', 'mean(L-4..-1)', 'all'."""
        if self.indices is None:
            return "all" if self.reduce == "none" else "mean(all)"
        body = self.text[5:-1] if self.reduce == "mean" else self.text
        return f"mean(L{body})" if self.reduce == "mean" else f"L{body}"

    @property
    def stacked(self) -> bool:
        return self.reduce == "none" and (self.indices is None or len(self.indices) > 1 or ".." in self.text)

    def resolve(self, n_hidden: int) -> list[int]:
        """Absolute hidden-state indices for a model with n_hidden hidden states."""
        indices = range(n_hidden) if self.indices is None else self.indices
        resolved = []
        for index in indices:
            absolute = index + n_hidden if index < 0 else index
            if not 0 <= absolute < n_hidden:
                raise LayerSpecError(f"layer {index} does not exist: the model has hidden states 0..{n_hidden - 1} "
                                     f"(or -{n_hidden}..-1)")
            resolved.append(absolute)
        return resolved

    def select(self, hidden_states: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> torch.Tensor:
        """Hidden states [B, T, D] each -> [B, T, D] or [B, T, L, D]."""
        chosen = [hidden_states[i] for i in self.resolve(len(hidden_states))]
        if self.reduce == "mean":
            return torch.stack(chosen, dim=0).float().mean(dim=0)
        if not self.stacked:
            return chosen[0]
        return torch.stack(chosen, dim=2)


def parse_layers(text: str) -> LayerSpec:
    raw = ALIASES.get(text.strip(), text.strip().replace(" ", ""))
    mean = re.fullmatch(r"mean\((.+)\)", raw)
    inner = mean.group(1) if mean else raw
    reduce = "mean" if mean else "none"
    if inner == "all":
        return LayerSpec("mean(all)" if mean else "all", None, reduce)
    indices = _parse_indices(inner, text)
    canonical = f"mean({inner})" if mean else inner
    return LayerSpec(canonical, tuple(indices), reduce)


def _parse_indices(inner: str, original: str) -> list[int]:
    span = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", inner)
    if span:
        first, last = int(span.group(1)), int(span.group(2))
        if (first < 0) != (last < 0) or last < first:
            raise LayerSpecError(f"layer range {original!r}: write it low..high with both ends of the same sign, "
                                 "e.g. -4..-1 or 20..24")
        return list(range(first, last + 1))
    try:
        return [int(part) for part in inner.split(",")]
    except ValueError:
        raise LayerSpecError(
            f"cannot parse layer spec {original!r}: use -1, 12, -4..-1, 3,6,9, all, mean(-4..-1) or last4mean"
        ) from None

"""Per-speaker feature standardisation (`--speaker-norm`): each utterance's frames standardised per channel with the
mean and std of its own speaker's utterances.

SER papers on IEMOCAP do this so that a head sees how an utterance deviates from its speaker's own voice rather than
how that voice deviates from the training speakers', which helps heads generalise to unseen speakers. The statistics
need no emotion label: a speaker's come from all valid frames (padding excluded; with --max-seconds, the frames
kept) of that speaker's utterances in one split of the data being processed, so at test time a test speaker's
statistics come from their own test utterances. They are keyed by (split, speaker): a speaker present in two splits
is standardised within each, so no split's inputs depend on another split's utterances. Per channel, and per layer
for layered features; std floored at STD_FLOOR for constant channels.

This module holds the speaker groups and the transform; the statistics are summed where frames are gathered
(features.Modality.standardise_speakers), and applied there too, so the resident and streamed paths, training,
scoring, the probe and store-mode prediction all see the same inputs, before the train-split input standardisation
(--input-norm) that the head applies itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import HeadError
from .labels import LabelTable

STD_FLOOR = 1e-5  # std floor of every standardisation: a constant channel is centred, not blown up
UNKNOWN_SPEAKER = "unknown"  # MSP-Podcast's SpkrID of an unidentified speaker (any case); blank is unknown too


def speaker_names(table: LabelTable, rows: np.ndarray) -> np.ndarray:
    """Each row's speaker, '' where unknown (blank, or MSP-Podcast's "Unknown" for an unidentified speaker)."""
    names = [str(s).strip() for s in table.speaker[rows]]
    return np.array(["" if s.lower() == UNKNOWN_SPEAKER else s for s in names], dtype=object)


def split_speaker_groups(table: LabelTable, rows: np.ndarray, source: str, remedy: str
                         ) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """The (split, speaker) group of every table row in `rows` (-1 elsewhere) and the groups' keys in order of
    first appearance. Every row must name its speaker: statistics pooled over unknown speakers would standardise
    strangers together, so they are refused, with how many, where (`source`) and what to do (`remedy`)."""
    rows = np.asarray(rows, dtype=np.int64)
    names = speaker_names(table, rows)
    unknown = rows[names == ""]
    if len(unknown):
        splits, counts = np.unique(table.split[unknown].astype(str), return_counts=True)
        per_split = ", ".join(f"{s} {n}" for s, n in zip(splits, counts))
        example = ", ".join(table.ids[i] for i in unknown[:3])
        raise HeadError(f"--speaker-norm standardises every utterance with its own speaker's statistics, but "
                        f"{len(unknown)} of the {len(rows)} utterance(s) to process have no known speaker in {source} "
                        f"({per_split}), e.g. {example}; {remedy}")
    keys = list(zip(table.split[rows].astype(str).tolist(), names.tolist()))
    index = {key: k for k, key in enumerate(dict.fromkeys(keys))}
    groups = np.full(len(table), -1, dtype=np.int64)
    groups[rows] = [index[key] for key in keys]
    return groups, list(index)


def moment_stats(total: torch.Tensor, squares: torch.Tensor, count: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) std from float64 sums, sums of squares and counts along the first axis; an empty
    group gets mean 0 and std 0."""
    n = count.to(total.dtype).clamp_min(1).view(-1, *([1] * (total.dim() - 1)))
    mean = total / n
    return mean, (squares / n - mean * mean).clamp_min(0.0).sqrt()


@dataclass
class SpeakerNorm:
    """One modality's per-(split, speaker) statistics and the group of every table row (-1: none)."""

    keys: list[tuple[str, str]]  # (split, speaker) of each group
    mean: torch.Tensor  # float32 [groups, *frame_shape], on the compute device
    inv_std: torch.Tensor  # 1 / max(std, STD_FLOOR), same shape
    groups: np.ndarray  # int64 [table rows]
    groups_t: torch.Tensor  # the same on the compute device (no host copy per batch when rows are there too)

    @classmethod
    def from_moments(cls, keys: list[tuple[str, str]], groups: np.ndarray, total: torch.Tensor,
                     squares: torch.Tensor, count: torch.Tensor) -> "SpeakerNorm":
        """The transform from float64 group sums (Modality.group_moments), kept in float32 for the gather."""
        mean, std = moment_stats(total, squares, count)
        inv_std = 1.0 / std.clamp_min(STD_FLOOR)
        return cls(keys, mean.float(), inv_std.float(), groups, torch.as_tensor(groups).to(total.device))

    def apply(self, x: torch.Tensor, rows: np.ndarray, rows_t: torch.Tensor | None) -> torch.Tensor:
        """x [B, T, *frame_shape] of table `rows`, standardised with each row's group statistics (float32)."""
        g = self.groups[rows]
        if (g < 0).any():  # every processed row was grouped: a row outside them is a bug, not an input error
            raise RuntimeError(f"--speaker-norm: table row(s) {rows[g < 0][:5].tolist()} have no speaker statistics")
        device = self.groups_t.device
        g_t = self.groups_t[rows_t] if rows_t is not None and rows_t.device == device else \
            torch.as_tensor(g).to(device, non_blocking=True)
        return (x.float() - self.mean[g_t].unsqueeze(1)) * self.inv_std[g_t].unsqueeze(1)

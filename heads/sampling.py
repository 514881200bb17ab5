"""Which training rows an epoch visits, and how they are cut into length-homogeneous batches.

Samplers work on group ids (a class, or O / X as their own groups when they are included), so
undersampling and the balanced sampler treat every group alike. Batching shuffles, then sorts
rows by length inside windows of `bucket_batches` batches and shuffles the batch order: batches
stay random across epochs while padding stays small (reported by `padding_waste`).
"""

from __future__ import annotations

import numpy as np

from .errors import HeadError

SAMPLERS = ("shuffle", "undersample", "balanced")


def epoch_order(groups: np.ndarray, sampler: str, rng: np.random.Generator) -> np.ndarray:
    """Positions (into `groups`) visited in one epoch.

    shuffle: every row once. undersample (USC): m = min_j N_j rows of every group, without
    replacement, redrawn each epoch. balanced (CONILIUM): len(groups) draws with replacement,
    row i with probability proportional to 1 / f_group(i).
    """
    n = len(groups)
    if sampler == "shuffle":
        return rng.permutation(n)
    values, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if sampler == "undersample":
        m = counts.min()
        picks = [rng.choice(np.flatnonzero(inverse == g), size=m, replace=False) for g in range(len(values))]
        return rng.permutation(np.concatenate(picks))
    if sampler == "balanced":
        p = 1.0 / counts[inverse]
        return rng.choice(n, size=n, replace=True, p=p / p.sum())
    raise HeadError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")


def length_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, bucket_batches: int,
                   rng: np.random.Generator | None) -> list[np.ndarray]:
    """Cut `order` into batches; inside each window of bucket_batches * batch_size rows, rows are
    sorted by length (longest first) so that a batch holds similar lengths."""
    window = batch_size * max(bucket_batches, 1)
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start:start + window]
        if bucket_batches > 1:
            chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def padding_waste(batches: list[np.ndarray], lengths: np.ndarray) -> float:
    """Share of the frames the model processes that are padding: sum(B*T_max - sum L) / sum(B*T_max)."""
    seen = sum(len(b) * int(lengths[b].max()) for b in batches if len(b))
    real = sum(int(lengths[b].sum()) for b in batches)
    return 1.0 - real / seen if seen else 0.0


def batches_per_epoch(groups: np.ndarray, sampler: str, batch_size: int, bucket_batches: int) -> int:
    """How many batches `length_batches(epoch_order(...))` yields: the schedule needs it before epoch 1."""
    if sampler == "undersample":
        rows = int(np.unique(groups, return_counts=True)[1].min()) * len(np.unique(groups))
    else:
        rows = len(groups)
    window = batch_size * max(bucket_batches, 1)
    full, rest = divmod(rows, window)
    return full * -(-window // batch_size) + -(-rest // batch_size)

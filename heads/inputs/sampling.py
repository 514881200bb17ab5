"""Which training rows an epoch visits, and how they are cut into length-homogeneous batches.

Samplers work on group ids (a class, or O / X as their own groups when they are included), so
undersampling and the balanced sampler treat every group alike. Batching shuffles, then sorts
rows by length inside windows of `bucket_batches` batches and shuffles the batch order: batches
stay random across epochs while padding stays small (reported by `padding_waste`).
"""

from __future__ import annotations

import numpy as np

from ..errors import HeadError

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


def padding_waste(batches: list[np.ndarray], *lengths: np.ndarray) -> float:
    """Share of the frames the model processes that are padding: sum(B*T_max - sum L) / sum(B*T_max), over
    every length array given together (one per modality: the transformers see each padded sequence)."""
    seen = sum(len(b) * int(length[b].max()) for length in lengths for b in batches if len(b))
    real = sum(int(length[b].sum()) for length in lengths for b in batches)
    return 1.0 - real / seen if seen else 0.0


def batches_per_epoch(groups: np.ndarray, sampler: str, batch_size: int, window: int) -> int:
    """How many batches an epoch yields when `window` rows at a time are cut into batches (length_batches:
    batch_size * bucket_batches; block_batches: the buffer): the schedule needs it before epoch 1."""
    if sampler == "undersample":
        rows = int(np.unique(groups, return_counts=True)[1].min()) * len(np.unique(groups))
    else:
        rows = len(groups)
    window = max(window, batch_size)
    full, rest = divmod(rows, window)
    return full * -(-window // batch_size) + -(-rest // batch_size)


def store_blocks(rows: np.ndarray, positions: list[tuple[int, int]], block_rows: int) -> np.ndarray:
    """Block id of every row: rows sorted by their (part, offset) in the store, cut into runs of `block_rows`.
    A block's utterances lie next to each other on disk, so reading a block is one sequential read."""
    order = sorted(range(len(rows)), key=lambda i: positions[i])
    blocks = np.empty(len(rows), dtype=np.int64)
    blocks[order] = np.arange(len(rows)) // max(block_rows, 1)
    return blocks


def block_batches(order: np.ndarray, blocks: np.ndarray, lengths: np.ndarray, batch_size: int, window_rows: int,
                  rng: np.random.Generator) -> tuple[list[np.ndarray], list[int]]:
    """One epoch in store order with a shuffle buffer (WebDataset / lhotse style), for streaming.

    `order`: the epoch's rows (the sampler's draw), `blocks[i]`: store block of order[i]. Blocks are visited
    in random order (rows shuffled within a block), cut into windows of `window_rows` rows (the buffer);
    inside a window rows are sorted by length and cut into batches, which are shuffled within the window only,
    so each window's features are read once and can be dropped when its batches are done. Returns the batches
    and, per batch, the index of its window."""
    by_block = np.argsort(blocks, kind="stable")
    ids, starts = np.unique(blocks[by_block], return_index=True)
    members = np.split(by_block, starts[1:])
    picked = [order[members[b][rng.permutation(len(members[b]))]] for b in rng.permutation(len(ids))]
    rows = np.concatenate(picked) if picked else order[:0]
    batches: list[np.ndarray] = []
    windows: list[int] = []
    window_rows = max(window_rows, batch_size)
    for w, start in enumerate(range(0, len(rows), window_rows)):
        chunk = rows[start:start + window_rows]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        cut = [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        batches.extend(cut[i] for i in rng.permutation(len(cut)))
        windows.extend([w] * len(cut))
    return batches, windows

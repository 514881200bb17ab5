"""Synthetic caches with MSP-Podcast's shapes and label files, for tests and benchmarks.

Until real caches exist, this writes (1) a store with an audio and a text feature set whose
frames carry a class-, attribute- and gender-dependent mean direction plus noise, so that a
head can actually learn, and (2) labels_consensus.csv / labels_detailed.csv in the published
formats (v1.11 EmoDetail layout, or the older one), with O/X samples and per-annotator votes.
Default proportions follow MSP-Podcast train (table 4 of Chen et al., Sheffield's 1st place solution to
Odyssey 2024 Task 1); the test split is balanced.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from sercache.cache import FeatureSetWriter, PackedFeatures, StorageConfig, Store, UtteranceRecord
from sercache.heads.inputs.corpora.msp import MSP_CLASS_NAMES, MSP_CLASSES, MSP_TRAIN_COUNTS, read_msp_consensus
from sercache.heads.inputs.features import FeaturePool

SECONDARY_EXTRA = ("Amused", "Frustrated", "Depressed", "Concerned", "Disappointed", "Excited", "Confused", "Annoyed")
# rough class means of (arousal, valence, dominance) on the 1-7 scale
AVD_MEANS = {"A": (5.5, 2.5, 5.0), "S": (3.0, 2.5, 3.0), "H": (5.0, 5.8, 4.8), "U": (5.2, 4.5, 4.3),
             "F": (4.8, 2.8, 3.2), "D": (4.3, 2.6, 4.4), "C": (4.0, 3.0, 4.8), "N": (3.9, 4.1, 4.1),
             "O": (4.2, 3.8, 4.2), "X": (4.2, 3.8, 4.2)}


@dataclass
class SyntheticCorpus:
    root: Path
    store: Path
    consensus: Path
    detailed: Path
    audio: str
    text: str | None
    ids: dict[str, list[str]] = field(default_factory=dict)


def _split_letters(n: int, probs: np.ndarray, rng: np.random.Generator, min_per_class: int) -> list[str]:
    fixed = [c for c in MSP_CLASSES for _ in range(min_per_class)][:n]
    rest = rng.choice(len(MSP_CLASSES), size=n - len(fixed), p=probs)
    letters = fixed + [MSP_CLASSES[i] for i in rest]
    return [letters[i] for i in rng.permutation(len(letters))]


def make_synthetic_corpus(root: str | Path, n_train: int = 400, n_dev: int = 120, n_test: int = 80,
                          audio_dim: int = 32, text_dim: int = 16, audio_layers: int = 1, mean_seconds: float = 5.8,
                          std_seconds: float = 2.4, max_seconds: float = 12.0, frame_rate: float = 50.0,
                          text_tokens: float = 20.0, signal: float = 0.6, text_signal: float = 0.4,
                          ox_fraction: float = 0.1, seed: int = 0, backend: str = "zarr", part_frames: int = 0,
                          with_text: bool = True, detailed_layout: str = "new", dtype: str = "float16",
                          progress: bool = False, class_counts: dict[str, int] | None = None,
                          write_features: bool = True) -> SyntheticCorpus:
    """Write store + label files under `root`. Sizes are parameters so tests stay tiny and the
    benchmark can approach MSP-Podcast train (53,386 utterances, mean 5.8 s, 50 frames/s)."""
    from tqdm.auto import tqdm

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    counts = np.array([(class_counts or MSP_TRAIN_COUNTS)[c] for c in MSP_CLASSES], dtype=float)
    prior = counts / counts.sum()
    uniform = np.full(len(MSP_CLASSES), 1.0 / len(MSP_CLASSES))
    rows = []  # (id, letter, split, gender, speaker)
    spec = [("Train", n_train, prior), ("Development", n_dev, prior), ("Test1", n_test, uniform)]
    number = 0
    ids: dict[str, list[str]] = {}
    for split, n, p in spec:
        letters = _split_letters(n, p, rng, min_per_class=2 if n >= 16 else 0)
        n_ox = int(round(ox_fraction * n))
        for i in range(n + n_ox):
            number += 1
            letter = letters[i] if i < n else ("O" if i % 2 else "X")
            uid = f"MSP-PODCAST_{number // 50 + 1:04d}_{number % 50 + 1:04d}.wav"
            speaker = str(rng.integers(1, 40) + {"Train": 0, "Development": 100, "Test1": 200}[split])
            rows.append((uid, letter, split, int(rng.integers(0, 2)), speaker))
            ids.setdefault({"Train": "train", "Development": "dev", "Test1": "test1"}[split], []).append(uid)

    # consensus labels with attributes
    consensus = root / "labels_consensus.csv"
    attrs = {}
    with open(consensus, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"])
        for uid, letter, split, gender, speaker in rows:
            a = np.clip(np.array(AVD_MEANS[letter]) + rng.normal(0, 0.6, 3), 1, 7).round(1)
            attrs[uid] = a
            writer.writerow([uid, letter, *[f"{v:.1f}" for v in a], speaker, ("Female", "Male")[gender], split])
    detailed = root / "labels_detailed.csv"
    _write_detailed(detailed, rows, attrs, rng, detailed_layout)

    # features: class / attribute / gender directions plus unit noise, per frame
    C = len(MSP_CLASSES)
    store_path = root / "store"
    store = Store.create(store_path, backend=backend)
    audio_name, text_name = "synthetic-audio/L-1" if audio_layers == 1 else "synthetic-audio/all", None
    frame_shape = [audio_dim] if audio_layers == 1 else [audio_layers, audio_dim]
    directions = rng.normal(size=(C + 5, audio_dim)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    letter_index = {c: i for i, c in enumerate(MSP_CLASSES)}
    mean_frames, std_frames = mean_seconds * frame_rate, std_seconds * frame_rate
    lengths = np.clip(rng.normal(mean_frames, std_frames, len(rows)), max(1, 0.2 * mean_frames),
                      max_seconds * frame_rate).astype(np.int64)

    def audio_mean(uid: str, letter: str, gender: int) -> np.ndarray:
        v = np.zeros(audio_dim, np.float32)
        if letter in letter_index:
            v += signal * directions[letter_index[letter]]
        a = (attrs[uid] - 4.0) / 3.0
        v += signal * (a[0] * directions[C] + a[1] * directions[C + 1] + a[2] * directions[C + 2])
        v += 0.5 * signal * (1 if gender else -1) * directions[C + 3]
        return v

    sets = [(audio_name, "audio", frame_shape, lengths)]
    if with_text:
        text_name = "synthetic-text/mean-4..-1"
        text_lengths = np.maximum(3, rng.poisson(text_tokens, len(rows))).astype(np.int64)
        sets.append((text_name, "text", [text_dim], text_lengths))
        text_dirs = rng.normal(size=(C, text_dim)).astype(np.float32)
        text_dirs /= np.linalg.norm(text_dirs, axis=1, keepdims=True)
    storage = StorageConfig(backend=backend, dtype=dtype)
    for name, kind, shape, lens in (sets if write_features else []):
        writer = FeatureSetWriter(store, name, storage)
        writer.ensure_metadata({
            "model": f"synthetic-{kind}", "kind": kind, "frame_rate": frame_rate if kind == "audio" else None,
            "sample_rate": 16000, "frame_shape": list(shape),
            "layers": "-1" if len(shape) == 1 else "all",
            "layer_indices": [-1] if len(shape) == 1 else list(range(shape[0])),
            "reduction": "none" if kind == "audio" else "mean", "whisper_mode": None, "weights_sha256": None})
        row_values = int(np.prod(shape))
        budget = part_frames or max(1, (64 << 20) // (4 * row_values))  # about 64 MiB of float32 per part
        part, records, frames_in_part = 0, [], 0
        bar = tqdm(total=len(rows), desc=f"synthetic {name}", disable=not progress, unit="utt")
        for i, (uid, letter, _split, gender, _speaker) in enumerate(rows):
            T = int(lens[i])
            x = rng.standard_normal((T, *shape), dtype=np.float32)
            if kind == "audio":
                mean = audio_mean(uid, letter, gender)
                if len(shape) == 2:
                    x[:, shape[0] // 2] += mean  # the signal lives in one layer: the mix has to find it
                else:
                    x += mean
            elif letter in letter_index:
                x += text_signal * text_dirs[letter_index[letter]]
            records.append(UtteranceRecord(uid, x, fingerprint="synthetic", source="synthetic", source_stat=""))
            frames_in_part += T
            if frames_in_part >= budget:
                writer.commit_part(part, records, frame_shape=list(shape))
                part, records, frames_in_part = part + 1, [], 0
            bar.update(1)
        if records:
            writer.commit_part(part, records, frame_shape=list(shape))
        bar.close()
    return SyntheticCorpus(root, store_path, consensus, detailed, audio_name, text_name, ids)


def _write_detailed(path: Path, rows: Sequence[tuple], attrs: dict, rng: np.random.Generator, layout: str) -> None:
    names = dict(zip(MSP_CLASSES, MSP_CLASS_NAMES))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        if layout == "new":
            writer.writerow(["FileName", "EmoDetail"])
        else:
            writer.writerow(["FileName", "Workers", "EmoClass_Major", "EmoClass_Second", "EmoAct", "EmoVal", "EmoDom"])
        worker = 0
        for uid, letter, _split, _gender, _speaker in rows:
            n = int(rng.integers(3, 8))
            if letter in names:
                majority = n // 2 + 1
                primaries = [names[letter]] * majority + [
                    str(rng.choice([*MSP_CLASS_NAMES, "Other-bored"])) for _ in range(n - majority)]
            elif letter == "O":
                primaries = (["Other-sarcastic"] * (n // 2 + 1)
                             + [str(rng.choice(MSP_CLASS_NAMES)) for _ in range(n - n // 2 - 1)])
            else:
                primaries = [str(rng.choice(MSP_CLASS_NAMES)) for _ in range(n)]
            for primary in primaries:
                worker += 1
                k = int(rng.integers(0, 3))
                secondary = [str(s) for s in rng.choice([*MSP_CLASS_NAMES, *SECONDARY_EXTRA, "Other"], size=k,
                                                        replace=False)]
                a, v, d = np.clip(attrs[uid] + rng.normal(0, 1, 3), 1, 7).round()
                if layout == "new":
                    writer.writerow([uid, f"WORKER{worker:05d}; {primary}; {','.join(secondary)}; A:{a:.1f}; "
                                          f"V:{v:.1f}; D:{d:.1f};"])
                else:
                    writer.writerow([uid, f"WORKER{worker:05d}", primary, ",".join(secondary), a, v, d])


class InMemoryFeatureSet:
    """Stands in for a store's FeatureSet in benchmarks: frames are generated straight into the
    target device's memory (class direction + noise), so a full-size MSP-Podcast-shaped run needs
    no 50-GB store on disk. Implements what FeaturePool uses: ids, lengths(), dtype, frame_shape,
    meta and load()."""

    def __init__(self, name: str, kind: str, ids: list[str], letters: Sequence[str], dim: int, mean_len: float,
                 std_len: float, max_len: int, seed: int, signal: float = 0.5, dtype: str = "float16"):
        rng = np.random.default_rng(seed)
        if kind == "audio":
            lengths = np.clip(rng.normal(mean_len, std_len, len(ids)), max(1, 0.2 * mean_len), max_len)
        else:
            lengths = np.maximum(3, rng.poisson(mean_len, len(ids)))
        self.name, self.ids, self.dtype, self.frame_shape = name, list(ids), dtype, (dim,)
        self._lengths = lengths.astype(np.int64)
        self._index = {u: i for i, u in enumerate(self.ids)}
        self._class = np.array([MSP_CLASSES.index(c) if c in MSP_CLASSES else -1 for c in letters])
        self._seed, self._signal = seed, signal
        self.meta = {"name": name, "model": f"synthetic-{kind}", "kind": kind, "dtype": dtype, "frame_shape": [dim],
                     "frame_rate": 50.0 if kind == "audio" else None, "sample_rate": 16000,
                     "layers": "-1", "layer_indices": [-1], "reduction": "none", "whisper_mode": None,
                     "weights_sha256": None, "schema_version": 1}

    def lengths(self, ids: Sequence[str] | None = None) -> np.ndarray:
        return self._lengths if ids is None else self._lengths[[self._index[u] for u in ids]]

    def load(self, ids: Sequence[str] | None = None, device: str = "cpu", dtype=None, pin_memory: bool = False,
             verify: bool = False):
        import torch

        ids = list(self.ids if ids is None else ids)
        rows = np.array([self._index[u] for u in ids])
        lengths = torch.as_tensor(self._lengths[rows])
        offsets = torch.zeros(len(ids) + 1, dtype=torch.long)
        torch.cumsum(lengths, 0, out=offsets[1:])
        gen = torch.Generator(device=device).manual_seed(self._seed)
        dim = self.frame_shape[0]
        directions = torch.randn(len(MSP_CLASSES) + 1, dim, generator=gen, device=device)
        directions = self._signal * directions / directions.norm(dim=1, keepdim=True)
        directions[-1] = 0  # no class (O, X): noise only
        frames = torch.empty(int(offsets[-1]), dim, dtype=getattr(torch, self.dtype), device=device)
        per_frame = torch.as_tensor(self._class[rows], device=device).repeat_interleave(lengths.to(device))
        step = 1 << 20  # rows per chunk: bounded float32 scratch memory
        for start in range(0, frames.shape[0], step):
            stop = min(start + step, frames.shape[0])
            noise = torch.randn(stop - start, dim, generator=gen, device=device)
            frames[start:stop] = noise + directions[per_frame[start:stop]]
        if pin_memory:
            frames = frames.pin_memory()
        return PackedFeatures(frames, offsets, ids)


def in_memory_pool(corpus: SyntheticCorpus, device, audio_dim: int, text_dim: int, with_text: bool = True,
                   placement: str = "auto", signal: float = 0.5, mean_frames: float = 290.0):
    """A FeaturePool over InMemoryFeatureSets for the corpus' label file (see make_synthetic_corpus's
    write_features=False)."""
    table = read_msp_consensus(corpus.consensus)
    letters = [str(x) for x in table.letter]
    # MSP-Podcast train: mean 5.8 s (290 frames at 50 fps), sd 2.4 s, at most 12 s
    sets = {corpus.audio: InMemoryFeatureSet(corpus.audio, "audio", table.ids, letters, audio_dim, mean_frames,
                                             mean_frames * 0.41, int(mean_frames * 2.07), 1, signal)}
    if with_text:
        sets[corpus.text] = InMemoryFeatureSet(corpus.text, "text", table.ids, letters, text_dim, 20.0, 0.0, 0, 2,
                                               signal)
    return FeaturePool(sets, device, placement)

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
from typing import Callable, Sequence

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


# split name in the label file -> SyntheticCorpus.ids key, and the offset that keeps its speakers apart
SPLIT_KEYS = {"Train": "train", "Development": "dev", "Test1": "test1"}
SPEAKER_OFFSETS = {"Train": 0, "Development": 100, "Test1": 200}
CLASS_INDEX = {c: i for i, c in enumerate(MSP_CLASSES)}
LabelRow = tuple[str, str, str, int, str]  # (id, letter, split, gender, speaker)
FeatureSetSpec = tuple[str, str, list[int], np.ndarray]  # (name, kind, frame shape, frames per utterance)


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
    # Every step draws from the one generator, in this order: label rows, consensus attributes, detailed
    # votes, audio directions, audio lengths, text lengths and directions, then the frames of each set.
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, ids = _label_rows(_split_spec(n_train, n_dev, n_test, class_counts), ox_fraction, rng)
    consensus, detailed = root / "labels_consensus.csv", root / "labels_detailed.csv"
    attrs = _write_consensus(consensus, rows, rng)
    _write_detailed(detailed, rows, attrs, rng, detailed_layout)

    # features: class / attribute / gender directions plus unit noise, per frame
    store_path = root / "store"
    store = Store.create(store_path, backend=backend)
    audio_name, text_name = "synthetic-audio/L-1" if audio_layers == 1 else "synthetic-audio/all", None
    frame_shape = [audio_dim] if audio_layers == 1 else [audio_layers, audio_dim]
    means = FrameMeans(_unit_directions(rng, len(MSP_CLASSES) + 5, audio_dim), attrs, signal, text_signal)
    lengths = _audio_lengths(rng, len(rows), mean_seconds * frame_rate, std_seconds * frame_rate,
                             max_seconds * frame_rate)
    sets: list[FeatureSetSpec] = [(audio_name, "audio", frame_shape, lengths)]
    if with_text:
        text_name = "synthetic-text/mean-4..-1"
        text_lengths = np.maximum(3, rng.poisson(text_tokens, len(rows))).astype(np.int64)
        sets.append((text_name, "text", [text_dim], text_lengths))
        means.text_directions = _unit_directions(rng, len(MSP_CLASSES), text_dim)
    storage = StorageConfig(backend=backend, dtype=dtype)
    for spec in (sets if write_features else []):
        _write_feature_set(FeatureSetWriter(store, spec[0], storage), spec, rows, means, rng, frame_rate,
                           part_frames, progress)
    return SyntheticCorpus(root, store_path, consensus, detailed, audio_name, text_name, ids)


def _split_spec(n_train: int, n_dev: int, n_test: int,
                class_counts: dict[str, int] | None) -> list[tuple[str, int, np.ndarray]]:
    """(split, size, class probabilities): train and dev follow the class prior, the test split is balanced."""
    counts = np.array([(class_counts or MSP_TRAIN_COUNTS)[c] for c in MSP_CLASSES], dtype=float)
    prior = counts / counts.sum()
    uniform = np.full(len(MSP_CLASSES), 1.0 / len(MSP_CLASSES))
    return [("Train", n_train, prior), ("Development", n_dev, prior), ("Test1", n_test, uniform)]


def _label_rows(spec: Sequence[tuple[str, int, np.ndarray]], ox_fraction: float,
                rng: np.random.Generator) -> tuple[list[LabelRow], dict[str, list[str]]]:
    """The utterances of every split in file order, each split followed by its O/X samples; and the ids per
    split."""
    rows: list[LabelRow] = []
    ids: dict[str, list[str]] = {}
    number = 0
    for split, n, p in spec:
        letters = _split_letters(n, p, rng, min_per_class=2 if n >= 16 else 0)
        n_ox = int(round(ox_fraction * n))
        for i in range(n + n_ox):
            number += 1
            letter = letters[i] if i < n else ("O" if i % 2 else "X")
            uid = f"MSP-PODCAST_{number // 50 + 1:04d}_{number % 50 + 1:04d}.wav"
            speaker = str(rng.integers(1, 40) + SPEAKER_OFFSETS[split])
            rows.append((uid, letter, split, int(rng.integers(0, 2)), speaker))
            ids.setdefault(SPLIT_KEYS[split], []).append(uid)
    return rows, ids


def _write_consensus(path: Path, rows: Sequence[LabelRow], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """labels_consensus.csv with noisy class-mean attributes; returns each utterance's (A, V, D)."""
    attrs = {}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"])
        for uid, letter, split, gender, speaker in rows:
            a = np.clip(np.array(AVD_MEANS[letter]) + rng.normal(0, 0.6, 3), 1, 7).round(1)
            attrs[uid] = a
            writer.writerow([uid, letter, *[f"{v:.1f}" for v in a], speaker, ("Female", "Male")[gender], split])
    return attrs


def _unit_directions(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """`n` random float32 unit vectors of length `dim`: the directions that carry the signal."""
    directions = rng.normal(size=(n, dim)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return directions


def _audio_lengths(rng: np.random.Generator, n: int, mean_frames: float, std_frames: float,
                   max_frames: float) -> np.ndarray:
    """Frames per utterance: normal around the mean, at least a fifth of it, at most `max_frames`."""
    return np.clip(rng.normal(mean_frames, std_frames, n), max(1, 0.2 * mean_frames), max_frames).astype(np.int64)


@dataclass
class FrameMeans:
    """The mean frame of each utterance, i.e. the signal a head has to find under the unit noise. Audio:
    class, attribute and gender directions (rows C..C+3 of `audio_directions`); text: the class direction."""

    audio_directions: np.ndarray
    attrs: dict[str, np.ndarray]
    signal: float
    text_signal: float
    text_directions: np.ndarray | None = None

    def audio(self, uid: str, letter: str, gender: int) -> np.ndarray:
        """Class (none for O/X) + arousal/valence/dominance + gender directions, scaled by `signal`."""
        directions, C = self.audio_directions, len(MSP_CLASSES)
        v = np.zeros(directions.shape[1], np.float32)
        if letter in CLASS_INDEX:
            v += self.signal * directions[CLASS_INDEX[letter]]
        a = (self.attrs[uid] - 4.0) / 3.0
        v += self.signal * (a[0] * directions[C] + a[1] * directions[C + 1] + a[2] * directions[C + 2])
        v += 0.5 * self.signal * (1 if gender else -1) * directions[C + 3]
        return v

    def add_to(self, x: np.ndarray, kind: str, row: LabelRow) -> None:
        """Add the utterance's mean to its noise frames `x`, in place."""
        uid, letter, _split, gender, _speaker = row
        if kind == "audio":
            mean = self.audio(uid, letter, gender)
            if x.ndim == 3:
                x[:, x.shape[1] // 2] += mean  # the signal lives in one layer: the mix has to find it
            else:
                x += mean
        elif letter in CLASS_INDEX:
            x += self.text_signal * self.text_directions[CLASS_INDEX[letter]]


def _feature_set_metadata(kind: str, shape: Sequence[int], frame_rate: float) -> dict:
    """What an extractor would record for this feature set (a single layer, or all layers)."""
    return {"model": f"synthetic-{kind}", "kind": kind, "frame_rate": frame_rate if kind == "audio" else None,
            "sample_rate": 16000, "frame_shape": list(shape),
            "layers": "-1" if len(shape) == 1 else "all",
            "layer_indices": [-1] if len(shape) == 1 else list(range(shape[0])),
            "reduction": "none" if kind == "audio" else "mean", "whisper_mode": None, "weights_sha256": None}


def _write_feature_set(writer: FeatureSetWriter, spec: FeatureSetSpec, rows: Sequence[LabelRow], means: FrameMeans,
                       rng: np.random.Generator, frame_rate: float, part_frames: int, progress: bool) -> None:
    """Draw every utterance's frames (noise + mean) and commit them in parts of about `part_frames` frames."""
    from tqdm.auto import tqdm

    name, kind, shape, lengths = spec
    writer.ensure_metadata(_feature_set_metadata(kind, shape, frame_rate))
    row_values = int(np.prod(shape))
    budget = part_frames or max(1, (64 << 20) // (4 * row_values))  # about 64 MiB of float32 per part
    part, records, frames_in_part = 0, [], 0
    bar = tqdm(total=len(rows), desc=f"synthetic {name}", disable=not progress, unit="utt")
    for i, row in enumerate(rows):
        T = int(lengths[i])
        x = rng.standard_normal((T, *shape), dtype=np.float32)
        means.add_to(x, kind, row)
        records.append(UtteranceRecord(row[0], x, fingerprint="synthetic", source="synthetic", source_stat=""))
        frames_in_part += T
        if frames_in_part >= budget:
            writer.commit_part(part, records, frame_shape=list(shape))
            part, records, frames_in_part = part + 1, [], 0
        bar.update(1)
    if records:
        writer.commit_part(part, records, frame_shape=list(shape))
    bar.close()


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


def write_audio_feature_set(store_root: str | Path, name: str, records: Sequence[UtteranceRecord]) -> Path:
    """A store holding one single-layer audio feature set `name` of the given utterances, recorded as an extractor
    would (50 frames/s, no Whisper mode, no weights hash), in one part."""
    frame_shape = list(records[0].features.shape[1:])
    writer = FeatureSetWriter(Store.create(store_root), name, StorageConfig())
    writer.ensure_metadata({"model": name.split("/")[0], "kind": "audio", "frame_rate": 50.0, "sample_rate": 16000,
                            "frame_shape": frame_shape, "layers": "-1", "layer_indices": [-1], "reduction": "none",
                            "whisper_mode": None, "weights_sha256": None})
    writer.commit_part(0, list(records), frame_shape=frame_shape)
    return Path(store_root)


IEMOCAP_CODES_WRITTEN = ("ang", "hap", "exc", "sad", "neu", "fru")  # fru: a code the 4-class protocol leaves out


def write_iemocap_corpus(root: Path, per_session: int, frames: Callable[[np.random.Generator], int], shift: float,
                         seed: int) -> tuple[Path, Path]:
    """An IEMOCAP-format release (5 sessions of EmoEvaluation files, `per_session` utterances each) and a store of
    6-d features of its utterances (`frames(rng)` frames each, `shift` added on the channel of the emotion; cache
    ids carry .wav and are matched to the labels by stem)."""
    rng = np.random.default_rng(seed)
    direction = {"ang": 0, "hap": 1, "exc": 1, "sad": 2, "neu": 3, "fru": 4}
    records = []
    for s in range(1, 6):
        folder = root / "IEMOCAP" / f"Session{s}" / "dialog" / "EmoEvaluation"
        folder.mkdir(parents=True)
        lines = []
        for i in range(per_session):
            code = IEMOCAP_CODES_WRITTEN[i % len(IEMOCAP_CODES_WRITTEN)]
            uid = f"Ses0{s}F_impro0{i % 3 + 1}_{'FM'[i % 2]}{i:03d}"
            lines.append(f"[{i}.0 - {i + 1}.5]\t{uid}\t{code}\t[2.5000, 3.0000, 3.5000]")
            x = rng.normal(size=(frames(rng), 6)).astype(np.float32)
            x[:, direction[code]] += shift
            records.append(UtteranceRecord(f"{uid}.wav", x, "f", "s", ""))
        (folder / f"Ses0{s}F_impro01.txt").write_text("% header\n\n" + "\n\n".join(lines) + "\n")
    return root / "IEMOCAP", write_audio_feature_set(root / "store", "syn/L-1", records)

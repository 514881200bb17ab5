"""Features resident in contiguous memory, batches built by tensor indexing.

A feature set is loaded once (FeaturePool) into one [total_frames, *frame_shape] tensor plus
offsets: on the GPU when it fits, in pinned host memory otherwise, streamed from the store
only when even RAM is too small. A batch is a gather `frames[offsets[idx, None] + arange(T)]`
with T computed on the host from the known lengths, so building a batch needs no per-utterance
Python objects and no device->host synchronisation. Several single-layer sets of one modality
(e.g. L-1 and L-3 of the same encoder) are stacked per batch as layers for the learned mix.

Residency (`--resident-dtype`): float16 keeps the cache's own dtype; bfloat16 converts on load;
float8 stores float8_e4m3fn codes (as uint8) with one scale per channel, absmax / 448 over the
loaded set, and de-quantises inside the gather, so half the bytes hold the same frames.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from sercache.cache import CacheError, open_store

from ..errors import HeadError
from .labels import LabelTable
from .speakers import SpeakerNorm, moment_stats, split_speaker_groups

KINDS = {"audio": "audio", "text": "text"}
RESIDENT_DTYPES = ("float16", "bfloat16", "float8")  # float16: the cache's dtype, unconverted
FLOAT8 = torch.float8_e4m3fn
FLOAT8_MAX = 448.0  # largest finite float8_e4m3fn


def resident_itemsize(resident: str, cache_dtype: str) -> int:
    """Bytes per resident value: the cache's itemsize for float16 (no conversion), else the target's."""
    if resident == "float8":
        return 1
    if resident == "bfloat16":
        return 2
    return 4 if cache_dtype == "float32" else 2


def quantize_float8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float8_e4m3fn codes of x / scale (round to nearest even), as uint8; |x| <= 448 * scale by construction."""
    return (x.float() / scale).clamp_(-FLOAT8_MAX, FLOAT8_MAX).to(FLOAT8).view(torch.uint8)


def dequantize_float8(codes: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return codes.view(FLOAT8).to(dtype).mul_(scale.to(dtype))  # to() makes a new tensor: scaled in place


def float8_scale(frames: torch.Tensor, device: torch.device, chunk_rows: int = 1 << 16) -> torch.Tensor:
    """Per-channel absmax / 448 over all rows (1 for an all-zero channel), float32 on `device`."""
    amax = torch.zeros(frames.shape[1:], dtype=torch.float32, device=device)
    for start in range(0, frames.shape[0], chunk_rows):
        block = frames[start:start + chunk_rows].to(device)
        amax = torch.maximum(amax, block.abs().amax(0).float())
    return torch.where(amax > 0, amax / FLOAT8_MAX, torch.ones_like(amax))


@torch.no_grad()
def make_resident(frames: torch.Tensor, resident: str, device: torch.device, pin: bool = False,
                  chunk_rows: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Frames [N, *frame_shape] (in the cache dtype, anywhere) converted chunk by chunk into a new tensor on
    `device`: bfloat16, or float8 codes (uint8) plus their per-channel scale. Never holds a second full copy
    of the input on the device."""
    if resident not in RESIDENT_DTYPES:
        raise HeadError(f"unknown resident dtype {resident!r}; choose {', '.join(RESIDENT_DTYPES)}")
    if resident == "float16":
        return frames.to(device), None
    scale = float8_scale(frames, device, chunk_rows) if resident == "float8" else None
    out = torch.empty(frames.shape, dtype=torch.uint8 if scale is not None else torch.bfloat16, device=device,
                      pin_memory=pin)
    for start in range(0, frames.shape[0], chunk_rows):
        block = frames[start:start + chunk_rows].to(device)
        out[start:start + len(block)] = quantize_float8(block, scale) if scale is not None else block.bfloat16()
    return out, scale


def _available_host_bytes() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def host_budget(max_host_gb: float = 0.0) -> int:
    """Bytes of RAM training may hold: --max-host-gb, or 80 % of what is available."""
    return int(max_host_gb * 1e9) if max_host_gb > 0 else int(0.8 * _available_host_bytes())


def decide_placement(nbytes: int, device: torch.device, requested: str = "auto", max_host_gb: float = 0.0) -> str:
    """'device' (resident on the compute device), 'host' (pinned RAM when the device is a GPU) or 'stream'."""
    if requested not in ("auto", "device", "host", "stream"):
        raise HeadError(f"unknown placement {requested!r}; choose auto, device, host or stream")
    if requested != "auto":
        return "host" if requested == "device" and device.type == "cpu" else requested
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if nbytes < 0.85 * free - (2 << 30):
            return "device"
    if nbytes < host_budget(max_host_gb):
        return "host"
    return "stream"


@dataclass
class LoadedSet:
    """One feature set for a list of utterances: frames[offsets[i]:offsets[i+1]] is utterance ids[i]."""

    name: str
    meta: dict
    frame_shape: tuple
    ids: list[str]
    lengths: np.ndarray
    frames: torch.Tensor | None  # None when streamed
    offsets: torch.Tensor
    lengths_t: torch.Tensor
    fs: object = None
    index: dict = field(default_factory=dict)
    resident: str = "float16"  # float16 (cache dtype) | bfloat16 | float8 | stream (nothing resident)
    scale: torch.Tensor | None = None  # float8: per-channel scale (frame_shape), on the compute device
    window: dict = field(default_factory=dict)  # streamed: row in this set -> frames read for the current window

    def __post_init__(self) -> None:
        self.index = {u: i for i, u in enumerate(self.ids)}


class FeaturePool:
    """Feature sets loaded once and shared by every config of a sweep (keyed by set name)."""

    def __init__(self, store, device: torch.device, placement: str = "auto", progress: bool = False,
                 max_host_gb: float = 0.0):
        """`store`: a store directory, or any mapping name -> FeatureSet-like object (benchmarks' in-memory sets)."""
        if isinstance(store, (str, Path)):
            try:
                self.store = open_store(store)
            except CacheError as err:
                raise HeadError(f"cannot open feature store {store!s}: {err}") from None
        else:
            self.store = store
        self.device, self.requested, self.progress, self.max_host_gb = device, placement, progress, max_host_gb
        self.sets: dict[str, LoadedSet] = {}
        self.placement: str | None = None

    @classmethod
    def for_config(cls, cfg, device: torch.device | None = None) -> "FeaturePool":
        """The pool a HeadConfig asks for: its store, device, placement and host-memory budget."""
        if not cfg.store:
            raise HeadError("--store is required")
        return cls(cfg.store, device or default_device(cfg.device), cfg.placement, cfg.progress, cfg.max_host_gb)

    def featureset(self, name: str):
        try:
            return self.store[name]
        except CacheError as err:
            raise HeadError(str(err)) from None

    def resolve(self, name: str, ids: Sequence[str]) -> list[str | None]:
        """Cache id of every label id: exact match, else a unique match on the file stem
        (labels 'Ses01F_impro01_F000' vs cache 'Ses01F_impro01_F000.wav' and the like)."""
        fs = self.featureset(name)
        present = set(fs.ids)
        out: list[str | None] = [u if u in present else None for u in ids]
        if all(o is not None for o in out):
            return out
        stems: dict[str, str | None] = {}
        for u in present:
            key = Path(u).stem
            stems[key] = None if key in stems else u
        return [o if o is not None else stems.get(Path(u).stem) for u, o in zip(ids, out)]

    def plan(self, names: Sequence[str], ids_per_set: dict[str, list[str]], resident: str = "float16") -> str:
        """Decide placement once for everything that will be loaded (at its resident size)."""
        if self.placement is None:
            total = 0
            for name in names:
                fs = self.featureset(name)
                itemsize = resident_itemsize(resident, fs.dtype)
                total += int(fs.lengths(ids_per_set[name]).sum()) * int(np.prod(fs.frame_shape)) * itemsize
            self.placement = decide_placement(total, self.device, self.requested, self.max_host_gb)
            self.planned_bytes = total
        return self.placement

    def get(self, name: str, ids: Sequence[str], resident: str = "float16") -> LoadedSet:
        """A loaded set holding `ids`; loaded again (the union of ids) when it lacks some or when another
        config asks for another residency (a streamed set serves every residency)."""
        loaded = self.sets.get(name)
        same = loaded is not None and loaded.resident in (resident, "stream")
        if same and all(u in loaded.index for u in ids):
            return loaded
        if loaded is not None:  # a later config needs more utterances: load the union once
            ids = list(dict.fromkeys([*loaded.ids, *ids]))
            del self.sets[name]  # release the old copy before loading the new one
            loaded = None
        self.sets[name] = self._load(name, list(ids), resident)
        return self.sets[name]

    def _load(self, name: str, ids: list[str], resident: str = "float16") -> LoadedSet:
        fs = self.featureset(name)
        placement = self.placement or self.plan([name], {name: ids}, resident)
        lengths = fs.lengths(ids)
        zero = [ids[i] for i in np.flatnonzero(lengths == 0)[:5]]
        if zero:
            raise HeadError(f"feature set {name!r}: utterance(s) with 0 frames: {', '.join(zero)}")
        offsets = torch.zeros(len(ids) + 1, dtype=torch.long)
        torch.cumsum(torch.as_tensor(lengths), 0, out=offsets[1:])
        frames = scale = None
        if placement != "stream":
            target = self.device if placement == "device" else torch.device("cpu")
            pin = placement == "host" and self.device.type == "cuda"
            compact = resident != "float16"  # loaded to RAM, converted chunk by chunk into the target
            packed = fs.load(ids, device="cpu" if compact else str(target), pin_memory=pin and not compact)
            frames = packed.frames
            check_finite(frames, packed.offsets.to(frames.device), ids, name)
            if compact:
                frames, scale = make_resident(frames, resident, target, pin)
                scale = scale.to(self.device) if scale is not None else None
                del packed
        dev = frames.device if frames is not None else torch.device("cpu")
        return LoadedSet(name, dict(fs.meta), tuple(fs.frame_shape), ids, lengths, frames, offsets.to(dev),
                         torch.as_tensor(lengths).to(dev), fs, resident=resident if frames is not None else "stream",
                         scale=scale)


def check_finite(frames: torch.Tensor, offsets: torch.Tensor, ids: Sequence[str], name: str,
                 chunk_rows: int = 1 << 18) -> None:
    """Refuse NaN/inf features up front (naming the utterance) instead of training on NaN losses."""
    for start in range(0, frames.shape[0], chunk_rows):
        block = frames[start:start + chunk_rows].reshape(min(chunk_rows, frames.shape[0] - start), -1)
        bad = ~torch.isfinite(block).all(dim=1)
        if bool(bad.any()):
            row = start + int(torch.nonzero(bad)[0, 0])
            utt = int(torch.searchsorted(offsets, torch.tensor(row, device=offsets.device), right=True)) - 1
            raise HeadError(f"feature set {name!r}: utterance {ids[utt]!r} has NaN/inf values "
                            f"(frame {row - int(offsets[utt])}); re-extract it or drop it from the labels")


class Modality:
    """One input stream of the head (audio or text), gathered per batch from one or more loaded sets."""

    def __init__(self, name: str, sets: list[LoadedSet], table_ids: list[str | None], max_frames: int,
                 device: torch.device):
        self.name, self.sets, self.device, self.max_frames = name, sets, device, max_frames
        first = sets[0]
        for other in sets[1:]:
            if other.frame_shape[-1] != first.frame_shape[-1]:
                raise HeadError(f"{name} feature sets {first.name!r} {list(first.frame_shape)} and {other.name!r} "
                                f"{list(other.frame_shape)} have different dims; several sets of one modality are "
                                "stacked as layers and need equal dims")
            for key in ("frame_rate", "model"):
                if first.meta.get(key) != other.meta.get(key):
                    raise HeadError(f"{name} feature sets {first.name!r} and {other.name!r} differ in provenance "
                                    f"{key!r} ({first.meta.get(key)!r} vs {other.meta.get(key)!r}); only layers of "
                                    "one encoder can be stacked")
        layers = sum(s.frame_shape[0] if len(s.frame_shape) == 2 else 1 for s in sets)
        self.frame_shape = tuple(first.frame_shape) if len(sets) == 1 else (layers, first.frame_shape[-1])
        present = np.array([u is not None for u in table_ids])
        # per set: table row -> row in that set (-1: not in the cache)
        self.packed_np = []
        for s in sets:
            idx = np.array([s.index.get(u, -1) if u is not None else -1 for u in table_ids], dtype=np.int64)
            self.packed_np.append(idx)
        self.present = present & np.all([p >= 0 for p in self.packed_np], axis=0)
        lengths = [np.where(p >= 0, s.lengths[np.maximum(p, 0)], 0) for s, p in zip(sets, self.packed_np)]
        for s, length in zip(sets[1:], lengths[1:]):
            differ = np.flatnonzero(self.present & (length != lengths[0]))
            if len(differ):
                raise HeadError(f"{name} feature sets {sets[0].name!r} and {s.name!r} disagree on the length of "
                                f"{len(differ)} utterance(s), e.g. {table_ids[differ[0]]!r}")
        self.lengths = np.minimum(lengths[0], max_frames) if max_frames else lengths[0]
        self.packed_t = [torch.as_tensor(p).to(s.offsets.device) for p, s in zip(self.packed_np, sets)]
        self.streamed = any(s.frames is None for s in sets)
        self._stats: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = {}  # rows -> channel_stats (lockstep heads)
        self.speaker_norm: SpeakerNorm | None = None  # --speaker-norm: applied to every gathered batch

    def gather(self, rows: np.ndarray, rows_t: torch.Tensor | None, T: int, dtype: torch.dtype
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames [B, T, *frame_shape] and mask [B, T] for table rows (rows_t: the same rows on the data device)."""
        parts, length = [], None
        for s, packed_t, packed_np in zip(self.sets, self.packed_t, self.packed_np):
            if s.frames is None:
                parts.append(self._stream(s, packed_np[rows], T))
                continue
            idx = packed_t[rows_t if rows_t is not None and rows_t.device == packed_t.device
                           else torch.as_tensor(rows).to(packed_t.device)]
            length = s.lengths_t[idx]
            if self.max_frames:
                length = length.clamp(max=self.max_frames)
            pos = torch.arange(T, device=idx.device)
            src = s.offsets[idx][:, None] + torch.minimum(pos[None, :], (length - 1)[:, None])
            x = s.frames[src]
            if x.device != self.device:
                pinned = self.device.type == "cuda"
                x = x.pin_memory().to(self.device, non_blocking=True) if pinned else x.to(self.device)
            if s.scale is not None:  # float8 residency: codes -> compute dtype, on the compute device
                x = dequantize_float8(x, s.scale, dtype)
            parts.append(x)
        x = parts[0] if len(parts) == 1 else torch.cat(
            [p if p.dim() == 4 else p[:, :, None] for p in parts], dim=2)
        if self.speaker_norm is not None:
            x = self.speaker_norm.apply(x, rows, rows_t)
        if self.streamed or length.device != self.device:
            lengths = torch.as_tensor(self.lengths[rows]).to(self.device, non_blocking=True)
        else:
            lengths = length  # already on the device: no host->device copy per step
        mask = torch.arange(T, device=self.device)[None, :] < lengths[:, None]
        return x.to(dtype), mask

    @torch.no_grad()
    def channel_stats(self, rows: np.ndarray, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of every channel over the valid frames of `rows` (float64 sums, one pass; computed once
        per row set, so K heads in lockstep do not read a streamed train split K times)."""
        key = np.asarray(rows, np.int64).tobytes()
        if key not in self._stats:
            self._stats[key] = self._channel_stats(rows, batch)
        return self._stats[key]

    def _channel_stats(self, rows: np.ndarray, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.asarray(rows, np.int64)
        mean, std = moment_stats(*self.group_moments(rows, np.zeros(len(rows), np.int64), 1, batch))
        return mean[0].float(), std[0].float()

    @torch.no_grad()
    def group_moments(self, rows: np.ndarray, groups: np.ndarray, n_groups: int, batch: int = 256
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Float64 sums, sums of squares [n_groups, *frame_shape] and frame counts [n_groups] over the valid frames
        of `rows` (groups[i]: the group of rows[i]), in one pass over the rows in the order given: rows of one
        group kept together make batches of few groups, and a batch of one group is summed as it comes."""
        total = torch.zeros((n_groups, *self.frame_shape), dtype=torch.float64, device=self.device)
        squares = torch.zeros_like(total)
        count = torch.as_tensor(np.bincount(groups, weights=self.lengths[rows], minlength=n_groups)).to(self.device)
        for start in range(0, len(rows), batch):
            b, g = rows[start:start + batch], groups[start:start + batch]
            if self.streamed:
                self.stage(b)
            x, mask = self.gather(b, None, max(int(self.lengths[b].max()), 1), torch.float64)
            for k in np.unique(g):
                if (g == k).all():
                    frames = x[mask]
                else:
                    pick = torch.as_tensor(g == k).to(x.device)
                    frames = x[pick][mask[pick]]
                total[k] += frames.sum(0)
                squares[k] += (frames * frames).sum(0)
        return total, squares, count

    def standardise_speakers(self, rows: np.ndarray, groups: np.ndarray, keys: list[tuple[str, str]],
                             batch: int = 256) -> None:
        """--speaker-norm: statistics of every (split, speaker) group over the valid frames of table `rows`
        (groups: the group of every table row), then applied to every batch this modality gathers. Rows are read
        group by group, shortest first, so batches hold few groups and little padding."""
        self.speaker_norm = None  # the statistics are of the frames as stored
        self._stats.clear()  # channel statistics (--input-norm) are taken after speaker standardisation
        rows = np.asarray(rows, np.int64)
        rows = rows[np.lexsort((self.lengths[rows], groups[rows]))]
        moments = self.group_moments(rows, groups[rows], len(keys), batch)
        self.speaker_norm = SpeakerNorm.from_moments(keys, groups, *moments)

    def stage(self, rows: np.ndarray) -> None:
        """Read the frames of table `rows` of every streamed set with few sequential reads (FeatureSet.read_many),
        replacing what the previous window held: the batches that follow gather from memory."""
        for s, packed_np in zip(self.sets, self.packed_np):
            if s.frames is None:
                wanted = np.unique(packed_np[rows])
                frames = s.fs.read_many([s.ids[p] for p in wanted])
                s.window = {int(p): frames[s.ids[p]] for p in wanted}

    def store_positions(self, rows: np.ndarray) -> list[tuple[int, int]]:
        """(part, offset) of table `rows` in this modality's first feature set: their order on disk."""
        s, packed = self.sets[0], self.packed_np[0]
        return [(e.part, e.offset) for e in (s.fs.entry(s.ids[p]) for p in packed[rows])]

    def _stream(self, s: LoadedSet, packed: np.ndarray, T: int) -> torch.Tensor:
        out = np.zeros((len(packed), T, *s.frame_shape), dtype=np.float32)
        for b, p in enumerate(packed):
            staged = s.window.get(int(p))
            rows = (staged if staged is not None else s.fs.get(s.ids[p]))[:T]
            if not np.isfinite(rows).all():
                raise HeadError(f"feature set {s.name!r}: utterance {s.ids[p]!r} has NaN/inf values")
            out[b, :len(rows)] = rows
        return torch.from_numpy(out).to(self.device)


def frames_cap(meta: dict, max_seconds: float) -> int:
    if not max_seconds:
        return 0
    rate = meta.get("frame_rate")
    if not rate:
        raise HeadError(f"feature set {meta.get('name')!r} records no frame_rate, so --max-seconds cannot be applied")
    return max(1, int(round(max_seconds * float(rate))))


def check_text_sources(pool: "FeaturePool", names: Sequence[str], allow_human: bool) -> None:
    """All text features of a head must come from one text source, and not from human transcripts
    unless asked: test sets have only ASR text, so human text in training is a train/test mismatch."""
    sources = {n: pool.featureset(n).meta.get("text_source") or {} for n in names}
    distinct = {(s.get("name"), s.get("kind")) for s in sources.values()}
    if len(distinct) > 1:
        listed = "; ".join(f"{n}: {s.get('kind')} text {s.get('name')!r}" for n, s in sources.items())
        raise HeadError(f"text feature sets come from different transcripts ({listed}); use one text source")
    for name, source in sources.items():
        if source.get("kind") == "human" and not allow_human:
            raise HeadError(f"text feature set {name!r} encodes human transcripts ({source.get('name')!r}); test "
                            "sets have only ASR output, so train on ASR or corrected text (the paper's rule), or "
                            "pass --allow-human-text to study the mismatch on purpose")


def build_modalities(pool: FeaturePool, audio: Sequence[str], text: Sequence[str], table: LabelTable,
                     needed: np.ndarray, max_seconds: float = 0.0, allow_human_text: bool = False,
                     resident: str = "float16") -> dict[str, Modality]:
    """Check provenance, resolve ids, load (once, at `resident` dtype) and wrap the configured feature sets."""
    wanted = {"audio": list(audio), "text": list(text)}
    check_text_sources(pool, text, allow_human_text)
    resolved: dict[str, list[str | None]] = {}
    for kind, names in wanted.items():
        for name in names:
            meta = pool.featureset(name).meta
            if meta.get("kind") != kind:
                flag = "--features" if kind == "audio" else "--text-features"
                raise HeadError(f"feature set {name!r} has kind {meta.get('kind')!r} in its provenance but was given "
                                f"as {flag} ({kind})")
            resolved[name] = pool.resolve(name, table.ids)
    loads = {n: [r[i] for i in needed if r[i] is not None] for n, r in resolved.items()}
    pool.plan(list(resolved), loads, resident)
    modalities = {}
    for kind, names in wanted.items():
        if not names:
            continue
        sets = [pool.get(n, loads[n], resident) for n in names]
        cap = frames_cap(sets[0].meta, max_seconds) if kind == "audio" else 0
        ids = resolved[names[0]]
        for n in names[1:]:
            ids = [a if a == b else None for a, b in zip(ids, resolved[n])]
        modalities[kind] = Modality(kind, sets, ids, cap, pool.device)
    return modalities


def standardise_speakers(modalities: dict[str, Modality], table: LabelTable, rows: np.ndarray, source: str,
                         remedy: str) -> int:
    """--speaker-norm on every modality (audio and text): per-(split, speaker) statistics over the table `rows`
    processed (all present in every modality); returns the number of groups. Unknown speakers are refused
    (speakers.split_speaker_groups) before any statistic is summed."""
    groups, keys = split_speaker_groups(table, rows, source, remedy)
    for modality in modalities.values():
        modality.standardise_speakers(rows, groups, keys)
    return len(keys)


def missing_rows(modalities: dict[str, Modality], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: rows[~m.present[rows]] for k, m in modalities.items() if (~m.present[rows]).any()}


def default_device(name: str) -> torch.device:
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HeadError(f"--device {name}: CUDA is not available")
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device(f"cuda:{os.environ['LOCAL_RANK']}")
    return torch.device(name)

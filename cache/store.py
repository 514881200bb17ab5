"""Reading a store: list feature sets, fetch one utterance, load a whole set contiguously.

The index of a feature set is rebuilt on open from the committed parts (a few small arrays
per part). When an utterance appears in several parts (its audio changed and it was
re-extracted), the highest-numbered part wins: parts are append-only, never rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from sercache import __version__

from .encoding import checksum, decode
from .layout import (
    FEATURESET_FILE,
    INDEX_ARRAYS,
    PART_EXTENSIONS,
    PARTS_DIR,
    SCHEMA_VERSION,
    STORE_FILE,
    CacheError,
    check_backend,
    check_featureset_name,
    part_index,
    read_json,
    write_json_atomic,
)
from .parts import PartReader, open_part


def _check_schema(meta: dict[str, Any], path: Path) -> None:
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise CacheError(
            f"{path}: schema version {version!r}, this sercache reads version {SCHEMA_VERSION}; "
            "re-export the store with a matching sercache"
        )


def canonical_provenance(meta: dict[str, Any]) -> dict[str, Any]:
    """Provenance as this version records it. CTranslate2 sets written before it recorded the last
    encoder layer as `layer_indices: [0]` (layer -1 of a model counted as having one hidden state),
    which cache_schema.md defines as the input to the first layer; they now record `[-1]`. Only a
    record that says both `layers: "-1"` and `[0]` is rewritten: no real encoder resolves -1 to 0."""
    if str(meta.get("layers")) == "-1" and meta.get("layer_indices") == [0]:
        return {**meta, "layer_indices": [-1]}
    return meta


@dataclass
class UtteranceEntry:
    part: int
    offset: int
    length: int
    checksum: int
    fingerprint: str
    source: str
    source_stat: str


@dataclass
class PackedFeatures:
    """A whole feature set in one contiguous tensor: utterance i is frames[offsets[i]:offsets[i+1]]."""

    frames: Any  # torch.Tensor [total_frames, *frame_shape]
    offsets: Any  # torch.LongTensor [n + 1]
    ids: list[str]

    @property
    def lengths(self):
        return self.offsets[1:] - self.offsets[:-1]

    def __len__(self) -> int:
        return len(self.ids)

    def utterance(self, i: int):
        return self.frames[self.offsets[i]:self.offsets[i + 1]]


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class FeatureSet:
    """One feature set (e.g. 'wavlm-large/L-1') of a store, read-only."""

    def __init__(self, root: Path, name: str):
        self.name = check_featureset_name(name)
        self.path = root / name
        self.meta: dict[str, Any] = canonical_provenance(read_json(self.path / FEATURESET_FILE))
        _check_schema(self.meta, self.path / FEATURESET_FILE)
        self.dtype: str = self.meta["dtype"]
        self.frame_shape: tuple[int, ...] = tuple(self.meta["frame_shape"])
        self._parts: dict[int, Path] = committed_parts(self.path)
        self._entries, self.failures = self._build_index()
        self._open: dict[int, PartReader] = {}
        self.range_reads = 0  # contiguous slices read by read_many

    @property
    def dim(self) -> int:
        return self.frame_shape[-1]

    @property
    def ids(self) -> list[str]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, uid: str) -> bool:
        return uid in self._entries

    def entry(self, uid: str) -> UtteranceEntry:
        try:
            return self._entries[uid]
        except KeyError:
            raise KeyError(f"utterance {uid!r} is not in feature set {self.name!r} of {self.path.parent}") from None

    def lengths(self, ids: Sequence[str] | None = None) -> np.ndarray:
        ids = self.ids if ids is None else ids
        return np.array([self.entry(uid).length for uid in ids], dtype=np.int64)

    def total_frames(self) -> int:
        return int(sum(e.length for e in self._entries.values()))

    def _build_index(self) -> tuple[dict[str, UtteranceEntry], list[dict[str, Any]]]:
        entries: dict[str, UtteranceEntry] = {}
        failures: list[dict[str, Any]] = []
        for number, path in sorted(self._parts.items()):
            part = open_part(path)
            try:
                columns = [part.index(n) for n in INDEX_ARRAYS]
                for uid, off, length, crc, fp, src, stat in zip(*columns):
                    entries[str(uid)] = UtteranceEntry(number, int(off), int(length), int(crc),
                                                       str(fp), str(src), str(stat))
                failures.extend(part.attrs.get("failures", []))
            finally:
                part.close()
        return entries, [f for f in failures if f["id"] not in entries]

    def close(self) -> None:
        for part in self._open.values():
            part.close()
        self._open.clear()

    def __enter__(self) -> "FeatureSet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def part_paths(self) -> dict[int, Path]:
        return dict(self._parts)

    def get(self, uid: str, verify: bool = False) -> np.ndarray:
        """Frames of one utterance as float16 / float32 numpy, [length, *frame_shape]."""
        e = self.entry(uid)
        rows = self._part(e.part).frames(e.offset, e.offset + e.length)
        if verify:
            self._check_rows(uid, e, rows)
        return decode(rows, self.dtype)

    def _part(self, number: int) -> PartReader:
        """An open handle on a part, kept for later reads (parts are immutable, so handles stay valid)."""
        if number not in self._open:
            self._open[number] = open_part(self._parts[number])
        return self._open[number]

    def token_ids(self, uid: str) -> np.ndarray:
        """Text sets: the token id behind each row of the utterance."""
        e = self.entry(uid)
        part = self._part(e.part)
        if not part.has("token_ids"):
            raise CacheError(f"{self.name}: a {self.meta.get('kind')} feature set has no token ids")
        return part.index("token_ids")[e.offset:e.offset + e.length]

    @staticmethod
    def _rows_intact(e: UtteranceEntry, rows: np.ndarray) -> bool:
        return rows.shape[0] == e.length and checksum(rows) == e.checksum

    def _check_rows(self, uid: str, e: UtteranceEntry, rows: np.ndarray) -> None:
        if not self._rows_intact(e, rows):
            raise CacheError(
                f"{self._parts[e.part]}: utterance {uid!r} is corrupted "
                f"(expected {e.length} frames with crc32 {e.checksum:08x})"
            )

    def iter_utterances(self, ids: Sequence[str] | None = None, verify: bool = False
                        ) -> Iterator[tuple[str, np.ndarray]]:
        """Stream utterances part by part (one sequential read per part), in store order."""
        by_part: dict[int, list[tuple[str, UtteranceEntry]]] = {}
        for uid in (self.ids if ids is None else ids):
            e = self.entry(uid)
            by_part.setdefault(e.part, []).append((uid, e))
        for number, path in sorted(self._parts.items()):
            mine = sorted(by_part.get(number, []), key=lambda item: item[1].offset)
            if not mine:
                continue
            part = open_part(path)
            try:
                block = part.frames()
            finally:
                part.close()
            for uid, e in mine:
                rows = block[e.offset:e.offset + e.length]
                if verify:
                    self._check_rows(uid, e, rows)
                yield uid, decode(rows, self.dtype)

    def read_many(self, ids: Sequence[str], max_gap: int = 4096) -> dict[str, np.ndarray]:
        """Frames of many utterances with few reads: per part, the utterances sorted by offset are read as runs
        of nearby rows (gaps of up to `max_gap` frames read through), one contiguous slice each. This is how
        training streams a cache larger than RAM: sequential reads instead of one random read per utterance.
        `range_reads` counts the slices read."""
        by_part: dict[int, list[tuple[str, UtteranceEntry]]] = {}
        for uid in ids:
            e = self.entry(uid)
            by_part.setdefault(e.part, []).append((uid, e))
        out: dict[str, np.ndarray] = {}
        for number, entries in by_part.items():
            entries.sort(key=lambda item: item[1].offset)
            part = self._part(number)
            run: list[tuple[str, UtteranceEntry]] = []
            for item in [*entries, None]:
                if run and (item is None or item[1].offset - (run[-1][1].offset + run[-1][1].length) > max_gap):
                    start = run[0][1].offset
                    block = decode(part.frames(start, run[-1][1].offset + run[-1][1].length), self.dtype)
                    self.range_reads += 1
                    for uid, e in run:
                        out[uid] = block[e.offset - start:e.offset - start + e.length]
                    run = []
                if item is not None:
                    run.append(item)
        return out

    def load(self, ids: Sequence[str] | None = None, device: str = "cpu", dtype: Any = None,
             pin_memory: bool = False, verify: bool = False) -> PackedFeatures:
        """Load utterances into one contiguous tensor on `device` (in the order of `ids`).

        Each part is read once sequentially and copied straight into the destination, so
        peak host memory is the destination plus one part.
        """
        import torch

        ids = list(self.ids if ids is None else ids)
        lengths = torch.as_tensor(self.lengths(ids), dtype=torch.long)
        offsets = torch.zeros(len(ids) + 1, dtype=torch.long)
        torch.cumsum(lengths, 0, out=offsets[1:])
        target = dtype or getattr(torch, self.dtype)
        frames = torch.empty((int(offsets[-1]), *self.frame_shape), dtype=target, device=device,
                             pin_memory=pin_memory and device == "cpu")
        position = {uid: i for i, uid in enumerate(ids)}
        for uid, rows in self.iter_utterances(ids, verify=verify):
            i = position[uid]
            frames[offsets[i]:offsets[i + 1]] = torch.from_numpy(np.ascontiguousarray(rows)).to(target)
        return PackedFeatures(frames, offsets, ids)

    def verify(self, progress: bool = False) -> VerifyReport:
        """Read every committed row and compare length and CRC-32 with the index."""
        from tqdm.auto import tqdm

        report = VerifyReport()
        by_part: dict[int, list[tuple[str, UtteranceEntry]]] = {}
        for uid, e in self._entries.items():
            by_part.setdefault(e.part, []).append((uid, e))
        for number in tqdm(sorted(by_part), desc=f"verify {self.name}", unit="part", disable=not progress):
            report.checked += self._verify_part(number, by_part[number], report)
        return report

    def _verify_part(self, number: int, entries: list[tuple[str, UtteranceEntry]], report: VerifyReport) -> int:
        path = self._parts[number]
        try:
            part = open_part(path)
            block = part.frames()
            part.close()
        except Exception as err:  # a truncated chunk or shard makes the codec fail
            report.problems.append(f"{path}: cannot read frames ({type(err).__name__}: {err})")
            return 0
        for uid, e in entries:
            if not self._rows_intact(e, block[e.offset:e.offset + e.length]):
                report.problems.append(f"{path}: utterance {uid!r} fails its checksum")
        return len(entries)


def committed_parts(directory: Path, suffixes: tuple[str, ...] = PART_EXTENSIONS) -> dict[int, Path]:
    """Committed parts under directory/parts (feature parts by default; text sets pass ("jsonl",))."""
    parts_dir = directory / PARTS_DIR
    if not parts_dir.is_dir():
        return {}
    found = {}
    for path in parts_dir.iterdir():
        number = part_index(path.name, suffixes)
        if number is not None:
            found[number] = path
    return found


class Store:
    """A directory holding many feature sets of one corpus."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.meta = read_json(self.root / STORE_FILE)
        _check_schema(self.meta, self.root / STORE_FILE)
        self.backend: str = self.meta["backend"]

    @classmethod
    def create(cls, root: str | Path, backend: str = "zarr", exist_ok: bool = True) -> "Store":
        from datetime import datetime, timezone

        root = Path(root)
        if (root / STORE_FILE).exists():
            if not exist_ok:
                raise CacheError(f"{root}: a store already exists")
            store = cls(root)
            if store.backend != backend:
                raise CacheError(f"{root}: existing store uses backend {store.backend!r}, not {backend!r}")
            return store
        check_backend(backend)
        write_json_atomic(root / STORE_FILE, {
            "format": "sercache", "schema_version": SCHEMA_VERSION, "backend": backend,
            "created": datetime.now(timezone.utc).isoformat(), "sercache_version": __version__,
        })
        return cls(root)

    def feature_sets(self) -> list[str]:
        names = [p.parent.relative_to(self.root).as_posix() for p in self.root.rglob(FEATURESET_FILE)]
        return sorted(names)

    def __contains__(self, name: str) -> bool:
        return (self.root / name / FEATURESET_FILE).is_file()

    def __getitem__(self, name: str) -> FeatureSet:
        if name not in self:
            available = ", ".join(self.feature_sets()) or "none"
            raise CacheError(f"{self.root}: no feature set {name!r} (available: {available})")
        return FeatureSet(self.root, name)


def open_store(root: str | Path) -> Store:
    return Store(root)

"""Writing a feature set: provenance, then immutable parts committed by atomic rename.

A part is built under `parts/.tmp-...`, flushed to disk, then renamed to `parts/pNNNNNN.zarr`
(or `.h5`). A reader, a resuming writer or another rank therefore sees a part either whole
or not at all. Each part has exactly one writer, so concurrent ranks never share a file.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .encoding import OVERFLOW_POLICIES, STORAGE_DTYPES, checksum, encode, numpy_storage_dtype
from .layout import (
    FEATURESET_FILE,
    PARTS_DIR,
    PLAN_FILE,
    SCHEMA_VERSION,
    TMP_PREFIX,
    CacheError,
    check_backend,
    check_featureset_name,
    fsync_tree,
    part_name,
    read_json,
    write_json_atomic,
)
from .parts import COMPRESSIONS, ChunkLayout, default_chunk_frames, write_part
from .store import Store, canonical_provenance, committed_parts

# Provenance keys that must agree before new parts may be appended to an existing feature set.
IDENTITY_KEYS = ("model", "weights_sha256", "layers", "layer_indices", "reduction", "frame_rate",
                 "sample_rate", "dtype", "frame_shape", "whisper_mode", "kind")


@dataclass
class StorageConfig:
    """How features are laid out on disk."""

    backend: str = "zarr"
    dtype: str = "float16"
    compression: str = "none"
    chunk_frames: int = 0  # 0: about 1 MiB per chunk
    shard_chunks: int = 64  # zarr: chunks per shard file (0 = no sharding)
    part_megabytes: float = 256.0  # a part is the unit of commit and of resume
    on_overflow: str = "clip"

    def validate(self) -> None:
        check_backend(self.backend)
        if self.dtype not in STORAGE_DTYPES:
            raise CacheError(f"unknown dtype {self.dtype!r}; choose one of {STORAGE_DTYPES}")
        if self.compression not in COMPRESSIONS:
            raise CacheError(f"unknown compression {self.compression!r}; choose one of {COMPRESSIONS}")
        if self.on_overflow not in OVERFLOW_POLICIES:
            raise CacheError(f"unknown overflow policy {self.on_overflow!r}; choose one of {OVERFLOW_POLICIES}")

    def row_bytes(self, frame_shape: Sequence[int]) -> int:
        return int(np.prod(frame_shape)) * numpy_storage_dtype(self.dtype).itemsize

    def layout(self, frame_shape: Sequence[int]) -> ChunkLayout:
        chunk = self.chunk_frames or default_chunk_frames(self.row_bytes(frame_shape))
        return ChunkLayout(chunk, chunk * self.shard_chunks, self.compression)


@dataclass
class UtteranceRecord:
    """One extracted utterance on its way into a part."""

    id: str
    features: np.ndarray  # float32 [frames, *frame_shape]
    fingerprint: str
    source: str
    source_stat: str
    token_ids: np.ndarray | None = None  # text sets: one token id per row


@dataclass
class PartSummary:
    number: int
    utterances: int
    frames: int
    clipped: int
    failures: list[dict[str, Any]] = field(default_factory=list)


class FeatureSetWriter:
    def __init__(self, store: Store, name: str, storage: StorageConfig):
        storage.validate()
        if storage.backend != store.backend:
            raise CacheError(f"{store.root}: store backend is {store.backend!r}, asked for {storage.backend!r}")
        self.store = store
        self.name = check_featureset_name(name)
        self.path = store.root / name
        self.storage = storage

    def ensure_metadata(self, provenance: dict[str, Any]) -> dict[str, Any]:
        """Create featureset.json, or check that an existing one describes the same features."""
        meta_path = self.path / FEATURESET_FILE
        meta = dict(provenance, name=self.name, schema_version=SCHEMA_VERSION, dtype=self.storage.dtype,
                    backend=self.storage.backend, compression=self.storage.compression)
        if meta_path.exists():
            existing = canonical_provenance(read_json(meta_path))  # stores of earlier versions resume too
            clash = [k for k in IDENTITY_KEYS if existing.get(k) != meta.get(k)]
            if clash:
                details = "; ".join(f"{k}: stored {existing.get(k)!r}, now {meta.get(k)!r}" for k in clash)
                raise CacheError(
                    f"{self.path}: feature set exists with different settings ({details}); "
                    "choose another --name or another --store"
                )
            return existing
        meta["created"] = datetime.now(timezone.utc).isoformat()
        write_json_atomic(meta_path, meta)
        return meta

    def remove_temporaries(self) -> int:
        """Delete leftovers of killed writers. Only safe when no writer is running."""
        parts_dir = self.path / PARTS_DIR
        if not parts_dir.is_dir():
            return 0
        stale = [p for p in parts_dir.iterdir() if p.name.startswith(TMP_PREFIX)]
        for path in stale:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        return len(stale)

    def committed(self) -> dict[int, Path]:
        return committed_parts(self.path)

    def commit_part(self, number: int, records: Sequence[UtteranceRecord], frame_shape: Sequence[int],
                    failures: Sequence[dict[str, Any]] = (), extra_attrs: dict[str, Any] | None = None
                    ) -> PartSummary:
        final = self.path / PARTS_DIR / part_name(number, self.storage.backend)
        if final.exists():
            raise CacheError(f"{final}: part already committed")
        frames, index, clipped = self._encode(records, frame_shape)
        attrs = {"part": number, "n_utterances": len(records), "n_frames": int(frames.shape[0]),
                 "fp16_clipped": clipped, "failures": list(failures),
                 "created": datetime.now(timezone.utc).isoformat(), **(extra_attrs or {})}
        tmp = final.parent / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_part(self.storage.backend, tmp, frames, index, attrs, self.storage.layout(frame_shape))
            fsync_tree(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
            raise
        return PartSummary(number, len(records), int(frames.shape[0]), clipped, list(failures))

    def _encode(self, records: Sequence[UtteranceRecord], frame_shape: Sequence[int]
                ) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
        encoded, lengths, crcs, clipped = [], [], [], 0
        for record in records:
            if tuple(record.features.shape[1:]) != tuple(frame_shape):
                raise CacheError(f"utterance {record.id!r}: frame shape {record.features.shape[1:]}, "
                                 f"feature set has {tuple(frame_shape)}")
            rows = encode(record.features, self.storage.dtype, self.storage.on_overflow,
                          what=f"utterance {record.id!r} ({record.source})")
            encoded.append(rows.data)
            lengths.append(rows.data.shape[0])
            crcs.append(checksum(rows.data))
            clipped += rows.clipped
        dtype = numpy_storage_dtype(self.storage.dtype)
        frames = np.concatenate(encoded) if encoded else np.zeros((0, *frame_shape), dtype)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if lengths else np.zeros(0)
        index = {
            "ids": np.array([r.id for r in records], dtype=str),
            "offsets": np.asarray(offsets, dtype=np.int64),
            "lengths": np.asarray(lengths, dtype=np.int64),
            "checksums": np.asarray(crcs, dtype=np.uint32),
            "fingerprints": np.array([r.fingerprint for r in records], dtype=str),
            "sources": np.array([r.source for r in records], dtype=str),
            "source_stats": np.array([r.source_stat for r in records], dtype=str),
        }
        if records and records[0].token_ids is not None:
            index["token_ids"] = np.concatenate([np.asarray(r.token_ids, dtype=np.int32) for r in records])
            if len(index["token_ids"]) != frames.shape[0]:
                raise CacheError("token_ids must have one entry per row of frames")
        return frames, index, clipped

    # The extraction plan: which utterances go to which part. Persisting it makes a resumed
    # run produce exactly the parts an uninterrupted run would have produced.
    def read_plan(self) -> dict[str, Any] | None:
        path = self.path / PLAN_FILE
        return read_json(path) if path.exists() else None

    def write_plan(self, plan: dict[str, Any]) -> None:
        write_json_atomic(self.path / PLAN_FILE, plan)

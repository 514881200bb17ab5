"""Part containers: one zarr group or one HDF5 file holding a block of utterances.

Both backends store the same arrays (`frames` plus the per-utterance index arrays of
layout.INDEX_ARRAYS) and the same attributes; only the container differs. A part is
written whole and never modified, which is what makes concurrent writers and kill -9
safe: no two processes ever touch the same part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .layout import BACKEND_SUFFIX, INDEX_ARRAYS, ROW_ARRAYS, CacheError, check_backend

COMPRESSIONS = ("none", "blosc-zstd", "blosc-lz4", "gzip")


@dataclass(frozen=True)
class ChunkLayout:
    """How frames are cut on disk: chunk rows, and rows per shard file (zarr only; 0 = no sharding)."""

    chunk_frames: int
    shard_frames: int
    compression: str = "none"


def default_chunk_frames(row_bytes: int, target_bytes: int = 1 << 20) -> int:
    """Rows per chunk so that one chunk is about 1 MiB: big enough for sequential reads, small
    enough that reading one ~6-s utterance (300 frames) touches one or two chunks."""
    rows = max(1, target_bytes // max(row_bytes, 1))
    return int(max(16, min(8192, 1 << int(np.floor(np.log2(rows))))))


class PartReader(Protocol):
    attrs: dict[str, Any]

    def index(self, name: str) -> np.ndarray: ...

    def has(self, name: str) -> bool: ...

    def frames(self, start: int | None = None, stop: int | None = None) -> np.ndarray: ...

    def close(self) -> None: ...


def _zarr_codecs(compression: str):
    import zarr

    if compression == "none":
        return None
    if compression == "blosc-zstd":
        return [zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")]
    if compression == "blosc-lz4":
        return [zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")]
    if compression == "gzip":
        return [zarr.codecs.GzipCodec(level=5)]
    raise CacheError(f"unknown compression {compression!r}; choose one of {COMPRESSIONS}")


def write_zarr_part(path: Path, frames: np.ndarray, index: dict[str, np.ndarray],
                    attrs: dict[str, Any], layout: ChunkLayout) -> None:
    import zarr
    import zarr.storage

    group = zarr.open_group(zarr.storage.LocalStore(path), mode="w-", zarr_format=3)
    chunks = (layout.chunk_frames, *frames.shape[1:])
    shards = None
    if layout.shard_frames and frames.shape[0] > layout.chunk_frames:
        shard_rows = max(layout.chunk_frames, layout.shard_frames // layout.chunk_frames * layout.chunk_frames)
        shards = (shard_rows, *frames.shape[1:])
    array = group.create_array("frames", shape=frames.shape, dtype=frames.dtype, chunks=chunks,
                               shards=shards, compressors=_zarr_codecs(layout.compression))
    if frames.shape[0]:
        array[...] = frames
    for name in INDEX_ARRAYS + tuple(n for n in ROW_ARRAYS if n in index):
        values = index[name]
        dtype = str if values.dtype.kind in "UTO" else values.dtype
        created = group.create_array(name, shape=values.shape, dtype=dtype,
                                     chunks=(max(1, len(values)),), compressors=None)
        if len(values):
            created[...] = values
    group.attrs.update(attrs)


def write_hdf5_part(path: Path, frames: np.ndarray, index: dict[str, np.ndarray],
                    attrs: dict[str, Any], layout: ChunkLayout) -> None:
    import h5py

    options: dict[str, Any] = {}
    if layout.compression == "gzip":
        options = {"compression": "gzip", "compression_opts": 5}
    elif layout.compression != "none":
        raise CacheError(f"compression {layout.compression!r} is zarr-only; HDF5 supports none or gzip")
    with h5py.File(path, "w-") as handle:
        chunks = (min(layout.chunk_frames, max(1, frames.shape[0])), *frames.shape[1:])
        handle.create_dataset("frames", data=frames, chunks=chunks if frames.shape[0] else None, **options)
        for name in INDEX_ARRAYS + tuple(n for n in ROW_ARRAYS if n in index):
            values = index[name]
            if values.dtype.kind in "UTO":
                handle.create_dataset(name, data=values.astype(object), dtype=h5py.string_dtype())
            else:
                handle.create_dataset(name, data=values)
        handle.attrs["sercache"] = _json_dumps(attrs)


def _json_dumps(payload: Any) -> str:
    import json

    return json.dumps(payload, sort_keys=True)


class ZarrPart:
    def __init__(self, path: Path):
        import zarr

        try:
            self._group = zarr.open_group(str(path), mode="r")
            self.attrs = dict(self._group.attrs)
            self._frames = self._group["frames"]
        except Exception as err:  # zarr raises several types for a broken group
            raise CacheError(f"{path}: unreadable zarr part ({type(err).__name__}: {err})") from None
        self.path = path

    def index(self, name: str) -> np.ndarray:
        values = self._group[name][...]
        return values if values.dtype.kind in "iuf" else np.array(values.tolist(), dtype=str)

    def frames(self, start: int | None = None, stop: int | None = None) -> np.ndarray:
        return self._frames[start:stop]

    def has(self, name: str) -> bool:
        return name in self._group

    def close(self) -> None:
        pass


class Hdf5Part:
    def __init__(self, path: Path):
        import json

        import h5py

        try:
            self._file = h5py.File(path, "r")
            self.attrs = json.loads(self._file.attrs["sercache"])
            self._frames = self._file["frames"]
        except Exception as err:
            raise CacheError(f"{path}: unreadable HDF5 part ({type(err).__name__}: {err})") from None
        self.path = path

    def index(self, name: str) -> np.ndarray:
        dataset = self._file[name]
        if dataset.dtype.kind == "O":
            return np.asarray(dataset.asstr()[...], dtype=str)
        return dataset[...]

    def frames(self, start: int | None = None, stop: int | None = None) -> np.ndarray:
        return self._frames[start:stop]

    def has(self, name: str) -> bool:
        return name in self._file

    def close(self) -> None:
        self._file.close()


def open_part(path: Path) -> PartReader:
    readers = {BACKEND_SUFFIX["zarr"]: ZarrPart, BACKEND_SUFFIX["hdf5"]: Hdf5Part}
    if path.suffix not in readers:
        raise CacheError(f"{path}: not a part (expected {' or '.join(readers)})")
    return readers[path.suffix](path)


def write_part(backend: str, path: Path, frames: np.ndarray, index: dict[str, np.ndarray],
               attrs: dict[str, Any], layout: ChunkLayout) -> None:
    writers = {"zarr": write_zarr_part, "hdf5": write_hdf5_part}
    writers[check_backend(backend)](path, frames, index, attrs, layout)

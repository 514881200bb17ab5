"""Storage dtypes, the float16 range guard and row checksums.

float16 tops out at 65504. SSL encoders have a few huge outlier activations (WavLM and HuBERT
are known for them); a plain cast turns those into inf and poisons every mean pooled over
them. The guard counts such values and clips them to the float16 range (default) or refuses.
bfloat16 has float32's range but numpy has no bfloat16, so it is stored as the raw upper 16 bits
of the float32 pattern in a uint16 array (cache_schema.md shows the one-line decode).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .layout import CacheError

STORAGE_DTYPES = ("float16", "bfloat16", "float32")
OVERFLOW_POLICIES = ("clip", "error")
FLOAT16_MAX = float(np.finfo(np.float16).max)


class Float16OverflowError(CacheError):
    pass


@dataclass
class EncodedRows:
    data: np.ndarray
    clipped: int


def encode(values: np.ndarray, dtype: str, overflow: str = "clip", what: str = "features") -> EncodedRows:
    """Convert float32 features to the storage dtype; names `what` in any error."""
    values = np.asarray(values, dtype=np.float32)
    if not np.isfinite(values).all():
        raise CacheError(f"{what}: encoder produced NaN or inf")
    if dtype == "float32":
        return EncodedRows(np.ascontiguousarray(values), 0)
    if dtype == "bfloat16":
        return EncodedRows(_to_bfloat16_bits(values), 0)
    if dtype != "float16":
        raise CacheError(f"unknown storage dtype {dtype!r}; choose one of {STORAGE_DTYPES}")
    too_big = np.abs(values) > FLOAT16_MAX
    clipped = int(too_big.sum())
    if clipped and overflow == "error":
        raise Float16OverflowError(
            f"{what}: {clipped} values exceed the float16 range (max |x| = {np.abs(values).max():.1f}); "
            "use --dtype bfloat16/float32 or --on-overflow clip"
        )
    if clipped:
        values = np.clip(values, -FLOAT16_MAX, FLOAT16_MAX)
    return EncodedRows(values.astype(np.float16), clipped)


def _to_bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float32 -> bfloat16, kept as uint16 bit patterns."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    return ((bits + rounding) >> 16).astype(np.uint16)


def decode(stored: np.ndarray, dtype: str) -> np.ndarray:
    """Stored rows back to a numpy float array (float16 stays float16; bfloat16 becomes float32)."""
    if dtype == "bfloat16":
        return (stored.astype(np.uint32) << 16).view(np.float32)
    return stored


def numpy_storage_dtype(dtype: str) -> np.dtype:
    return np.dtype(np.uint16) if dtype == "bfloat16" else np.dtype(dtype)


def checksum(rows: np.ndarray) -> int:
    """CRC-32 (zlib) of the rows' little-endian C-order bytes, as stored."""
    return zlib.crc32(np.ascontiguousarray(rows).astype(rows.dtype.newbyteorder("<"), copy=False).tobytes())

"""Names, constants and small file primitives of the on-disk layout (see cache_schema.md).

Everything a reader needs to find data lives in plain JSON files and in part containers
(one zarr group or one HDF5 file per part). Parts are immutable once committed: a part is
written under a temporary name and renamed into place, so a killed writer never leaves a
half-written part where a reader would look.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sercache.errors import SercacheError

SCHEMA_VERSION = 1
STORE_FILE = "sercache.json"
FEATURESET_FILE = "featureset.json"
PLAN_FILE = "plan.json"
PARTS_DIR = "parts"
TMP_PREFIX = ".tmp-"
BACKEND_SUFFIX = {"zarr": ".zarr", "hdf5": ".h5"}
BACKENDS = tuple(BACKEND_SUFFIX)  # the registry of store backends
# File-name extensions of feature parts, without the dot ("zarr", "h5").
PART_EXTENSIONS = tuple(suffix.lstrip(".") for suffix in BACKEND_SUFFIX.values())

# Per-utterance index arrays stored in every part, in this order.
INDEX_ARRAYS = ("ids", "offsets", "lengths", "checksums", "fingerprints", "sources", "source_stats")
# Optional arrays with one entry per row of `frames` (text feature sets: the token id of each row).
ROW_ARRAYS = ("token_ids",)

_FEATURESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+()\-]*(/[A-Za-z0-9._+()\-]+)*$")


class CacheError(SercacheError):
    """A store is missing, malformed, corrupted or incompatible with what was asked of it."""


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise CacheError(f"unknown backend {backend!r}; choose {' or '.join(BACKENDS)}")
    return backend


def part_name(index: int, backend: str) -> str:
    return f"p{index:06d}{BACKEND_SUFFIX[backend]}"


def part_index(name: str, suffixes: tuple[str, ...] = PART_EXTENSIONS) -> int | None:
    """Index of a committed part from its file name, or None for anything else (temp files, strays)."""
    match = re.fullmatch(rf"p(\d{{6}})\.({'|'.join(suffixes)})", name)
    return int(match.group(1)) if match else None


def check_featureset_name(name: str) -> str:
    if not _FEATURESET_NAME.match(name) or ".." in name.split("/"):
        raise CacheError(
            f"invalid feature-set name {name!r}: use path segments of letters, digits and ._+()- "
            "separated by '/', e.g. 'wavlm-large/L-1'"
        )
    return name


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON so that readers see either the old or the new file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise CacheError(f"{path}: missing") from None
    except json.JSONDecodeError as err:
        raise CacheError(f"{path}: not valid JSON ({err})") from None


RESUME_HINT = ("every part committed so far is kept: free some space (or choose a store on another disk) and "
               "run the same command again to resume")


@contextmanager
def disk_full_is_input_error(root: str | Path, hint: str = RESUME_HINT) -> Iterator[None]:
    """A full disk while writing under `root` (ENOSPC, or h5py's wording of it) becomes a CacheError that names
    `root`, the free space left there and `hint` (by default: committed parts are kept, the same command
    resumes), instead of a traceback: the user's to fix, not a bug."""
    try:
        yield
    except OSError as err:
        if err.errno != errno.ENOSPC and os.strerror(errno.ENOSPC) not in str(err):
            raise
        raise CacheError(f"{root}: the disk is full ({os.strerror(errno.ENOSPC)}; {_free_space(root)} free); "
                         f"{hint}") from err


def _free_space(root: str | Path) -> str:
    path = Path(root).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return "unknown"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if free >= size:
            return f"{free / size:.2f} {unit}"
    return f"{free} bytes"


def fsync_tree(root: Path) -> None:
    """Flush every file under root to disk before it is renamed into place."""
    paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    for path in paths:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())

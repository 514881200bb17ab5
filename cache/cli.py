"""`sercache cache info|verify|export`: look inside a store, check it, copy it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .layout import CacheError
from .store import FeatureSet, Store, open_store
from .writer import FeatureSetWriter, StorageConfig, UtteranceRecord


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="cache_command", required=True)
    info = sub.add_parser("info", help="what a store holds")
    info.add_argument("store")
    verify = sub.add_parser("verify", help="re-read every row and check lengths and CRC-32 checksums")
    verify.add_argument("store")
    verify.add_argument("--name", action="append", help="only this feature set (repeatable)")
    export = sub.add_parser("export", help="copy feature sets into a new store (compacts, converts backend/dtype)")
    export.add_argument("store")
    export.add_argument("--to", required=True, help="destination store directory")
    export.add_argument("--name", action="append", help="only this feature set (repeatable)")
    export.add_argument("--backend", choices=("zarr", "hdf5"), default=None, help="default: the source's")
    export.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default=None)
    export.add_argument("--compression", choices=("none", "blosc-zstd", "blosc-lz4", "gzip"), default="none")


def run(args: argparse.Namespace) -> int:
    try:
        return {"info": _info, "verify": _verify, "export": _export}[args.cache_command](args)
    except CacheError as err:
        print(f"sercache cache: error: {err}", file=sys.stderr)
        return 2


def describe(fs: FeatureSet) -> dict:
    rows = fs.total_frames()
    rate = fs.meta.get("frame_rate")
    size = sum(p.stat().st_size for p in fs.path.rglob("*") if p.is_file())
    return {
        "name": fs.name, "model": fs.meta.get("model"), "layers": fs.meta.get("layers"),
        "shape": "x".join(map(str, fs.frame_shape)), "dtype": fs.dtype, "utterances": len(fs), "frames": rows,
        "hours": f"{rows / rate / 3600:.2f}" if rate else "-", "parts": len(fs.part_paths()),
        "failures": len(fs.failures), "MB": f"{size / 1e6:.1f}",
    }


def _info(args) -> int:
    store = open_store(args.store)
    print(f"{store.root}: sercache store, schema {store.meta['schema_version']}, backend {store.backend}, "
          f"created {store.meta.get('created')}")
    rows = [describe(store[name]) for name in store.feature_sets()]
    if not rows:
        print("  (no feature sets)")
        return 0
    print(format_table(rows))
    for name in store.feature_sets():
        for failure in store[name].failures[:10]:
            print(f"  failed in {name}: {failure['id']}: {failure['error']}")
    return 0


def format_table(rows: list[dict]) -> str:
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    line = lambda r: "  ".join(str(r[k]).ljust(widths[k]) for k in keys)  # noqa: E731
    return "\n".join([line({k: k for k in keys}), line({k: "-" * widths[k] for k in keys}), *map(line, rows)])


def _verify(args) -> int:
    store = open_store(args.store)
    bad = 0
    for name in args.name or store.feature_sets():
        report = store[name].verify(progress=True)
        status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        print(f"{name}: {report.checked} utterances checked, {status}")
        for problem in report.problems:
            print(f"  {problem}")
        bad += len(report.problems)
    return 1 if bad else 0


def _export(args) -> int:
    source = open_store(args.store)
    target = Store.create(args.to, args.backend or source.backend)
    if Path(args.to).resolve() == source.root.resolve():
        raise CacheError("export needs a different destination store")
    for name in args.name or source.feature_sets():
        copy_feature_set(source[name], target, args.dtype, args.compression)
        print(f"{name}: copied to {target.root}")
    return 0


def copy_feature_set(fs: FeatureSet, target: Store, dtype: str | None, compression: str) -> None:
    """Copy the live rows (superseded ones are dropped) in part-sized batches, verifying on the way."""
    storage = StorageConfig(backend=target.backend, dtype=dtype or fs.dtype, compression=compression)
    writer = FeatureSetWriter(target, fs.name, storage)
    provenance = {k: v for k, v in fs.meta.items() if k not in ("name", "schema_version", "created")}
    writer.ensure_metadata(provenance)
    if writer.committed():
        raise CacheError(f"{writer.path}: destination feature set already has parts")
    budget = int(storage.part_megabytes * (1 << 20)) // storage.row_bytes(fs.frame_shape)
    batch, frames, number = [], 0, 0
    for uid, rows in fs.iter_utterances(verify=True):
        e = fs.entry(uid)
        tokens = fs.token_ids(uid) if fs.meta.get("kind") == "text" else None
        batch.append(UtteranceRecord(uid, rows.astype("float32"), e.fingerprint, e.source, e.source_stat, tokens))
        frames += len(rows)
        if frames >= budget:
            writer.commit_part(number, batch, fs.frame_shape)
            batch, frames, number = [], 0, number + 1
    if batch or number == 0 or fs.failures:  # failures ride on the last part, even an empty one
        writer.commit_part(number, batch, fs.frame_shape, failures=fs.failures)

"""`sercache cache info|verify|export` and `sercache text info|export`: look inside a store, check it, copy it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sercache.command import Command
from sercache.dataclass_cli import add_dataclass_arguments, from_namespace

from .encoding import STORAGE_DTYPES
from .layout import BACKENDS, CacheError
from .parts import COMPRESSIONS
from .store import FeatureSet, Store, open_store
from .texts import TextSet, text_sets
from .writer import FeatureSetWriter, StorageConfig, UtteranceRecord


@dataclass
class InfoOptions:
    store: str = field(metadata={"positional": True, "help": "store directory"})


@dataclass
class VerifyOptions:
    store: str = field(metadata={"positional": True, "help": "store directory"})
    name: list[str] = field(default_factory=list, metadata={"help": "only these feature sets (default: all)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


@dataclass
class ExportOptions:
    store: str = field(metadata={"positional": True, "help": "source store directory"})
    to: str = field(metadata={"help": "destination store directory"})
    name: list[str] = field(default_factory=list, metadata={"help": "only these feature sets (default: all)"})
    backend: str | None = field(default=None, metadata={"choices": BACKENDS, "help": "default: the source's"})
    dtype: str | None = field(default=None, metadata={"choices": STORAGE_DTYPES, "help": "default: the source's"})
    compression: str = field(default="none", metadata={"choices": COMPRESSIONS, "help": "chunk compression"})


@dataclass
class TextInfoOptions:
    store: str = field(metadata={"positional": True, "help": "store directory"})


@dataclass
class TextExportOptions:
    store: str = field(metadata={"positional": True, "help": "store directory"})
    name: str = field(metadata={"positional": True, "help": "text set, e.g. asr/whisper-large-v2"})
    to: str = field(metadata={"help": "output .csv or .jsonl (the format follows the suffix)"})


def _subcommands(parser: argparse.ArgumentParser, dest: str,
                 commands: dict[str, tuple[type, str, Callable[..., int | None]]]) -> None:
    sub = parser.add_subparsers(dest=dest, required=True, metavar="COMMAND")
    for name, (options, summary, _) in commands.items():
        add_dataclass_arguments(sub.add_parser(name, help=summary, description=summary, allow_abbrev=False,
                                               formatter_class=parser.formatter_class), options)


def _dispatch(args: argparse.Namespace, dest: str,
              commands: dict[str, tuple[type, str, Callable[..., int | None]]]) -> int | None:
    options, _, body = commands[getattr(args, dest)]
    return body(from_namespace(options, args))


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


def _info(args: InfoOptions) -> int:
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

    def line(r: dict) -> str:
        return "  ".join(str(r[k]).ljust(widths[k]) for k in keys)

    return "\n".join([line({k: k for k in keys}), line({k: "-" * widths[k] for k in keys}), *map(line, rows)])


def _verify(args: VerifyOptions) -> int:
    store = open_store(args.store)
    bad = 0
    for name in args.name or store.feature_sets():
        report = store[name].verify(progress=args.progress)
        status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        print(f"{name}: {report.checked} utterances checked, {status}")
        for problem in report.problems:
            print(f"  {problem}")
        bad += len(report.problems)
    return 1 if bad else 0


def _export(args: ExportOptions) -> int:
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


def _text_info(args: TextInfoOptions) -> int:
    store = open_store(args.store)
    for name in text_sets(store):
        ts = TextSet(store, name)
        empty = sum(not r["text"] for r in ts.records.values())
        print(f"{name}: {ts.kind}, {len(ts)} texts ({empty} empty), model {ts.meta.get('model')}, "
              f"source {ts.meta.get('source')}")
    return 0


def _text_export(args: TextExportOptions) -> int:
    TextSet(open_store(args.store), args.name).export(args.to)
    print(f"{args.name}: written to {args.to}")
    return 0


_CACHE_COMMANDS = {
    "info": (InfoOptions, "what a store holds", _info),
    "verify": (VerifyOptions, "re-read every row and check lengths and CRC-32 checksums", _verify),
    "export": (ExportOptions, "copy feature sets into a new store (compacts, converts backend/dtype)", _export),
}
_TEXT_COMMANDS = {
    "info": (TextInfoOptions, "list text sets", _text_info),
    "export": (TextExportOptions, "write a text set as CSV or JSONL (by the file suffix)", _text_export),
}

CACHE = Command(
    configure=lambda parser: _subcommands(parser, "cache_command", _CACHE_COMMANDS),
    run=lambda args: _dispatch(args, "cache_command", _CACHE_COMMANDS),
    description="Inspect, verify or export a feature store.",
)
TEXT = Command(
    configure=lambda parser: _subcommands(parser, "text_command", _TEXT_COMMANDS),
    run=lambda args: _dispatch(args, "text_command", _TEXT_COMMANDS),
    description="List or export a store's text sets (transcripts).",
)

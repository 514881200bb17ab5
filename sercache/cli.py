"""`sercache`: the umbrella command (`sercache cache ...`, `sercache extract ...`)."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "extract":
        from sercache.extract.cli import main as extract_main

        return extract_main(argv[1:])
    parser = argparse.ArgumentParser(prog="sercache", description="Speech-emotion feature caches and heads.")
    parser.add_argument("--version", action="version", version=f"sercache {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    from sercache.cache.cli import add_subcommands, run

    add_subcommands(sub.add_parser("cache", help="inspect, verify or export a store"))
    text = sub.add_parser("text", help="list or export a store's transcripts (text sets)")
    text_sub = text.add_subparsers(dest="text_command", required=True)
    text_sub.add_parser("info", help="list text sets").add_argument("store")
    export = text_sub.add_parser("export", help="write a text set as CSV or JSONL (by the file suffix)")
    export.add_argument("store")
    export.add_argument("name", help="text set, e.g. asr/whisper-large-v2")
    export.add_argument("--to", required=True, help="output .csv or .jsonl")
    sub.add_parser("extract", help="same as extract-features", add_help=False)
    args = parser.parse_args(argv)
    return run_text(args) if args.command == "text" else run(args)


def run_text(args: argparse.Namespace) -> int:
    from sercache.cache import CacheError, open_store
    from sercache.cache.texts import TextSet, text_sets

    try:
        store = open_store(args.store)
        if args.text_command == "info":
            for name in text_sets(store):
                ts = TextSet(store, name)
                empty = sum(not r["text"] for r in ts.records.values())
                print(f"{name}: {ts.kind}, {len(ts)} texts ({empty} empty), model {ts.meta.get('model')}, "
                      f"source {ts.meta.get('source')}")
            return 0
        TextSet(store, args.name).export(args.to)
        print(f"{args.name}: written to {args.to}")
        return 0
    except CacheError as err:
        print(f"sercache text: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

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
    sub.add_parser("extract", help="same as extract-features", add_help=False)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

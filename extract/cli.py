"""`extract-features`: one encoder over one corpus into one feature set of a store."""

from __future__ import annotations

import argparse
import sys

from sercache.dataclass_cli import add_dataclass_arguments, from_namespace

from .config import ExtractConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extract-features",
        description="Run a frozen audio encoder once over a corpus and cache its frame-level features. "
                    "Resumable: run the same command again after a crash. Multi-GPU: torchrun --nproc-per-node N.",
    )
    add_dataclass_arguments(parser, ExtractConfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    from sercache.cache import CacheError

    from .encoders import EncoderError
    from .layers import LayerSpecError
    from .manifest import ManifestError
    from .pipeline import ExtractionError, run_extraction

    cfg = from_namespace(ExtractConfig, build_parser().parse_args(argv))
    try:
        summary = run_extraction(cfg)
    except (ExtractionError, CacheError, EncoderError, LayerSpecError, ManifestError) as err:
        print(f"extract-features: error: {err}", file=sys.stderr)
        return 2
    return 1 if getattr(summary, "failures", None) and cfg.on_error == "stop" else 0


if __name__ == "__main__":
    sys.exit(main())

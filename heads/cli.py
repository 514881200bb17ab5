"""`train-head`: one head, the IEMOCAP folds, or a sweep, from flags generated off HeadConfig."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .config import HeadConfig, build_parser, config_from_args
from .errors import HeadError, run_command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train-head",
        description="Train a speech-emotion head from cached features (SPEC §2-§5). Example: train-head --store "
                    "cache/ --features wavlm-large/L-1 --text-features 'roberta-large/asr/whisper-large-v2/mean(L-4..-1)' --labels "
                    "Labels/labels_consensus.csv --out runs/focal --loss focal --gamma 2 --weights prior",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sweep", default="", help="train many heads over one loaded copy of the data: a grid "
                   "'loss=ce,focal;gamma=2,2.5', a preset (sheffield7), or a JSON file of override dicts; "
                   "under torchrun the configs are spread over the processes")
    p.add_argument("--config", default="", help="JSON file of HeadConfig values (flags given on the command line win)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    build_parser(p)
    return p


def resolve(argv: Sequence[str] | None) -> tuple[HeadConfig, argparse.Namespace]:
    p = parser()
    args = p.parse_args(argv)
    if args.config:
        try:
            values = json.loads(open(args.config).read())
        except (OSError, json.JSONDecodeError) as err:
            raise HeadError(f"--config {args.config}: {err}") from None
        values.pop("resolved", None)  # a run's config.json can be fed back in
        defaults = vars(p.parse_args([]))
        explicit = {k for k, v in vars(args).items() if defaults.get(k) != v}
        for key, value in HeadConfig.from_dict(values).to_dict().items():
            if key not in explicit:
                setattr(args, key, value)
    return config_from_args(args), args


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        cfg, args = resolve(argv)
        if args.print_config:
            print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
            return 0
        cfg.validate()
        if args.sweep:
            from .sweep import markdown_table, run_sweep

            rows = run_sweep(cfg, args.sweep)
            if rows:
                keys = list(dict.fromkeys(k for r in rows for k in r))
                print(markdown_table(rows, keys))
            return 0
        from .train import train

        train(cfg)
        return 0

    return run_command("train-head", body)


if __name__ == "__main__":
    sys.exit(main())

"""Command lines after training: `ensemble`, `tune-decision`, `predict-head`, `report-heads`.

Errors in the inputs exit with status 2 and one line on stderr, like train-head.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .errors import HeadError, run_command


# ----------------------------------------------------------------------------------- ensemble
def ensemble_parser() -> argparse.ArgumentParser:
    from .config import build_parser
    from .ensemble import METHODS, RECIPES, TIE_RULES, TIE_TEXT

    p = argparse.ArgumentParser(
        prog="ensemble", allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Combine trained heads (run directories, or sweeps = all their runs) into one system, or train "
                    "a recipe and vote in one command.",
        epilog="tie rules of --method vote:\n" + "\n".join(f"  {k}: {v}" for k, v in TIE_TEXT.items()) +
               "\n\nexamples:\n  ensemble runs/a runs/b runs/c --out runs/vote3\n"
               "  ensemble runs/sweep --method stack --stacker logreg --out runs/stack\n"
               "  ensemble --recipe sheffield7 --store cache/ --labels Labels/labels_consensus.csv \\\n"
               "      --text-features roberta-large/asr/mean-4..-1 --recipe-features whisper=whisper-large-v3/L-1,"
               "wavlm=wavlm-large/L-1,hubert=hubert-xlarge/L-1 --out runs/sheffield7")
    g = p.add_argument_group("ensemble")
    g.add_argument("members", nargs="*", help="run directories (a sweep directory stands for all its runs)")
    g.add_argument("--method", default="vote", choices=METHODS,
                   help="vote: one vote per member; mean / logmean: probability (geometric) averaging; stack: "
                        "meta-classifier over the members' log-probabilities trained on dev (out-of-fold)")
    g.add_argument("--tie-rule", default="prob", choices=TIE_RULES, help="how --method vote breaks ties")
    g.add_argument("--stacker", default="logreg", choices=("logreg", "mlp"), help="meta-classifier of --method stack")
    g.add_argument("--folds", type=int, default=5, help="cross-validation folds on dev (stacking and the CV "
                                                        "estimate of bias tuning)")
    g.add_argument("--prior-correction", action="store_true",
                   help="add -log(train prior) to the log-probabilities (balanced test set, TalTech)")
    g.add_argument("--prior-counts", default="", help="training class counts for --prior-correction, e.g. "
                                                      "A=3053,S=3882,... (default: the first member's label file)")
    g.add_argument("--common-ids", action="store_true",
                   help="use the utterances every member predicted, instead of refusing members that differ")
    g.add_argument("--member-decisions", action="store_true",
                   help="apply each member's decision.json (tune-decision) before combining")
    g.add_argument("--recipe", default="", choices=("", *RECIPES),
                   help="train the recipe's members as one sweep, then vote (train-head flags below apply to all)")
    g.add_argument("--recipe-features", default="",
                   help="audio feature set per encoder family of the recipe: whisper=NAME,wavlm=NAME,hubert=NAME, or "
                        "one NAME for every member (the 7 loss/weight variants on one feature set; duplicate configs "
                        "get seed+i)")
    build_parser(p)
    return p


def ensemble_main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        from .config import config_from_args
        from .ensemble import build_ensemble, run_recipe

        args = ensemble_parser().parse_args(argv)
        decision = ("prior+bias" if args.prior_correction else "bias") if args.tune_bias else \
            ("prior" if args.prior_correction else "")
        options = dict(method=args.method, tie_rule=args.tie_rule, stacker=args.stacker, folds=args.folds,
                       seed=args.seed, decision=decision, prior_counts=args.prior_counts, common_ids=args.common_ids,
                       member_decisions=args.member_decisions, cv_folds=args.folds)
        if args.recipe:
            if args.members:
                raise HeadError("--recipe trains its own members; give no run directories")
            cfg = config_from_args(args)
            if args.out == "runs/head":
                raise HeadError("--out is required with --recipe")
            run_recipe(args.recipe, cfg, args.recipe_features, verbose=True, **options)  # members validated there
            return 0
        if not args.members:
            raise HeadError("give run directories to combine, or --recipe")
        if args.out == "runs/head":
            raise HeadError("--out is required (the ensemble directory)")
        build_ensemble(args.members, args.out, verbose=True, **options)
        return 0

    return run_command("ensemble", body)


# ----------------------------------------------------------------------------------- tune-decision
def tune_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="tune-decision", allow_abbrev=False,
        description="Per-class bias tuning on dev (maximises Macro-F1, never lowers it) and/or the prior correction "
                    "-log(pi) for a balanced test set, for a trained head or an averaging/stacking ensemble. Writes "
                    "decision.json in the run directory; predict-head applies it.")
    p.add_argument("runs", nargs="+", help="run or ensemble directories")
    p.add_argument("--method", default="bias", choices=("bias", "prior", "prior+bias"),
                   help="bias: tuned biases; prior: b = -log(train prior); prior+bias: tuned starting from the prior")
    p.add_argument("--prior-counts", default="", help="training class counts (default: from the run's label file)")
    p.add_argument("--folds", type=int, default=5, help="folds of the out-of-fold estimate of the tuning (0: off)")
    p.add_argument("--limit", type=float, default=20.0, help="largest |bias| in nats")
    p.add_argument("--seed", type=int, default=0)

    def body() -> int:
        from .decision import tune_run

        args = p.parse_args(argv)
        for run in args.runs:
            tune_run(run, args.method, args.prior_counts, args.folds, args.seed, args.limit, verbose=True)
        return 0

    return run_command("tune-decision", body)


# ----------------------------------------------------------------------------------- predict-head
def predict_main(argv: Sequence[str] | None = None) -> int:
    from .predict import FORMATS

    p = argparse.ArgumentParser(
        prog="predict-head", allow_abbrev=False,
        description="Run a trained head or an ensemble on cached features and write the challenge submission "
                    "(submission_categorical.csv / submission_attributes.csv), probabilities.csv and predict.json.",
        epilog="example: predict-head runs/focal --store cache/ --labels Labels/labels_consensus.csv --split test3 "
               "--out submissions/focal")
    p.add_argument("model", help="run directory of train-head (best.safetensors) or of ensemble")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--store", default="", help="feature store (default: the one the run was trained on)")
    p.add_argument("--features", nargs="+", default=[], help="audio feature set(s) (default: the run's); their "
                                                              "provenance must match the checkpoint's")
    p.add_argument("--text-features", nargs="+", default=[], help="text feature set(s) (default: the run's)")
    p.add_argument("--ids", default="", help="utterances: a file with one id per line or a CSV with a FileName column")
    p.add_argument("--labels", default="", help="utterances from a label file (with --split); labels there are scored")
    p.add_argument("--split", default="", help="split of --labels, e.g. test3")
    p.add_argument("--corpus", default="", choices=("", "msp", "iemocap", "csv"),
                   help="format of --labels (default: the run's)")
    p.add_argument("--decision", default="auto", help="auto: apply the run's decision.json if present; none; or a "
                                                      "decision.json path")
    p.add_argument("--format", default="letter", choices=FORMATS,
                   help="categorical submission: letter = FileName,EmoClass (class letter); baseline = the challenge "
                        "baseline's Filename,Prediction with the 8 scores in order A S H U F D C N")
    p.add_argument("--device", default="auto")
    p.add_argument("--drop-missing", action="store_true", help="skip utterances missing from the cache")

    def body() -> int:
        from .predict import predict

        args = p.parse_args(argv)
        split_features = [x for v in args.features for x in v.split(",") if x]
        split_text = [x for v in args.text_features for x in v.split(",") if x]
        predict(args.model, args.out, args.store, split_features, split_text, args.ids, args.labels, args.split,
                args.corpus, args.decision, args.format, args.device, args.drop_missing, verbose=True)
        return 0

    return run_command("predict-head", body)


# ----------------------------------------------------------------------------------- report-heads
def report_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="report-heads", allow_abbrev=False,
        description="Confusion matrices, learning curves, per-class tables and a leaderboard of runs, sweeps and "
                    "ensembles, as PNG + report.md (+ a self-contained report.html).")
    p.add_argument("runs", nargs="+", help="run, sweep or ensemble directories (searched recursively)")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--title", default="sercache heads report")
    p.add_argument("--no-html", action="store_true", help="write only report.md and the PNGs")
    p.add_argument("--no-curves", action="store_true", help="skip learning-curve figures")

    def body() -> int:
        from .report import build_report

        args = p.parse_args(argv)
        build_report(args.runs, args.out, args.title, not args.no_html, not args.no_curves, verbose=True)
        return 0

    return run_command("report-heads", body)


if __name__ == "__main__":  # python -m sercache.heads.post_cli <command> ...
    commands = {"ensemble": ensemble_main, "tune-decision": tune_main, "predict-head": predict_main,
                "report-heads": report_main}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(f"usage: python -m sercache.heads.post_cli {{{','.join(commands)}}} ...", file=sys.stderr)
        sys.exit(2)
    sys.exit(commands[sys.argv[1]](sys.argv[2:]))

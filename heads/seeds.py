"""`--seeds 0,1,2`: one configuration trained once per seed over one data load, with mean ± std.

A single run's Macro-F1 moves by a point or more between seeds on MSP-Podcast, which is the size of
many claimed effects; repeating the run over seeds is the cheapest error bar. The labels are read
and the features loaded once (FeaturePool), then `train` runs per seed into <out>/seed<k> (ordinary
run directories: ensembles, reports and predict-head take them), and <out>/seeds.json and seeds.md
hold the per-seed metrics and their mean ± std (heads/seedstats.py's definition: std with ddof 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .config import HeadConfig
from .errors import HeadError
from .seedstats import METRICS, STD_NOTE, mean_std

SUMMARY_METRICS = (*[k for k, _ in METRICS], "ccc_mean")


def parse_seeds(values: Sequence[Any]) -> list[int]:
    """--seeds values (ints, or strings from the command line / a sweep grid) as distinct ints, in order."""
    seeds = []
    for v in values:
        try:
            seeds.append(int(v))
        except (TypeError, ValueError):
            raise HeadError(f"--seeds: {v!r} is not an integer seed (e.g. --seeds 0,1,2)") from None
    duplicated = sorted({s for s in seeds if seeds.count(s) > 1})
    if duplicated:
        raise HeadError(f"--seeds: seed(s) {', '.join(map(str, duplicated))} given twice")
    return seeds


def run_metrics(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """split -> metric of one run's summary (IEMOCAP --fold all: the folds' means as split 'folds')."""
    if "splits" in summary:
        return {s: {k: m[k] for k in SUMMARY_METRICS if k in m} for s, m in summary["splits"].items()}
    folds = summary.get("folds", [])

    def mean(key: str) -> float | None:
        return mean_std([f.get(key) for f in folds])["mean"]

    return {"folds": {"macro_f1": mean("macro_f1"), "balanced_accuracy": summary.get("UA_mean"),
                      "accuracy": summary.get("WA_mean")}}


def seeds_summary(out: Path, dev_split: str, per_seed: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Per-seed metrics and mean ± std per split and metric over the splits every seed was scored on."""
    runs = [{"seed": s, "out": f"seed{s}", "best_epoch": summ.get("best_epoch"), "splits": run_metrics(summ)}
            for s, summ in per_seed]
    splits = [s for s in runs[0]["splits"] if all(s in r["splits"] for r in runs)]
    stats: dict[str, dict[str, Any]] = {}
    for split in splits:
        keys = [k for k in SUMMARY_METRICS if all(r["splits"][split].get(k) is not None for r in runs)]
        stats[split] = {k: mean_std([r["splits"][split][k] for r in runs]) for k in keys}
    dev = dev_split if dev_split in stats else (splits[0] if splits else dev_split)
    return {"out": str(out), "seeds": [s for s, _ in per_seed], "dev_split": dev, "runs": runs, "stats": stats,
            # means, in a run summary's shape, so sweeps and RunResult.dev read a seeds run like a single run
            "splits": {s: {k: v["mean"] for k, v in m.items()} for s, m in stats.items()}, "std": STD_NOTE}


def summary_markdown(summary: dict[str, Any]) -> str:
    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    names = dict(METRICS) | {"ccc_mean": "CCC"}
    keys = [k for k in SUMMARY_METRICS if any(k in m for m in summary["stats"].values())]
    lines = [f"# {summary['out']}: {len(summary['seeds'])} seeds ({', '.join(map(str, summary['seeds']))})", "",
             f"Mean ± std over seeds; percentages (CCC: 4 decimals); {summary['std']}.", "",
             "| split | " + " | ".join(names[k] for k in keys) + " |", "|---|" + "---:|" * len(keys)]
    for split, m in summary["stats"].items():
        cells = []
        for k in keys:
            s = m.get(k)
            if s is None or s["mean"] is None:
                cells.append("-")
            elif k == "ccc_mean":
                cells.append(f"{s['mean']:.4f}" + ("" if s["std"] is None else f" ± {s['std']:.4f}"))
            else:
                cells.append(pct(s["mean"]) + ("" if s["std"] is None else f" ± {pct(s['std'])}"))
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    lines += ["", "| seed | run | split | " + " | ".join(names[k] for k in keys) + " |",
              "|---:|---|---|" + "---:|" * len(keys)]
    for r in summary["runs"]:
        for split, m in r["splits"].items():
            values = [(f"{m[k]:.4f}" if k == "ccc_mean" else pct(m[k])) if m.get(k) is not None else "-" for k in keys]
            lines.append(f"| {r['seed']} | {r['out']} | {split} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def train_seeds(cfg: HeadConfig, table=None, pool=None, verbose: bool = True):
    """Train cfg once per seed in cfg.seeds into <out>/seed<k>, reading labels and loading features once;
    write <out>/seeds.json and seeds.md. Returns a RunResult whose summary holds the means ('splits')
    and mean ± std ('stats')."""
    from .inputs.corpora import read_labels
    from .inputs.features import FeaturePool
    from .train import train

    seeds = parse_seeds(cfg.seeds)
    if not seeds:
        raise HeadError("--seeds: no seed given")
    if table is None:
        table = read_labels(cfg.corpus, cfg.labels, cfg.detailed, cfg.classes)
    if pool is None:
        pool = FeaturePool.for_config(cfg)
    out = Path(cfg.out)
    per_seed = []
    from .loop import can_lockstep

    if cfg.lockstep and can_lockstep(cfg):  # one batch order (the first seed's, or --data-seed); own init, dropout
        from .train import train_together

        shared = cfg.data_seed if cfg.data_seed >= 0 else seeds[0]
        members = [cfg.replace(seeds=[], seed=seed, data_seed=shared, out=str(out / f"seed{seed}")) for seed in seeds]
        if verbose:
            print(f"seeds {', '.join(map(str, seeds))} in lockstep (batch order of seed {shared}) -> {out}", flush=True)
        results = train_together(members, table=table, pool=pool, verbose=verbose)
        per_seed = [(seed, r.summary) for seed, r in zip(seeds, results)]
    else:  # one after the other (the probe and IEMOCAP's all-folds run always: --lockstep does not apply)
        for seed in seeds:
            if verbose:
                print(f"seed {seed} -> {out / f'seed{seed}'}", flush=True)
            result = train(cfg.replace(seeds=[], seed=seed, out=str(out / f"seed{seed}")), table=table, pool=pool,
                           verbose=verbose)
            per_seed.append((seed, result.summary))
    return write_seeds_summary(out, cfg.dev_split, per_seed, verbose)


def write_seeds_summary(out: Path, dev_split: str, per_seed: list[tuple[int, dict[str, Any]]], verbose: bool = False):
    """<out>/seeds.json and seeds.md from the per-seed run summaries; the RunResult of the group."""
    from .rundir import write_json
    from .train import RunResult

    summary = seeds_summary(out, dev_split, per_seed)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "seeds.json", summary)
    text = summary_markdown(summary)
    (out / "seeds.md").write_text(text)
    if verbose:
        print(text, flush=True)
    return RunResult(out, summary)

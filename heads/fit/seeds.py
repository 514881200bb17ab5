"""`--seeds 0,1,2`: one configuration trained once per seed over one data load, with mean ± std.

A single run's Macro-F1 moves by a point or more between seeds on MSP-Podcast, which is the size of
many claimed effects; repeating the run over seeds is the cheapest error bar. The labels are read
and the features loaded once (FeaturePool), then `train` runs per seed into <out>/seed<k> (ordinary
run directories: ensembles, reports and predict-head take them), and <out>/seeds.json and seeds.md
hold the per-seed metrics and their mean ± std (std with ddof 1; after/seedstats.py compares groups).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .config import HeadConfig
from .rundir import RunResult, write_json

METRICS = (("macro_f1", "Macro-F1"), ("balanced_accuracy", "UA"), ("accuracy", "WA"))
STD_NOTE = "std: sample standard deviation over seeds (ddof = 1)"
SUMMARY_METRICS = (*[k for k, _ in METRICS], "ccc_mean")


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    """{'mean', 'std' (ddof 1; None for fewer than 2 values), 'n', 'values'} of finite values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    return {"mean": float(v.mean()) if len(v) else None, "std": float(v.std(ddof=1)) if len(v) > 1 else None,
            "n": int(len(v)), "values": v.tolist()}


def seed_configs(cfg: HeadConfig, seeds: Sequence[int], lockstep: bool) -> list[HeadConfig]:
    """One run per seed into <out>/seed<k>; in lockstep they share one batch order (the first seed's, or
    --data-seed) and keep their own initialisation and dropout."""
    shared = {"data_seed": cfg.data_seed if cfg.data_seed >= 0 else seeds[0]} if lockstep else {}
    return [cfg.replace(seeds=[], seed=seed, out=str(Path(cfg.out) / f"seed{seed}"), **shared) for seed in seeds]


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


def write_seeds_summary(out: Path, dev_split: str, per_seed: list[tuple[int, dict[str, Any]]], verbose: bool = False):
    """<out>/seeds.json and seeds.md from the per-seed run summaries; the RunResult of the group."""
    summary = seeds_summary(out, dev_split, per_seed)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "seeds.json", summary)
    text = summary_markdown(summary)
    (out / "seeds.md").write_text(text)
    if verbose:
        print(text, flush=True)
    return RunResult(out, summary)

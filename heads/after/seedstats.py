"""Effects with error bars: runs that differ only by seed, and paired differences between configurations.

One run per configuration cannot tell a real effect (focal + prior weights vs CE) from seed noise.
Run directories whose config.json agree on everything but the seed (and the output path and a few
presentation-only runtime options) form a group (a run that repeats a seed of its configuration is a copy,
not another draw, and stays apart); a group reports mean ± std over its seeds of
Macro-F1, UA (balanced accuracy) and WA (accuracy) per split. Two groups are compared on the seeds
both ran: the per-seed differences A − B share the seed's data order and initialisation, so their
spread is the honest error bar of the effect (usually smaller than either group's std).

std is the sample standard deviation over seeds (ddof = 1); it is undefined (None) for one seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

from ..errors import HeadError
from ..fit.rundir import RUN_CONFIG
from ..fit.seeds import METRICS, STD_NOTE, mean_std
from .outputs import resolve_member_path

# config keys that do not change what is trained or scored; 'resolved' holds derived, per-run values
IGNORED_KEYS = ("seed", "seeds", "out", "resolved", "progress", "threads", "save_checkpoint")


def experiment(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a run's config.json that defines the experiment (everything but seed, out, ...)."""
    return {k: v for k, v in config.items() if k not in IGNORED_KEYS}


def config_key(config: dict[str, Any]) -> str:
    return json.dumps(experiment(config), sort_keys=True, default=str)


@dataclass
class SeedGroup:
    """Runs of one configuration; `labels` name them in the report."""

    config: dict[str, Any]
    runs: list = field(default_factory=list)  # RunOutputs
    labels: list[str] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return [int(r.config.get("seed", 0)) for r in self.runs]

    @property
    def label(self) -> str:
        parents = {str(PurePosixPath(label).parent) for label in self.labels}
        if len(parents) == 1 and parents != {"."}:
            return parents.pop()
        return self.labels[0] + (f" (+{len(self.labels) - 1})" if len(self.labels) > 1 else "")

    @property
    def dev_split(self) -> str:
        return self.runs[0].dev_split

    def splits(self) -> list[str]:
        """Splits every run of the group was scored on, dev first."""
        common = [s for s in self.runs[0].metrics.get("splits", {})
                  if all(s in r.metrics.get("splits", {}) for r in self.runs)]
        return sorted(common, key=lambda s: s != self.dev_split)

    def by_seed(self, split: str, metric: str) -> dict[int, float]:
        """seed -> metric (the first run when a seed occurs twice)."""
        out: dict[int, float] = {}
        for seed, run in zip(self.seeds, self.runs):
            value = run.split_metrics(split).get(metric)
            if seed not in out and value is not None:
                out[seed] = float(value)
        return out

    def stats(self, split: str, metric: str) -> dict[str, Any]:
        return mean_std([r.split_metrics(split).get(metric) for r in self.runs])


# what defines an ensemble besides its members and seed (ensemble.json); its fitted stacker and biases do not
ENSEMBLE_KEYS = ("method", "tie_rule", "task", "corpus", "dev_split", "classes", "member_decisions", "common_ids")


def _member_config(entry: dict[str, Any], ensemble_dir: Path) -> dict[str, Any] | None:
    """A member's config.json; None when it is gone (the ensemble then stands alone)."""
    try:
        return json.loads((resolve_member_path(entry, ensemble_dir) / RUN_CONFIG).read_text())
    except (HeadError, OSError, ValueError):
        return None


def ensemble_key(run: Any) -> str | None:
    """An ensemble's configuration without its seed: method and options, and its members' configurations minus
    their seeds, so that the ensembles of seed k's members (k = 0, 1, 2) are one configuration. None when a
    member cannot be read (the ensemble then stands alone)."""
    spec = run.config
    members = [_member_config(entry, Path(run.path)) for entry in spec.get("members", [])]
    if not members or any(m is None for m in members):
        return None
    stacker = {k: v for k, v in (spec.get("stacker") or {}).items() if k != "model"}
    shown = {**{k: spec.get(k) for k in ENSEMBLE_KEYS}, "stacker": stacker,
             "decision": (spec.get("decision") or {}).get("method"), "members": sorted(map(config_key, members))}
    return "ensemble " + json.dumps(shown, sort_keys=True, default=str)


def configurations(runs: Sequence, labels: Sequence[str] | None = None) -> list[SeedGroup]:
    """Every run in exactly one group, in order of first appearance: trained runs whose configs differ only by
    seed together, and ensembles likewise (ensemble_key); a run that repeats a seed already in its
    configuration's group alone (a copy or rerun, not another draw: averaging it in would count one draw
    twice), and an ensemble whose members cannot be read."""
    labels = list(labels) if labels is not None else [r.name for r in runs]
    groups: dict[str, SeedGroup] = {}
    for i, (run, label) in enumerate(zip(runs, labels)):
        key = config_key(run.config) if run.kind == "run" else (ensemble_key(run) or f"ensemble {i}")
        if key in groups and int(run.config.get("seed", 0)) in groups[key].seeds:
            key = f"repeat {i}"
        group = groups.setdefault(key, SeedGroup(experiment(run.config)))
        group.runs.append(run)
        group.labels.append(label)
    return list(groups.values())


def group_runs(runs: Sequence, labels: Sequence[str] | None = None, min_runs: int = 2) -> list[SeedGroup]:
    """Trained runs (not ensembles) grouped by their config minus seed (configurations()); groups of at least
    `min_runs`, in order of first appearance."""
    return [g for g in configurations(runs, labels) if g.runs[0].kind == "run" and len(g.runs) >= min_runs]


def paired_difference(a: SeedGroup, b: SeedGroup, split: str, metric: str) -> dict[str, Any]:
    """mean ± std over the seeds both groups ran of metric(A, seed) − metric(B, seed)."""
    va, vb = a.by_seed(split, metric), b.by_seed(split, metric)
    shared = sorted(set(va) & set(vb))
    return {**mean_std([va[s] - vb[s] for s in shared]), "seeds": shared}


def distinguishing(groups: Sequence[SeedGroup]) -> list[str]:
    """Config keys whose value is not the same in every group (what the groups are about)."""
    keys = sorted({k for g in groups for k in g.config})
    return [k for k in keys if len({json.dumps(g.config.get(k, "<absent>"), sort_keys=True, default=str)
                                    for g in groups}) > 1]


def settings(group: SeedGroup, keys: Sequence[str]) -> str:
    def show(v: Any) -> str:
        return "+".join(map(str, v)) if isinstance(v, list) else str(v)

    return ", ".join(f"{k}={show(group.config.get(k, '-'))}" for k in keys) or "-"


def comparable(a: SeedGroup, b: SeedGroup) -> bool:
    """Same classes, task and dev split: otherwise a difference of metrics means nothing."""
    ra, rb = a.runs[0], b.runs[0]
    return ra.letters == rb.letters and ra.task == rb.task and ra.dev_split == rb.dev_split


def pairs(groups: Sequence[SeedGroup], min_shared: int = 2) -> list[tuple[SeedGroup, SeedGroup, list[int]]]:
    out = []
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            shared = sorted(set(a.seeds) & set(b.seeds))
            if len(shared) >= min_shared and comparable(a, b):
                out.append((a, b, shared))
    return out


# ----------------------------------------------------------------------------------- report section
def _pct(stat: dict[str, Any], signed: bool = False) -> str:
    if stat["mean"] is None:
        return "-"
    mean = f"{100 * stat['mean']:+.2f}" if signed else f"{100 * stat['mean']:.2f}"
    return mean + (f" ± {100 * stat['std']:.2f}" if stat["std"] is not None else "")


def seed_section(doc, runs: Sequence, labels: Sequence[str], max_pairs: int = 50) -> dict[str, Any]:
    """Add 'Seeds' tables to a report (heads/after/report.py's Doc) when some runs differ only by seed; returns
    the numbers shown."""
    groups = group_runs(runs, labels)
    if not groups:
        return {"groups": [], "pairs": []}
    keys = distinguishing(groups) if len(groups) > 1 else []
    doc.h(2, "Seeds: mean ± std")
    doc.p(f"Runs whose config.json differ only in the seed (and {', '.join(k for k in IGNORED_KEYS if k != 'seed')}) "
          f"are grouped; percentages, {STD_NOTE}.")
    rows, shown = [], []
    for g in groups:
        for split in g.splits():
            stats = {k: g.stats(split, k) for k, _ in METRICS}
            rows.append([g.label, settings(g, keys), " ".join(map(str, sorted(g.seeds))), split,
                         *[_pct(stats[k]) for k, _ in METRICS]])
            shown.append({"group": g.label, "settings": settings(g, keys), "seeds": sorted(g.seeds), "split": split,
                          "stats": stats})
    doc.table(["group", "settings", "seeds", "split", *[name for _, name in METRICS]], rows)
    compared = pairs(groups)
    diff_rows, diffs = [], []
    for a, b, shared in compared[:max_pairs]:
        for split in [s for s in a.splits() if s in b.splits()]:
            d = {k: paired_difference(a, b, split, k) for k, _ in METRICS}
            diff_rows.append([a.label, b.label, " ".join(map(str, shared)), split,
                              *[_pct(d[k], signed=True) for k, _ in METRICS]])
            diffs.append({"a": a.label, "b": b.label, "seeds": shared, "split": split, "difference": d})
    if diff_rows:
        doc.h(3, "Paired differences A − B over shared seeds")
        doc.p("Per seed, A's metric minus B's; mean ± std of those differences (percentage points). An effect "
              "whose mean is within about one std of 0 is not distinguishable from seed noise.")
        doc.table(["A", "B", "shared seeds", "split", *[f"Δ {name}" for _, name in METRICS]], diff_rows)
        if len(compared) > max_pairs:
            doc.p(f"{len(compared) - max_pairs} further pair(s) not shown.")
    return {"groups": shown, "pairs": diffs}

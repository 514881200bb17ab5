"""`sercache bench`: every head on every corpus by that corpus's own protocol, and each corpus's models scored
on the others over a shared class set, in one command: a train x test matrix of mean ± std over seeds.

For each corpus (`format[:name]=PATH`, the formats of the corpus registry) the bench
1. extracts one encoder's features into `OUT/stores/<name>` (resumable: a rerun finds them there);
2. trains each head by the corpus's protocol (its folds, or its published splits), over the seeds, into
   `OUT/runs/<name>/<head>`: the diagonal cells, scored as the protocol scores them (the mean over folds of
   each held-out fold's test split; the first test split otherwise);
3. trains each head once more on all of the corpus's labelled data but a dev part (`--fold whole`), into
   `OUT/runs/<name>/whole/<head>`, and scores it on every other corpus's labelled utterances: the off-diagonal
   cells.
Classes are matched across corpora by the first three letters of their names (Angry, anger, ang -> ang), so
`--classes angry happy neutral sad` picks each corpus's own labels for those four. A finished run (its
metrics.json, seeds.json or folds.json written) is not trained again. Writes `bench.md` (one table per head),
`bench.json` (every number) and `bench_<head>.png` (heatmaps).
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sercache.extract import ExtractConfig, run_extraction
from sercache.heads import HeadConfig, train
from sercache.heads.after.predict import HeadPredictor
from sercache.heads.after.report import pyplot
from sercache.heads.errors import HeadError
from sercache.heads.fit.metrics import classification_metrics
from sercache.heads.fit.seeds import mean_std
from sercache.heads.inputs.corpora import Corpus, get_corpus, read_labels
from sercache.heads.inputs.corpora.base import WHOLE
from sercache.heads.inputs.features import FeaturePool, default_device

from .command import Command
from .dataclass_cli import add_dataclass_arguments, apply_threads, from_namespace, threads_field

BENCH_METRICS = ("macro_f1", "balanced_accuracy")


@dataclass
class BenchConfig:
    corpora: list[str] = field(default_factory=list, metadata={
        "help": "corpora as FORMAT[:NAME]=PATH, e.g. msp=MSP-Podcast/ iemocap=IEMOCAP_full_release/ "
                "emobox:cremad=EmoBox/data/crema-d (PATH: what --labels of that format takes)"})
    out: str = field(default="bench", metadata={"help": "output directory (stores, runs, bench.md/json/png)"})
    model: str = field(default="whisper-base-ct2", metadata={"help": "audio encoder (as extract --model)"})
    layers: str = field(default="-1", metadata={"help": "its layers (as extract --layers)"})
    whisper_mode: str = field(default="trimmed", metadata={"help": "Whisper mode (as extract --whisper-mode)"})
    heads: list[str] = field(default_factory=lambda: ["probe", "baseline", "paper"], metadata={
        "help": "heads to train on each corpus (train --head)"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "seeds of every run"})
    classes: list[str] = field(default_factory=lambda: ["angry", "happy", "neutral", "sad"], metadata={
        "help": "the shared classes, matched to each corpus's labels by their first three letters"})
    preset: str = field(default="small-data", metadata={"help": "train --preset of every run ('' for none)"})
    max_epochs: int = field(default=0, metadata={"help": "train --max-epochs of every run (0: the preset's)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N or auto"})
    threads: int = threads_field()


def class_key(name: str) -> str:
    """The name a class is matched by across corpora: 'Angry', 'anger', 'ang' -> 'ang'; 'Happy+Excited' -> 'hap'."""
    return re.sub(r"[^a-z]", "", name.lower())[:3]


@dataclass(frozen=True)
class BenchCorpus:
    """One corpus of the bench: its format, labels, store, and its own class letters for the shared classes."""

    name: str
    corpus: Corpus
    labels: Path
    store: Path
    letters: tuple[str, ...]


def parse_corpus(entry: str, out: Path, shared: Sequence[str]) -> BenchCorpus:
    """FORMAT[:NAME]=PATH -> the corpus, with the letters its table gives the shared classes (in their order)."""
    spec, sep, path = entry.partition("=")
    if not sep or not spec or not path:
        raise HeadError(f"--corpora {entry!r}: expected FORMAT[:NAME]=PATH (e.g. iemocap=IEMOCAP_full_release/)")
    fmt, _, name = spec.partition(":")
    corpus = get_corpus(fmt).for_labels(path)
    name = name or fmt
    table = read_labels(corpus.name, path)
    by_key = {class_key(n): letter for letter, n in zip(table.classes.letters, table.classes.names)}
    by_key.update({class_key(letter): letter for letter in table.classes.letters if class_key(letter) not in by_key})
    missing = [c for c in shared if class_key(c) not in by_key]
    if missing:
        raise HeadError(f"--corpora {entry}: no class for {', '.join(missing)} among its classes "
                        f"{', '.join(f'{c} ({n})' for c, n in zip(table.classes.letters, table.classes.names))}")
    return BenchCorpus(name, corpus, Path(path), out / "stores" / name, tuple(by_key[class_key(c)] for c in shared))


# ----------------------------------------------------------------------------------- runs
def extract_features(c: BenchCorpus, cfg: BenchConfig) -> str:
    """The corpus's audio through the encoder into its store (what is there already is kept); the set's name."""
    audio, data_root = c.corpus.audio_of(c.labels)
    return run_extraction(ExtractConfig(input=audio, data_root=data_root, store=str(c.store), model=cfg.model,
                                        layers=cfg.layers, whisper_mode=cfg.whisper_mode, on_error="skip",
                                        device=cfg.device, progress=False)).name


def head_config(c: BenchCorpus, features: str, head: str, cfg: BenchConfig, fold: str, out: Path) -> HeadConfig:
    values: dict[str, Any] = dict(
        store=str(c.store), corpus=c.corpus.name, labels=str(c.labels), classes=list(c.letters), features=[features],
        head=head, seeds=list(cfg.seeds), fold=fold, drop_missing=True, allow_empty_classes=True, device=cfg.device,
        threads=cfg.threads, progress=False, out=str(out))
    values.update({"preset": cfg.preset} if cfg.preset else {})
    return HeadConfig.from_values({**values, "max_epochs": cfg.max_epochs} if cfg.max_epochs else values)


def finished(out: Path) -> bool:
    """A run (or its seeds / folds) whose summary was written: a rerun of the bench keeps it."""
    return any((out / name).is_file() for name in ("seeds.json", "folds.json", "metrics.json"))


def train_runs(c: BenchCorpus, features: str, cfg: BenchConfig, out: Path) -> dict[str, dict[str, Path]]:
    """Each head by the corpus's protocol ("own") and on all its data but dev ("whole"): head -> kind -> dir."""
    runs: dict[str, dict[str, Path]] = {}
    for head in cfg.heads:
        for kind, fold in (("own", "all" if c.corpus.folds else ""), ("whole", WHOLE)):
            run = out / "runs" / c.name / (head if kind == "own" else f"whole/{head}")
            if not finished(run):
                train(head_config(c, features, head, cfg, fold, run), verbose=False)
            runs.setdefault(head, {})[kind] = run
    return runs


# ----------------------------------------------------------------------------------- scores
def leaf_runs(run: Path) -> list[Path]:
    """The trained heads under a run directory: one per seed, or per seed and fold."""
    return sorted(p.parent for p in run.rglob("best.safetensors"))


def own_scores(run: Path) -> dict[str, list[float]]:
    """The protocol's score per seed: the mean over a seed's folds of each fold's test split, or the first test
    split of a split protocol."""
    by_seed: dict[str, list[dict[str, float]]] = {}
    for leaf in leaf_runs(run):
        splits = json.loads((leaf / "metrics.json").read_text())["splits"]
        test = splits.get("test") or next((m for s, m in sorted(splits.items()) if s.startswith("test")), None)
        if test is None:
            raise HeadError(f"{leaf}: no test split scored")
        seed = next((part for part in leaf.relative_to(run).parts if part.startswith("seed")), "seed")
        by_seed.setdefault(seed, []).append(test)
    return {m: [float(np.mean([t[m] for t in tests])) for tests in by_seed.values()] for m in BENCH_METRICS}


def cross_scores(run: Path, target: BenchCorpus, features: str, cfg: BenchConfig) -> dict[str, list[float]]:
    """Each seed's model of one corpus scored on every labelled utterance of another that its store holds, over
    the shared classes (the i-th shared class is the i-th class of both)."""
    table = read_labels(target.corpus.name, str(target.labels), classes=target.letters)
    table = table.take(np.flatnonzero(table.label >= 0))
    pool = FeaturePool(str(target.store), default_device(cfg.device))
    out: dict[str, list[float]] = {m: [] for m in BENCH_METRICS}
    modalities = rows = None
    for leaf in leaf_runs(run):
        predictor = HeadPredictor(leaf, pool, [features])
        if modalities is None:  # the same features for every seed's model
            modalities = predictor.modalities(table)
            rows = np.flatnonzero(modalities["audio"].present)
        probs = predictor.predict(table, rows, modalities)["probs"]
        scores = classification_metrics(table.label[rows], probs.argmax(1), target.letters)
        for m in BENCH_METRICS:
            out[m].append(float(scores[m]))
    return out


# ----------------------------------------------------------------------------------- the matrix
def run_bench(cfg: BenchConfig, verbose: bool = True) -> dict[str, Any]:
    """Extract, train and score every cell; write bench.json, bench.md and the heatmaps; return the numbers."""
    out = Path(cfg.out)
    if len(cfg.corpora) < 1:
        raise HeadError("--corpora: name at least one corpus")
    corpora = [parse_corpus(entry, out, cfg.classes) for entry in cfg.corpora]
    names = [c.name for c in corpora]
    if len(set(names)) != len(names):
        raise HeadError(f"--corpora: two corpora are named alike ({', '.join(names)}); name them FORMAT:NAME=PATH")
    features = {c.name: extract_features(c, cfg) for c in corpora}
    cells: dict[str, dict[str, dict[str, Any]]] = {h: {} for h in cfg.heads}
    for c in corpora:
        if verbose:
            print(f"bench: training on {c.name} ({c.corpus.name}, classes {' '.join(c.letters)})", flush=True)
        runs = train_runs(c, features[c.name], cfg, out)
        for head, kinds in runs.items():
            row = cells[head].setdefault(c.name, {})
            row[c.name] = summarise(own_scores(kinds["own"]), "own protocol")
            for target in corpora:
                if target is not c:
                    row[target.name] = summarise(cross_scores(kinds["whole"], target, features[target.name], cfg),
                                                 "trained on all of the row's corpus but its dev part")
    result = {"config": vars(cfg), "corpora": {c.name: {"format": c.corpus.name, "labels": str(c.labels),
                                                        "classes": list(c.letters)} for c in corpora},
              "features": features, "cells": cells}
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "bench.md").write_text(markdown(result, names))
    for head in cfg.heads:
        heatmap(cells[head], names, head, out / f"bench_{head}.png")
    if verbose:
        print(markdown(result, names))
    return result


def summarise(scores: dict[str, list[float]], what: str) -> dict[str, Any]:
    return {"what": what, **{m: mean_std(v) for m, v in scores.items()}}


def _cell(stat: dict[str, Any]) -> str:
    if stat["mean"] is None:
        return "-"
    return f"{100 * stat['mean']:.1f}" + (f" ± {100 * stat['std']:.1f}" if stat["std"] is not None else "")


def markdown(result: dict[str, Any], names: list[str]) -> str:
    """One table per head: rows train on, columns test on, Macro-F1 mean ± std over seeds (%)."""
    lines = ["# sercache bench", "", f"Classes: {', '.join(result['config']['classes'])}; encoder "
             f"{result['config']['model']}; seeds {', '.join(map(str, result['config']['seeds']))}. Rows: the "
             "corpus trained on; columns: the corpus scored. Diagonal: the corpus's own protocol (its folds' "
             "held-out sessions or its test split); elsewhere: a model trained on all of the row's corpus but a dev "
             "part, scored on every labelled utterance of the column's. Macro-F1 (%), mean ± std over seeds.", ""]
    for head, rows in result["cells"].items():
        lines += [f"## {head}", "", "| train \\ test | " + " | ".join(names) + " |",
                  "|---|" + "---:|" * len(names)]
        lines += [f"| {r} | " + " | ".join(_cell(rows[r][c]["macro_f1"]) for c in names) + " |" for r in names]
        lines.append("")
    return "\n".join(lines)


def heatmap(rows: dict[str, dict[str, Any]], names: list[str], head: str, path: Path) -> None:
    """Macro-F1 means as a train x test heatmap, each cell annotated with mean ± std."""
    plt = pyplot()
    values = np.array([[rows[r][c]["macro_f1"]["mean"] or np.nan for c in names] for r in names], dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 1.2 * len(names) + 1.5), dpi=120, constrained_layout=True)
    image = ax.imshow(100 * values, cmap="viridis", vmin=0, vmax=100)
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("scored on")
    ax.set_ylabel("trained on")
    for i, r in enumerate(names):
        for j, c in enumerate(names):
            ax.text(j, i, _cell(rows[r][c]["macro_f1"]), ha="center", va="center", color="white", fontsize=9)
    fig.colorbar(image, ax=ax, label="Macro-F1 (%)")
    ax.set_title(f"{head}: Macro-F1, mean ± std over seeds")
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------------- command
def _bench(args: argparse.Namespace) -> None:
    cfg = from_namespace(BenchConfig, args)
    apply_threads(cfg.threads)
    run_bench(cfg)


BENCH = Command(
    configure=lambda parser: add_dataclass_arguments(parser, BenchConfig),
    run=_bench,
    description="Every head on every corpus by its own protocol, and each corpus's models scored on the others "
                "over shared classes: a train x test matrix of Macro-F1 (mean ± std over seeds) as bench.md, "
                "bench.json and a heatmap per head. Reruns reuse the stores and finished runs.",
    epilog="example:\n  sercache bench --corpora msp=MSP-Podcast/ iemocap=IEMOCAP_full_release/ "
           "emobox:cremad=EmoBox/data/crema-d --heads probe baseline paper --seeds 0 1 2 --out bench/",
)

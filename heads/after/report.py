"""`report-heads`: figures and tables from run directories (runs, sweeps, IEMOCAP folds, ensembles).

For every run: a confusion-matrix figure per labelled split (counts and row-normalised percentages
side by side, class letters on the axes, every cell annotated), learning curves (train and dev loss,
dev selection metric per epoch, best epoch marked), the metrics per split with their 95 % bootstrap
intervals and the majority-class and chance rows when metrics.json records them, scores by gender and by
speaker when the labels carry them, a per-class precision/recall/F1/support table, and the decision file's
before/after when present. Over all runs: a leaderboard sorted by the dev selection metric (one table per
metric when classification and regression runs are mixed) and its bar chart, both with one row / bar per
configuration: runs (or ensembles of such runs) that differ only by seed are shown once, at their mean with
the spread over seeds (seedstats.configurations). Written as PNGs + report.md, and report.html with the images
embedded (one self-contained file). Numbers are percentages with two decimals (CCC: 4 decimals), exactly as in
metrics.json.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..fit.metrics import BOOTSTRAP_DRAWS, DEFINITIONS
from ..fit.seeds import mean_std
from .outputs import RunOutputs, find_runs, load_run
from .seedstats import SeedGroup, configurations, seed_section

PCT_KEYS = (("macro_f1", "Macro-F1"), ("micro_f1", "Micro-F1"), ("accuracy", "WA"), ("balanced_accuracy", "UA"))
CCC_KEYS = (("ccc_arousal", "CCC-A"), ("ccc_valence", "CCC-V"), ("ccc_dominance", "CCC-D"), ("ccc_mean", "CCC"))
# selection metrics with a leaderboard of their own (balanced_*: --select balanced, USC's subsampled dev)
LEADERBOARD_METRICS = ("macro_f1", "balanced_macro_f1", "ccc_mean", "balanced_ccc_mean")


def metric_label(metric: str) -> str:
    """Display name of a leaderboard metric; a balanced one says so, since its values are not comparable
    with the plain metric's."""
    base = metric.removeprefix("balanced_")
    name = dict((*PCT_KEYS, *CCC_KEYS))[base]
    return name if base == metric else f"balanced {name} (class-balanced dev subsamples)"


def pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * v:.2f}"


def num(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4f}"


def fmt_metric(key: str, v: Any) -> str:
    return num(v) if "ccc" in key else pct(v)  # balanced_ccc_mean too


def pyplot():
    """matplotlib's pyplot on the file-only backend (figures are written, never shown)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "run"


# ----------------------------------------------------------------------------------- figures
def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    support, predicted = cm.sum(1), cm.sum(0)
    precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
    recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
    f1 = np.where(support + predicted > 0, 2 * tp / np.maximum(support + predicted, 1), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def confusion_figure(cm: Sequence[Sequence[int]], letters: Sequence[str], title: str, path: Path,
                     names: Sequence[str] | None = None) -> Path:
    """Counts (left) and row-normalised % (right); rows: true class, columns: predicted class."""
    plt = pyplot()
    cm = np.asarray(cm, np.int64)
    C = len(letters)
    rows = cm.sum(1, keepdims=True)
    norm = np.where(rows > 0, 100.0 * cm / np.maximum(rows, 1), 0.0)
    side = max(4.2, 0.62 * C + 1.6)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1.4, side + 0.9), dpi=120, constrained_layout=True)
    cell_font = 11 if C <= 8 else (9 if C <= 12 else 7)
    labels = [f"{letter}" for letter in letters]
    for ax, data, kind in ((axes[0], cm, "counts"), (axes[1], norm, "row %")):
        vmax = data.max() if data.max() > 0 else 1
        im = ax.imshow(data, cmap="Blues", vmin=0, vmax=vmax)
        for i in range(C):
            for j in range(C):
                v = data[i, j]
                text = f"{int(v)}" if kind == "counts" else f"{v:.0f}" if v >= 9.95 or v == 0 else f"{v:.1f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=cell_font,
                        color="white" if v > 0.55 * vmax else "black")
        ax.set_xticks(range(C), labels, fontsize=11)
        ax.set_yticks(range(C), labels, fontsize=11)
        ax.set_xlabel("predicted class", fontsize=11)
        ax.set_ylabel("true class", fontsize=11)
        ax.set_title("counts" if kind == "counts" else "row-normalised (% of true class = recall on diagonal)",
                     fontsize=10.5)
        cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        cbar.ax.tick_params(labelsize=9)
    legend = ""
    if names and list(names) != list(letters):
        legend = "   ".join(f"{letter} = {name}" for letter, name in zip(letters, names))
    fig.suptitle(title + (f"\n{legend}" if legend else ""), fontsize=12)
    fig.savefig(path)
    plt.close(fig)
    return path


def curves_figure(epochs: list[dict], metric: str, title: str, path: Path) -> Path | None:
    if not epochs:
        return None
    plt = pyplot()
    x = [e["epoch"] for e in epochs]
    best = max(epochs, key=lambda e: e["selection"] if e.get("selection") is not None else -math.inf)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120, constrained_layout=True)
    for key, label, style in (("train_loss", "train loss", "-o"), ("dev_loss", "dev loss", "-s")):
        ys = [e.get(key) for e in epochs]
        if any(v is not None for v in ys):
            a.plot(x, [np.nan if v is None else v for v in ys], style, label=label, markersize=4)
    a.axvline(best["epoch"], color="grey", linestyle="--", linewidth=1, label=f"best epoch {best['epoch']}")
    a.set_xlabel("epoch", fontsize=11)
    a.set_ylabel("loss", fontsize=11)
    a.set_title("losses", fontsize=11)
    a.legend(fontsize=9)
    a.grid(alpha=0.3)
    scale = 1.0 if metric.startswith("ccc") or "ccc" in metric else 100.0
    unit = "" if scale == 1.0 else " (%)"
    shown = [("selection", f"dev {metric} (selection)")]
    for key, label in (("dev_balanced_accuracy", "dev UA"), ("dev_accuracy", "dev WA")):
        if any(key in e for e in epochs) and scale == 100.0:
            shown.append((key, label))
    for key, label in shown:
        ys = [e.get(key) for e in epochs]
        b.plot(x, [np.nan if v is None else scale * v for v in ys], "-o", label=label, markersize=4)
    b.plot([best["epoch"]], [scale * best["selection"]], marker="*", color="crimson", markersize=14, linestyle="none",
           label=f"best: {scale * best['selection']:.2f}" if scale == 100 else f"best: {best['selection']:.4f}")
    b.axvline(best["epoch"], color="grey", linestyle="--", linewidth=1)
    b.set_xlabel("epoch", fontsize=11)
    b.set_ylabel(f"dev metric{unit}", fontsize=11)
    b.set_title("dev metrics", fontsize=11)
    b.legend(fontsize=9)
    b.grid(alpha=0.3)
    for ax in (a, b):
        ax.tick_params(labelsize=10)
        if len(x) <= 25:
            ax.set_xticks(x)
    fig.suptitle(title, fontsize=12)
    fig.savefig(path)
    plt.close(fig)
    return path


def leaderboard_bars(entries: list[dict], metric: str, limit: int = 30) -> dict[str, Any]:
    """What the leaderboard figure draws, one bar per configuration (leaderboard_entries): its seeds' mean, ± 1
    std (ddof 1) as the error bar and the seeds as points. Returned by build_report too, so what the figure
    shows can be checked without reading pixels."""
    scale = 1.0 if "ccc" in metric else 100.0
    shown = entries[:limit]

    def scaled(v: float | None) -> float:
        return scale * v if v is not None else float("nan")

    return {"metric": metric, "scale": scale,
            "labels": [e["label"] + (f" ({len(e['rows'])} seeds)" if len(e["rows"]) > 1 else "") for e in shown],
            "kinds": [e["kind"] for e in shown], "n": [len(e["rows"]) for e in shown],
            "means": [scaled(e["dev"]) for e in shown],
            "errors": [scaled(e["std"]) if e["std"] is not None else 0.0 for e in shown],
            "points": [[scale * v for v in e["values"]] if len(e["rows"]) > 1 else [] for e in shown]}


def leaderboard_figure(bars: dict[str, Any], path: Path) -> Path | None:
    """Horizontal bars of leaderboard_bars(): a configuration once, its seeds' spread as error bar and dots."""
    if len(bars["labels"]) < 2:
        return None
    plt = pyplot()
    pct_scale = bars["scale"] == 100
    labels = [label if len(label) <= 48 else "…" + label[-47:] for label in bars["labels"]]
    means, errors = np.array(bars["means"]), np.array(bars["errors"])
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(labels) + 1.6), dpi=120, constrained_layout=True)
    y = np.arange(len(labels))
    ax.barh(y, means, xerr=np.where(errors > 0, errors, np.nan), capsize=3, error_kw={"elinewidth": 1},
            color=["tab:orange" if k == "ensemble" else "tab:blue" for k in bars["kinds"]])
    for yi, points in zip(y, bars["points"]):
        ax.plot(points, [yi] * len(points), "o", color="black", markersize=3.5, alpha=0.75)
    ax.set_yticks(y, labels, fontsize=9)
    ax.invert_yaxis()
    digits = 2 if pct_scale else 4
    for yi, m, e, p in zip(y, means, errors, bars["points"]):
        if np.isfinite(m):
            text = f" {m:.{digits}f}" + (f" ± {e:.{digits}f}" if e > 0 else "")
            ax.text(max([m + e, *p]), yi, text, va="center", fontsize=9)
    values = [v for m, e, p in zip(means, errors, bars["points"]) for v in (m - e, m + e, *p) if np.isfinite(v)]
    if values:
        lo, hi = min(values), max(values)
        pad = (hi - lo) * 0.25 + (1.0 if pct_scale else 0.01)
        ax.set_xlim(max(0.0, lo - pad), hi + 2 * pad)
    ax.set_xlabel(f"dev {bars['metric']}" + (" (%)" if pct_scale else ""), fontsize=11)
    fig.suptitle("leaderboard (orange: ensembles); one bar per configuration\nbar: the mean over its seeds, error "
                 "bar: ± 1 std over seeds (ddof 1), dots: the single seeds", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(path)
    plt.close(fig)
    return path


FIGURES_PER_WORKER = 4  # fewer and a worker's start (importing torch and matplotlib) costs more than it saves


class Figures:
    """The figures of a report, drawn together once the document is laid out. Each costs about half a second
    of matplotlib layout and PNG encoding, and a report over seeds has many (the demo's: 70), so they are
    drawn in `jobs` worker processes."""

    def __init__(self, doc: "Doc"):
        self.doc = doc
        self.tasks: list[tuple[Callable[..., Any], tuple, dict[str, Any]]] = []
        self.paths: list[Path] = []

    def add(self, path: Path, alt: str, draw: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """`draw(*args, **kwargs, path=path)` makes the PNG at `path`, shown in the document here."""
        self.tasks.append((draw, args, {**kwargs, "path": path}))
        self.paths.append(path)
        self.doc.img(path, alt)

    def draw(self, jobs: int = 0) -> list[Path]:
        from joblib import Parallel, cpu_count, delayed

        workers = min(jobs or cpu_count(), max(len(self.tasks) // FIGURES_PER_WORKER, 1))  # cores this process may use
        if workers <= 1:
            for draw, args, kwargs in self.tasks:
                draw(*args, **kwargs)
        else:
            Parallel(n_jobs=workers, backend="loky")(delayed(draw)(*args, **kwargs)
                                                     for draw, args, kwargs in self.tasks)
        return self.paths


# ----------------------------------------------------------------------------------- document model
class Doc:
    """Blocks rendered both as Markdown and as self-contained HTML."""

    def __init__(self, out: Path):
        self.out = out
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", list(header), [list(map(str, r)) for r in rows]))

    def img(self, path: Path, alt: str) -> None:
        self.blocks.append(("img", path, alt))

    def markdown(self) -> str:
        def esc(s: str) -> str:
            return s.replace("|", "\\|")

        lines: list[str] = []
        for b in self.blocks:
            if b[0] == "h":
                lines += ["#" * b[1] + " " + b[2], ""]
            elif b[0] == "p":
                lines += [b[1], ""]
            elif b[0] == "table":
                lines.append("| " + " | ".join(map(esc, b[1])) + " |")
                numeric = [all(re.fullmatch(r"-?[0-9.]+|-", r[i] or "-") for r in b[2]) if b[2] else False
                           for i in range(len(b[1]))]
                lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
                lines += ["| " + " | ".join(map(esc, r)) + " |" for r in b[2]]
                lines.append("")
            elif b[0] == "img":
                lines += [f"![{b[2]}]({os.path.relpath(b[1], self.out)})", ""]
        return "\n".join(lines)

    def html(self, title: str) -> str:
        parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
                 "body{font-family:system-ui,sans-serif;max-width:1300px;margin:2em auto;padding:0 1em;color:#222}"
                 "table{border-collapse:collapse;margin:0.6em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px;"
                 "text-align:right;font-variant-numeric:tabular-nums}td:first-child,th:first-child{text-align:left}"
                 "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:0.4em 0}"
                 "</style></head><body>"]
        for b in self.blocks:
            if b[0] == "h":
                parts.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                text = html.escape(b[1])
                text = re.sub(r"`([^`]*)`", r"<code>\1</code>", text)
                text = re.sub(r"\*\*([^*]*)\*\*", r"<b>\1</b>", text)
                parts.append(f"<p>{text}</p>")
            elif b[0] == "table":
                parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in b[1]) + "</tr>")
                parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in b[2]]
                parts.append("</table>")
            elif b[0] == "img":
                data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
                parts.append(f"<img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'>")
        parts.append("</body></html>")
        return "\n".join(parts)


# ----------------------------------------------------------------------------------- report
def _labels(paths: list[Path]) -> list[str]:
    if len(paths) == 1:
        return [paths[0].name]
    resolved = [p.resolve() for p in paths]
    common = Path(os.path.commonpath([str(p) for p in resolved]))
    labels = []
    for p in resolved:
        rel = p.relative_to(common).as_posix() if p != common else p.name
        labels.append(rel or p.name)
    return labels


def describe(run: RunOutputs) -> str:
    c = run.config
    if run.kind == "ensemble":
        text = f"ensemble: **{c.get('method')}** of {len(c.get('members', []))} members"
        if c.get("method") == "vote":
            text += f"; tie rule `{c.get('tie_rule')}` ({c.get('tie_rule_text')})"
        if c.get("stacker"):
            text += f"; stacker {c['stacker']['kind']} ({c['stacker']['folds']}-fold out-of-fold on dev)"
        if c.get("decision"):
            text += f"; decision {c['decision']['method']}"
        return text
    feats = ", ".join(c.get("features", []) + c.get("text_features", []))
    loss = c.get("loss", "?")
    if loss == "focal":
        loss += f" γ={c.get('gamma')}"
    m = run.metrics
    best = f"; best epoch {m.get('best_epoch')} of {m.get('epochs_run')}" if "best_epoch" in m else ""
    if "probe" in m:  # --head probe (heads/fit/probe.py): no loss, sampler or epochs
        return (f"head **probe** (logistic regression, C = {m['probe']['C']:g}), weights {c.get('weights')}; "
                f"features `{feats}`")
    head = "" if c.get("head", "paper") == "paper" else f"head **{c['head']}**, "
    return (f"{head}loss {loss}, weights {c.get('weights')}, sampler {c.get('sampler')}, fusion {c.get('fusion')}; "
            f"features `{feats}`{best}")


def leaderboard_rows(runs: list[RunOutputs], labels: list[str]) -> dict[str, list[dict]]:
    by_metric: dict[str, list[dict]] = {}
    for run, label in zip(runs, labels):
        metric = run.selection_metric  # one board per selection metric: balanced and plain values don't mix
        if metric not in LEADERBOARD_METRICS:
            metric = "ccc_mean" if metric.endswith("ccc_mean") else "macro_f1"
        value = run.dev_selection if metric == run.selection_metric else run.split_metrics(run.dev_split).get(metric)
        row = {"label": label, "kind": run.kind, "dev": value, "run": run, "selection": metric,
               "tuned": bool(run.kind == "ensemble" and (run.config.get("decision") or {}).get("method", "").endswith(
                   "bias"))}
        by_metric.setdefault(metric, []).append(row)
    for rows in by_metric.values():
        rows.sort(key=lambda r: -(r["dev"] if r["dev"] is not None else -math.inf))
    return by_metric


def leaderboard_entries(rows: list[dict]) -> list[dict]:
    """One entry per configuration among a board's rows (seedstats.configurations), best mean first: runs (or
    ensembles) that differ only by seed become one entry with their dev values' mean and std, since a row per
    seed shows one configuration several times and ranks its seeds' luck; a single run stays as it is."""
    groups = configurations([r["run"] for r in rows], [r["label"] for r in rows])
    by_run = {id(r["run"]): r for r in rows}
    entries = []
    for group, label in zip(groups, _entry_labels(groups)):
        members = [by_run[id(run)] for run in group.runs]
        stat = mean_std([m["dev"] for m in members])
        entries.append({**members[0], "label": label, "dev": stat["mean"], "std": stat["std"],
                        "values": stat["values"], "seeds": sorted(group.seeds), "rows": members})
    entries.sort(key=lambda e: -(e["dev"] if e["dev"] is not None else -math.inf))
    return entries


def _entry_labels(groups: Sequence[SeedGroup]) -> list[str]:
    """A single run keeps its label; a seed group is named by its common folder (SeedGroup.label), or by its first
    run and how many more when that name is taken (two groups in one sweep folder)."""
    names = [g.labels[0] if len(g.runs) == 1 else g.label for g in groups]
    return [f"{g.labels[0]} (+{len(g.runs) - 1})" if len(g.runs) > 1 and names.count(name) > 1 else name
            for g, name in zip(groups, names)]


def build_report(paths: Sequence[str | Path], out: str | Path, title: str = "sercache heads report",
                 html_page: bool = True, curves: bool = True, verbose: bool = True, jobs: int = 0) -> dict[str, Any]:
    """report.md (+ report.html) and the figures of every run under `paths`; `jobs`: processes drawing the
    figures (0: one per core)."""
    out = Path(out)
    run_paths = find_runs(paths)
    runs = [load_run(p, read_splits=False) for p in run_paths]
    labels = _labels(run_paths)
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    doc = Doc(out)
    _introduction(doc, title, labels)
    figures = Figures(doc)
    boards = {metric: leaderboard_entries(rows) for metric, rows in leaderboard_rows(runs, labels).items()}
    _leaderboard_section(doc, figures, boards, fig_dir)
    seeds = seed_section(doc, runs, labels)  # mean ± std over seeds, paired differences (heads/after/seedstats.py)
    for run, label, stem in zip(runs, labels, _figure_stems(labels)):
        _run_section(doc, figures, run, label, fig_dir, stem, curves)
    images = figures.draw(jobs)
    files = _write_documents(doc, out, title, html_page)
    if verbose:
        print(f"report of {len(runs)} run(s) -> {', '.join(map(str, files))} ({len(images)} figure(s) in {fig_dir})")
    return {"runs": [str(p) for p in run_paths], "files": [str(f) for f in files], "images": [str(i) for i in images],
            "leaderboard": {m: [(e["label"], e["dev"]) for e in entries] for m, entries in boards.items()},
            "leaderboard_bars": {m: leaderboard_bars(entries, m) for m, entries in boards.items()}, "seeds": seeds}


def _introduction(doc: Doc, title: str, labels: Sequence[str]) -> None:
    """Title, the runs covered, and what WA, UA and Macro-F1 mean."""
    doc.h(1, title)
    doc.p(f"{len(labels)} run(s): " + ", ".join(f"`{label}`" for label in labels))
    doc.p(f"WA = {DEFINITIONS['accuracy']}; UA = {DEFINITIONS['balanced_accuracy']}; Macro-F1 = "
          f"{DEFINITIONS['macro_f1']}. Percentages with two decimals; CCC with four.")


def _figure_stems(labels: Sequence[str]) -> list[str]:
    """File-name stem of each run's figures: the label made safe, with the run's index when two collide (labels
    cut to 80 characters can)."""
    stems: list[str] = []
    for i, label in enumerate(labels):
        stem = _safe(label)
        stems.append(stem if stem not in stems else f"{stem}_{i}")
    return stems


# ----------------------------------------------------------------------------------- leaderboard section
def _leaderboard_section(doc: Doc, figures: Figures, boards: dict[str, list[dict]], fig_dir: Path) -> None:
    """One table per selection metric, one row per configuration (leaderboard_entries), best first, with its bar
    chart when it ranks more than one."""
    doc.h(2, "Leaderboard")
    for metric, entries in boards.items():
        header, table_rows = _leaderboard_table(metric, entries)
        doc.p(f"Sorted by dev {metric_label(metric)} (the selection metric); best first.")
        if any(len(e["rows"]) > 1 for e in entries):
            doc.p("A configuration trained with several seeds is one row: mean ± std over its seeds (std: sample "
                  "standard deviation, ddof = 1); its seeds are listed in the Seeds section and each has its own "
                  "section below.")
        doc.table(header, table_rows)
        if len(entries) > 1:
            figures.add(fig_dir / f"leaderboard_{metric}.png", f"leaderboard by dev {metric}", leaderboard_figure,
                        leaderboard_bars(entries, metric))


def _leaderboard_table(metric: str, entries: list[dict]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of one leaderboard: rank, configuration, kind, seeds, the dev metrics, then the plain
    metric on every other split; a seed group's cells are mean ± std."""
    splits = list(dict.fromkeys(s for e in entries for r in e["rows"] for s in r["run"].metrics.get("splits", {})
                                if s != r["run"].dev_split))
    base = metric.removeprefix("balanced_")  # test splits have no balanced value: the plain metric
    key_set = PCT_KEYS if base == "macro_f1" else CCC_KEYS
    extra_dev = [k for k, _ in key_set if k != metric]
    header = ["#", "run", "kind", "seeds", f"dev {metric_label(metric)}"]
    header += [f"dev {name}" for k, name in key_set if k != metric]
    header += [f"{s} {('Macro-F1' if base == 'macro_f1' else 'CCC')}" for s in splits]
    table_rows = []
    for i, e in enumerate(entries, 1):
        runs = [r["run"] for r in e["rows"]]
        line = [i, _leaderboard_label(e), e["kind"], len(runs),
                _spread(metric, [r["dev"] for r in e["rows"]])]
        line += [_spread(k, [run.split_metrics(run.dev_split).get(k) for run in runs]) for k in extra_dev]
        line += [_spread(base, [run.split_metrics(s).get(base) for run in runs]) for s in splits]
        table_rows.append(line)
    return header, table_rows


def _spread(key: str, values: Sequence[Any]) -> str:
    """One run's value as it is; several seeds' as mean ± std, with how many had it when not all did."""
    if len(values) == 1:
        return fmt_metric(key, values[0])
    stat = mean_std(values)
    if stat["mean"] is None:
        return "-"
    text = fmt_metric(key, stat["mean"]) + (f" ± {fmt_metric(key, stat['std'])}" if stat["std"] is not None else "")
    return text + (f" (n = {stat['n']})" if stat["n"] < len(values) else "")


def _leaderboard_label(row: dict) -> str:
    """The run's label, flagged when its dev value is optimistic (dev-tuned decision) or out-of-fold (stacker)."""
    run = row["run"]
    label = row["label"] + (" (dev-tuned decision)" if row["tuned"] else "")
    if run.kind == "ensemble" and run.config.get("stacker"):
        label += " (dev out-of-fold)"
    return label


# ----------------------------------------------------------------------------------- per-run sections
def _run_section(doc: Doc, figures: Figures, run: RunOutputs, label: str, fig_dir: Path, stem: str,
                 curves: bool) -> None:
    """Everything about one run: description, metrics per split, per-class tables and figures, decision."""
    doc.h(2, f"{label}")
    doc.p(describe(run))
    splits = run.metrics.get("splits", {})
    _split_metrics_table(doc, splits)
    _gender_section(doc, label, splits)
    _speaker_section(doc, label, splits, fig_dir.parent / "tables" / f"{stem}_speakers.csv")
    if run.metrics.get("before_decision"):
        doc.p("Before the ensemble's decision (no biases):")
        doc.table(["split", "n", "Macro-F1", "UA"],
                  [[s, m.get("n", ""), pct(m.get("macro_f1")), pct(m.get("balanced_accuracy"))]
                   for s, m in run.metrics["before_decision"].items()])
    for split, m in splits.items():
        if "confusion" in m:
            _per_class_section(doc, figures, run, label, split, m, fig_dir / f"{stem}_confusion_{_safe(split)}.png")
    if curves and run.kind == "run" and run.epochs:
        figures.add(fig_dir / f"{stem}_curves.png", f"learning curves {label}", curves_figure, run.epochs,
                    run.selection_metric, f"{label}: learning curves")
    dec_path = run.path / "decision.json"
    if dec_path.is_file() and run.kind == "run":
        _decision_section(doc, json.loads(dec_path.read_text()))


def _split_metrics_table(doc: Doc, splits: dict[str, dict]) -> None:
    """One row per split: n, then the classification and/or CCC metrics the run has, each with its 95 % bootstrap
    interval when metrics.json records one; below a split, what a predictor that ignores the input scores there
    (majority class, chance) when recorded, so a score can be read against the floor it has to beat."""
    has_cls = any("macro_f1" in m for m in splits.values())
    has_avd = any("ccc_mean" in m for m in splits.values())
    keys: list[tuple[str, str]] = []
    if has_cls:
        keys += list(PCT_KEYS)
    if has_avd:
        keys += list(CCC_KEYS)
    rows = []
    for s, m in splits.items():
        rows.append([s, m.get("n", m.get("n_avd", "")), *[_with_interval(k, m) for k, _ in keys]])
        rows += [[f"{s}: {name}", "", *[fmt_metric(k, ref.get(k)) for k, _ in keys]]
                 for name, ref in _references(m)]
    doc.table(["split", "n"] + [name for _, name in keys], rows)
    if any(m.get("ci95") for m in splits.values()):
        doc.p(f"In parentheses: the 95 % bootstrap interval ({BOOTSTRAP_DRAWS:,} resamples of the split's "
              "utterances with replacement, seeded): how far the score could move on another sample of as many "
              "utterances. Two systems whose intervals overlap widely are not shown apart by this split.")
    if any(m.get("reference") for m in splits.values()):
        doc.p("Reference rows, on the same utterances: always predicting the training set's majority class (named), "
              "and guessing uniformly at random (chance: expected Macro-F1 by simulation, UA and WA 1/C). A score "
              "means something only above both.")


def _with_interval(key: str, m: dict) -> str:
    """A metric's value, followed by its 95 % interval "(lo–hi)" when the split has one."""
    text = fmt_metric(key, m.get(key))
    interval = (m.get("ci95") or {}).get(key)
    if text != "-" and interval and len(interval) == 2:
        text += f" ({fmt_metric(key, interval[0])}–{fmt_metric(key, interval[1])})"
    return text


def _references(m: dict) -> list[tuple[str, dict]]:
    """(row name, scores) of a split's reference predictors, majority class first; none for older runs."""
    ref = m.get("reference") or {}
    out = []
    if isinstance(ref.get("majority"), dict):
        cls = ref["majority"].get("class")
        out.append((f"majority class{f' ({cls})' if cls is not None else ''}", ref["majority"]))
    if isinstance(ref.get("chance"), dict):
        out.append(("chance", ref["chance"]))
    return out


GROUP_KEYS = (("macro_f1", "Macro-F1"), ("balanced_accuracy", "UA"), ("accuracy", "WA"), ("ccc_mean", "CCC"))
SPEAKER_ROWS = 40  # more speakers than this: their table goes to a CSV next to the report, the summary stays


def _groups(splits: dict[str, dict], field: str) -> list[tuple[str, str, dict]]:
    """(split, group, scores) of a per-gender or per-speaker breakdown in metrics.json; none for older runs."""
    return [(s, name, v) for s, m in splits.items() for name, v in (m.get(field) or {}).items() if isinstance(v, dict)]


def _group_cells(scores: dict, keys: Sequence[tuple[str, str]]) -> list[Any]:
    """n (the labelled rows, or the A/V/D rows of a head that does not classify) and the group's scores."""
    return [scores.get("n", scores.get("n_avd", "")), *[fmt_metric(k, scores.get(k)) for k, _ in keys]]


def _gender_section(doc: Doc, label: str, splits: dict[str, dict]) -> None:
    """Scores per gender and split, when the labels carry a gender: a model can be good on average and much
    worse for one group, which the overall score hides."""
    found = _groups(splits, "by_gender")
    if not found:
        return
    keys = [(k, name) for k, name in GROUP_KEYS if any(k in v for _, _, v in found)]
    doc.h(3, f"{label} — by gender")
    doc.table(["split", "gender", "n", *[name for _, name in keys]],
              [[s, g, *_group_cells(v, keys)] for s, g, v in found])


def _speaker_section(doc: Doc, label: str, splits: dict[str, dict], csv_path: Path) -> None:
    """Per speaker, when the labels name speakers: a summary per split (how many, how much each has, the spread
    of their scores), and the full table, in the report for a few speakers or in a CSV beside it for many."""
    found = _groups(splits, "by_speaker")
    if not found:
        return
    keys = [(k, name) for k, name in GROUP_KEYS if any(k in v for _, _, v in found)]
    doc.h(3, f"{label} — by speaker")
    summary = []
    for split in dict.fromkeys(s for s, _, _ in found):
        scores = [v for s, _, v in found if s == split]
        sizes = [v["n"] for v in scores if isinstance(v.get("n"), (int, float))]
        summary.append([split, len(scores), f"{np.median(sizes):g}" if sizes else "-",
                        *[_median_range(k, [v.get(k) for v in scores]) for k, _ in keys]])
    doc.table(["split", "speakers", "utterances per speaker (median)",
               *[f"{name} median (min–max)" for _, name in keys]], summary)
    doc.p("Over speakers, each counted once; a speaker with few utterances has a noisy score.")
    header = ["split", "speaker", "n", *[name for _, name in keys]]
    rows = [[s, spk, *_group_cells(v, keys)] for s, spk, v in found]
    if len(rows) <= SPEAKER_ROWS:
        doc.table(header, rows)
        return
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    doc.p(f"All {len(rows)} speaker rows (percentages as here): `{csv_path.parent.name}/{csv_path.name}`.")


def _median_range(key: str, values: Sequence[Any]) -> str:
    """'median (min–max)' of the finite values, formatted as the metric is."""
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return "-"
    low, high = fmt_metric(key, min(finite)), fmt_metric(key, max(finite))
    return f"{fmt_metric(key, float(np.median(finite)))} ({low}–{high})"


def _per_class_section(doc: Doc, figures: Figures, run: RunOutputs, label: str, split: str, m: dict,
                       figure: Path) -> None:
    """Precision/recall/F1/support per class on one split, and its confusion-matrix figure."""
    pc = per_class(m["confusion"])
    doc.h(3, f"{label} — {split}: per class")
    named = list(run.names) != list(run.letters)  # a corpus of word labels has no separate names
    doc.table(["class", *(["name"] if named else []), "precision", "recall", "F1", "support"],
              [[c, *([n] if named else []), pct(pc["precision"][j]), pct(pc["recall"][j]), pct(pc["f1"][j]),
                int(pc["support"][j])] for j, (c, n) in enumerate(zip(run.letters, run.names))])
    figures.add(figure, f"confusion matrix {label} {split}", confusion_figure, m["confusion"], run.letters,
                f"{label} — {split}: Macro-F1 {pct(m.get('macro_f1'))} %, UA "
                f"{pct(m.get('balanced_accuracy'))} %, n = {m.get('n')}", names=run.names)


def _decision_section(doc: Doc, d: dict) -> None:
    """A run's decision.json: its biases, Macro-F1/UA before and after per split, and the out-of-fold estimate."""
    doc.p(f"Decision `{d.get('method')}` (decision.json): bias "
          + ", ".join(f"{c} {b:+.3f}" for c, b in zip(d.get("classes", []), d.get("bias", []))))
    rows = [[s, pct(v["before"]["macro_f1"]), pct(v["after"]["macro_f1"]),
             pct(v["before"]["balanced_accuracy"]), pct(v["after"]["balanced_accuracy"])]
            for s, v in d.get("splits", {}).items()]
    if rows:
        doc.table(["split", "Macro-F1 before", "after", "UA before", "after"], rows)
    if "cv" in d:
        doc.p(f"Out-of-fold estimate on dev ({d['cv']['folds']} folds): Macro-F1 "
              f"{pct(d['cv']['macro_f1_untuned'])} -> {pct(d['cv']['macro_f1_oof'])}")


def _write_documents(doc: Doc, out: Path, title: str, html_page: bool) -> list[Path]:
    """report.md, and report.html with the figures embedded when `html_page`; returns the files written."""
    (out / "report.md").write_text(doc.markdown())
    files = [out / "report.md"]
    if html_page:
        (out / "report.html").write_text(doc.html(title))
        files.append(out / "report.html")
    return files

"""Many heads over one loaded copy of the data: grids, config files, and torchrun sharding.

A sweep spec is either a grid, `loss=ce,focal;gamma=2,2.5;weights=uniform,prior` (cartesian
product; list values joined with '+', e.g. features=a/L-1+a/L-3), the name of a built-in preset
(`sheffield7`: the 7 models of table 2 of Chen et al., "1st place solution to Odyssey 2024 Emotion
Recognition Challenge Task 1" (Sheffield)), or a JSON file holding a list of override dicts (or
{"base": {...}, "configs": [...]}). Under torchrun, config i runs on rank i % world; every config
writes results/<i>.json, and rank 0 merges them into results.csv / results.md.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

from ..errors import HeadError
from .config import coerce
from .rundir import write_json

# Table 2 of Chen et al. (Sheffield). Audio feature-set names follow extract-features' '<encoder>/<layers>' names; the
# text features (RoBERTa-large, last-4-layer mean, of ASR or corrected transcripts for all seven) come
# from the command line's --text-features, since their name includes the chosen text set.
PRESETS: dict[str, list[dict[str, Any]]] = {
    "sheffield7": [
        {"loss": "focal", "gamma": 2.0, "weights": "prior", "features": ["whisper-large-v3/L-1"]},
        {"loss": "focal", "gamma": 2.5, "weights": "prior", "features": ["whisper-large-v3/L-1"]},
        {"loss": "ce", "weights": "prior", "features": ["whisper-large-v3/L-1"]},
        {"loss": "focal", "gamma": 2.0, "weights": "uniform", "features": ["whisper-large-v3/L-1"]},
        {"loss": "ce", "weights": "uniform", "features": ["whisper-large-v3/L-1"]},
        {"loss": "focal", "gamma": 2.0, "weights": "prior", "features": ["wavlm-large/L-1"]},
        {"loss": "focal", "gamma": 3.0, "weights": "prior", "features": ["hubert-xlarge/L-1"]},
    ],
}


def expand(spec: str) -> list[dict[str, Any]]:
    """The list of override dicts a sweep spec stands for."""
    if spec in PRESETS:
        return [dict(c) for c in PRESETS[spec]]
    path = Path(spec)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise HeadError(f"--sweep {spec}: file not found")
        payload = json.loads(path.read_text())
        if isinstance(payload, dict):
            base = payload.get("base", {})
            return [{**base, **c} for c in payload.get("configs", [])]
        if not isinstance(payload, list) or not all(isinstance(c, dict) for c in payload):
            raise HeadError(f"--sweep {spec}: expected a list of config dicts or {{'base':..., 'configs': [...]}}")
        return payload
    grid = spec[5:] if spec.startswith("grid:") else spec
    axes = []
    for part in grid.split(";"):
        if not part.strip():
            continue
        if "=" not in part:
            raise HeadError(f"--sweep: {part!r} is not key=value[,value...] (or a preset: {', '.join(PRESETS)})")
        key, values = part.split("=", 1)
        key = key.strip().replace("-", "_")
        axes.append([(key, coerce(key, v.strip())) for v in values.split(",")])
    if not axes:
        raise HeadError(f"--sweep {spec!r}: empty")
    return [dict(combo) for combo in itertools.product(*axes)]


def config_name(index: int, overrides: dict[str, Any]) -> str:
    def short(v: Any) -> str:
        if isinstance(v, list):
            return "+".join(str(x).replace("/", "_") for x in v)
        return str(v).replace("/", "_")

    body = ",".join(f"{k}={short(v)}" for k, v in overrides.items() if k not in ("text_features",))
    return f"{index:03d}-{body}"[:120]


def rank_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def write_result(out: Path, i: int, overrides: dict[str, Any], result) -> None:
    write_json(out / "results" / f"{i:03d}.json", {"index": i, "name": config_name(i, overrides),
                                                     "overrides": overrides, "summary": result.summary})


def result_row(record: dict[str, Any]) -> dict[str, Any]:
    s = record["summary"]
    row: dict[str, Any] = {"index": record["index"], "name": record["name"], "best_epoch": s.get("best_epoch")}
    for split, metrics in s.get("splits", {}).items():
        for key in ("macro_f1", "balanced_accuracy", "accuracy", "ccc_mean"):
            if key in metrics:
                row[f"{split}_{key}"] = metrics[key]
    if "timing" in s:
        row["epoch_s"] = s["timing"]["epoch_s_mean"]
    if "UA_mean" in s:
        row.update(UA_mean=s["UA_mean"], WA_mean=s["WA_mean"])
    return row


def merge_results(out: Path, n: int) -> list[dict[str, Any]]:
    import csv

    rows = []
    for i in range(n):
        path = out / "results" / f"{i:03d}.json"
        if path.is_file():
            rows.append(result_row(json.loads(path.read_text())))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    (out / "results.md").write_text(markdown_table(rows, keys) + "\n")
    return rows


def markdown_table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)

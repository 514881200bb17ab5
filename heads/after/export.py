"""`sercache export-head RUN --to DIR`: a trained head or ensemble as a self-describing directory.

A head exports as: best.safetensors (the checkpoint, unchanged: weights + class order + provenance in its
metadata), config.json, metrics.json (dev/test), classes.json, decision.json (if tuned), provenance.json
(every feature set's featureset.json and, for text features, the text sets they encode: what `predict`
needs to rebuild the features from audio with no store around) and a generated model card README.md.
An ensemble exports its ensemble.json, metrics.json and decision.json, with each member exported under
members/. The directory is loadable by `predict` (audio in, or a store) like the run it came from. With an
`include` hook (sercache/bundle.py: `export-head --include-encoders`) the encoders are copied in as well.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from sercache import __version__

from ..errors import HeadError
from .outputs import load_run
from .predict import resolve_members
from .recipes import PROVENANCE_FILE, FeatureRecipe, head_recipes

EXPORT_FORMAT = "sercache-export/1"
EXPORT_FILE = "export.json"


# copies the models of the recipes into an export directory and returns what it copied (role, names, path, ...)
IncludeEncoders = Callable[[Path, dict[str, FeatureRecipe]], list[dict[str, Any]]]


def export_head(run: str | Path, to: str | Path, verbose: bool = True, include: IncludeEncoders | None = None
                ) -> Path:
    run, to = Path(run), Path(to)
    loaded = load_run(run, read_splits=False)
    if to.exists() and any(to.iterdir()):
        raise HeadError(f"{to}: exists and is not empty; export into a new directory")
    _, spec, member_dirs, _ = resolve_members(run)
    to.mkdir(parents=True, exist_ok=True)
    if spec is None:
        cards = [_export_one(run, to)]
    else:
        members = []
        cards = []
        for i, (entry, d) in enumerate(zip(spec["members"], member_dirs)):
            rel = f"members/{i:02d}-{d.name}"
            cards.append(_export_one(d, to / rel))
            members.append({**entry, "relpath": rel, "path": ""})
        (to / "ensemble.json").write_text(json.dumps({**spec, "members": members}, indent=2, sort_keys=True) + "\n")
        _copy(run, to, ("metrics.json", "decision.json"))
    bundled = include(to, {n: r for c in cards for n, r in c["recipes"].items()}) if include else []
    (to / EXPORT_FILE).write_text(json.dumps({
        "format": EXPORT_FORMAT, "kind": "ensemble" if spec is not None else "head", "source": str(run.resolve()),
        "created": datetime.now(timezone.utc).isoformat(), "toolkit_version": __version__,
        "encoders_included": bool(include)}, indent=2) + "\n")
    (to / "README.md").write_text(model_card(loaded, spec, cards, to, bundled))
    if verbose:
        size = sum(b["bytes"] for b in bundled) / 1e6
        print(f"exported {'ensemble' if spec is not None else 'head'} {run} -> {to}"
              + (f" with {len(bundled)} model(s), {size:.0f} MB" if bundled else ""))
    return to


def _copy(src: Path, dst: Path, names: tuple[str, ...]) -> None:
    for name in names:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)


def _export_one(run: Path, to: Path) -> dict[str, Any]:
    """One head; returns what its model card lists."""
    if not (run / "best.safetensors").is_file():
        raise HeadError(f"{run}: no best.safetensors (export needs a finished train-head run)")
    recipes = head_recipes(run)
    to.mkdir(parents=True, exist_ok=True)
    _copy(run, to, ("best.safetensors", "config.json", "metrics.json", "decision.json"))
    loaded = load_run(run, read_splits=False)
    (to / "classes.json").write_text(json.dumps({"letters": loaded.letters, "names": loaded.names}, indent=2) + "\n")
    (to / PROVENANCE_FILE).write_text(json.dumps({n: r.to_dict() for n, r in recipes.items()}, indent=2,
                                                 sort_keys=True) + "\n")
    return {"name": run.name, "dir": to, "run": loaded, "recipes": recipes}


def model_roles(heads: list[dict[str, Any]]) -> list[str]:
    """The models prediction from audio runs for these heads, by the role names of --model-path, in pipeline
    order: the audio encoder, the ASR, the AEC model, the text encoder."""
    kinds = {r.meta.get("kind") for h in heads for r in h["recipes"].values()}
    texts = {t.get("kind") for h in heads for r in h["recipes"].values() for t in r.texts}
    roles = {"audio": "audio" in kinds, "asr": "asr" in texts, "aec": "corrected" in texts, "text": "text" in kinds}
    return [role for role, used in roles.items() if used]


def _usage(heads: list[dict[str, Any]], to: Path, bundled: list[dict[str, Any]]) -> list[str]:
    """How to run the export: as is when it holds its encoders, else with --model-path; both ways either way."""
    model_paths = " ".join(f"--model-path {role}=PATH" for role in model_roles(heads))
    lines = ["```bash", f"sercache predict {to} recording1.wav recording2.flac --out predictions.csv",
             f"sercache predict {to} --input my_audio_dir/ --segment 5 --out series.jsonl"]
    if bundled:
        lines += ["# other copies of the encoders instead of the bundled ones (hashes are checked)",
                  f"sercache predict {to} recording1.wav --out predictions.csv {model_paths}", "```", "",
                  "The encoders are bundled in `encoders/` (listed in `encoders.json`); predict checks their hashes "
                  "before it loads them, so nothing else is needed:", "",
                  *[f"* {', '.join(b['roles'])}: `{b['path']}` ({b['bytes'] / 1e6:.0f} MB)" for b in bundled]]
    else:
        lines += ["# on a machine without these encoders in its cache: point at local copies (hashes are checked)",
                  f"sercache predict {to} recording1.wav --out predictions.csv {model_paths}", "```", "",
                  "The encoders below must be available (bundled with sercache, hub cache or `--model-path "
                  "ROLE=PATH`) and hash to the recorded weights, or predict refuses. `sercache export-head RUN --to "
                  "DIR --include-encoders` writes a self-contained export that needs none of this."]
    return lines + ["", "Audio of any rate and channel count (resampled to 16 kHz mono); longer than 30 s is "
                    "encoded in 30-s windows."]


def _short(h: str | None) -> str:
    return f"`{h[:16]}…`" if h else "not recorded"


def model_card(run, spec: dict[str, Any] | None, heads: list[dict[str, Any]], to: Path,
               bundled: list[dict[str, Any]] | None = None) -> str:
    """README.md of an export: what it predicts, from which features, how well, and how to run it."""
    kind = f"ensemble ({spec['method']} of {len(heads)} heads)" if spec is not None else "head"
    lines = [f"# sercache speech-emotion {kind}: {run.name}", "",
             f"Classes (output order): {', '.join(f'{c} ({n})' for c, n in zip(run.letters, run.names))}.",
             f"Task: {run.task}. Exported from `{run.path}` with sercache.", "", "## Use", "",
             *_usage(heads, to, bundled or []), "", "## Features", ""]
    for h in heads:
        if len(heads) > 1:
            lines += [f"### {h['name']}", ""]
        for name, r in h["recipes"].items():
            m = r.meta
            lines.append(f"* `{name}` ({m.get('kind')}): model `{m.get('model_name') or m.get('model')}`, weights "
                         f"{_short(m.get('weights_sha256'))}, layers `{m.get('layers')}`, "
                         + (f"Whisper mode {m.get('whisper_mode')}, " if m.get("whisper_mode") else "")
                         + f"stored as {m.get('dtype')}")
            for t in r.texts:
                if t.get("kind") == "asr":
                    dec = t.get("decoding") or {}
                    lines.append(f"  * text from ASR `{t.get('model')}` ({t.get('backend')}, beam "
                                 f"{dec.get('beam_size')}, Whisper mode {dec.get('whisper_mode', 'padded')}, compute "
                                 f"{t.get('compute_type', 'default')}), weights {_short(t.get('weights_sha256'))}")
                elif t.get("kind") == "corrected":
                    lines.append(f"  * corrected by AEC model `{t.get('model')}`, weights "
                                 f"{_short(t.get('aec_weights_sha256'))}")
        lines.append("")
    lines += ["## Scores", "", "| split | n | Macro-F1 | UA | WA | CCC |", "|---|---|---|---|---|---|"]

    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * float(v):.2f}"

    for split, m in (run.metrics.get("splits") or {}).items():
        ccc = m.get("ccc_mean")
        lines.append(f"| {split} | {m.get('n', m.get('n_avd', ''))} | {pct(m.get('macro_f1'))} | "
                     f"{pct(m.get('balanced_accuracy'))} | {pct(m.get('accuracy'))} | "
                     f"{'-' if ccc is None else f'{ccc:.4f}'} |")
    lines += ["", "Scores are those of the run on its own corpus splits; they say nothing about other data.", ""]
    return "\n".join(lines)

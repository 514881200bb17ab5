"""`sercache export-head RUN --to DIR`: a trained head or ensemble as a self-describing directory.

A head exports as: best.safetensors (the checkpoint, unchanged: weights + class order + provenance in its
metadata), config.json, metrics.json (dev/test), classes.json, decision.json (if tuned), provenance.json
(every feature set's featureset.json and, for text features, the text sets they encode: what `predict`
needs to rebuild the features from audio with no store around) and a generated model card README.md.
An ensemble exports its ensemble.json, metrics.json and decision.json, with each member exported under
members/. The directory is loadable by `predict` (audio in, or a store) like the run it came from. With an
`include` hook (sercache/bundle.py: `export-head --include-encoders`) the encoders are copied in as well. With
`onnx=True` (`export-head --onnx`) every head (each ensemble member) also gets head.onnx, the head alone as an
ONNX graph (heads/after/onnx_export.py) that `predict --engine onnx` or plain onnxruntime runs.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from sercache import __version__

from ..errors import HeadError
from .onnx_export import ONNX_FILE, export_onnx
from .outputs import load_run
from .predict import resolve_members
from .recipes import PROVENANCE_FILE, FeatureRecipe, head_recipes

EXPORT_FORMAT = "sercache-export/1"
EXPORT_FILE = "export.json"


# copies the models of the recipes into an export directory and returns what it copied (role, names, path, ...)
IncludeEncoders = Callable[[Path, dict[str, FeatureRecipe]], list[dict[str, Any]]]


def export_head(run: str | Path, to: str | Path, verbose: bool = True, include: IncludeEncoders | None = None,
                onnx: bool = False) -> Path:
    run, to = Path(run), Path(to)
    loaded = load_run(run, read_splits=False)
    if to.exists() and any(to.iterdir()):
        raise HeadError(f"{to}: exists and is not empty; export into a new directory")
    _, spec, member_dirs, _ = resolve_members(run)
    to.mkdir(parents=True, exist_ok=True)
    if spec is None:
        cards = [_export_one(run, to, onnx)]
    else:
        members = []
        cards = []
        for i, (entry, d) in enumerate(zip(spec["members"], member_dirs)):
            rel = f"members/{i:02d}-{d.name}"
            cards.append(_export_one(d, to / rel, onnx))
            members.append({**entry, "relpath": rel, "path": ""})
        (to / "ensemble.json").write_text(json.dumps({**spec, "members": members}, indent=2, sort_keys=True) + "\n")
        _copy(run, to, ("metrics.json", "decision.json"))
    bundled = include(to, {n: r for c in cards for n, r in c["recipes"].items()}) if include else []
    (to / EXPORT_FILE).write_text(json.dumps({
        "format": EXPORT_FORMAT, "kind": "ensemble" if spec is not None else "head", "source": str(run.resolve()),
        "created": datetime.now(timezone.utc).isoformat(), "toolkit_version": __version__,
        "encoders_included": bool(include), "onnx": onnx}, indent=2) + "\n")
    (to / "README.md").write_text(model_card(loaded, spec, cards, to, bundled))
    if verbose:
        size = sum(b["bytes"] for b in bundled) / 1e6
        print(f"exported {'ensemble' if spec is not None else 'head'} {run} -> {to}"
              + (f" with {len(bundled)} model(s), {size:.0f} MB" if bundled else "")
              + (f" and {len(cards)} ONNX graph(s)" if onnx else ""))
    return to


def _copy(src: Path, dst: Path, names: tuple[str, ...]) -> None:
    for name in names:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)


def _export_one(run: Path, to: Path, onnx: bool = False) -> dict[str, Any]:
    """One head (and its ONNX graph if asked); returns what its model card lists."""
    if not (run / "best.safetensors").is_file():
        raise HeadError(f"{run}: no best.safetensors (export needs a finished train-head run)")
    recipes = head_recipes(run)
    to.mkdir(parents=True, exist_ok=True)
    _copy(run, to, ("best.safetensors", "config.json", "metrics.json", "decision.json"))
    loaded = load_run(run, read_splits=False)
    (to / "classes.json").write_text(json.dumps({"letters": loaded.letters, "names": loaded.names}, indent=2) + "\n")
    (to / PROVENANCE_FILE).write_text(json.dumps({n: r.to_dict() for n, r in recipes.items()}, indent=2,
                                                 sort_keys=True) + "\n")
    graph = export_onnx(to / "best.safetensors", to / ONNX_FILE) if onnx else None
    return {"name": run.name, "dir": to, "run": loaded, "recipes": recipes, "onnx": graph}


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
    return "\n".join(lines + onnx_section(heads, to, spec))


OUTPUT_TEXT = {"avd": "arousal, valence, dominance (the training targets' scale)",
               "gender": "female, male probabilities (--aux gender)"}


def onnx_section(heads: list[dict[str, Any]], to: Path, spec: dict[str, Any] | None) -> list[str]:
    """How to run the exported ONNX graph(s) from plain onnxruntime on cached features: names, shapes, dtypes,
    class order, and what `predict` does on top (decision biases, the ensemble's combination); none without."""
    if not any(h.get("onnx") for h in heads):
        return []
    lines = ["## ONNX", "", f"`{ONNX_FILE}` is the head alone as an ONNX graph (opset {heads[0]['onnx']['opset']}); "
             "the encoders (and ASR, AEC) stay PyTorch, so it takes the cached features. `sercache predict "
             f"{to} ... --engine onnx` runs it with onnxruntime instead of the torch head. Batch and frame axes are "
             "dynamic; frames are the cached values as float32, masks are True at valid frames (padded frames may "
             "hold anything). The graph's metadata (key `sercache`) repeats this description and the SHA-256 of "
             "`best.safetensors` it was made from.", ""]
    if spec is not None:
        lines += [f"Every member has its own graph; `sercache predict` combines their outputs as `ensemble.json` "
                  f"says ({spec['method']}" + (f", tie rule {spec['tie_rule']}" if spec["method"] == "vote" else "")
                  + (", then the biases of the ensemble's `decision.json`" if spec.get("decision") else "")
                  + ").", ""]
    for h in heads:
        lines += _onnx_head(h, to, spec is not None, spec is None or bool(spec.get("member_decisions")))
    return lines


def _onnx_head(h: dict[str, Any], to: Path, member: bool, decided: bool) -> list[str]:
    """One graph's inputs and outputs as a table, a snippet, and what predict adds (its decision's biases)."""
    graph, run = h["onnx"], h["run"]
    rel = Path(h["dir"]).relative_to(to) / ONNX_FILE
    sets = {"audio": run.config.get("features") or [], "text": run.config.get("text_features") or []}
    lines = [f"### {h['name']}" if member else f"### {rel}", "", f"File `{rel}`, checked against the torch head "
             f"(largest difference {graph['parity']:.1e}).", "", "| | name | dtype | shape | what |",
             "|---|---|---|---|---|"]
    for i in graph["inputs"]:
        m = i["name"].rsplit("_", 1)[0]
        what = (f"frames of {', '.join(f'`{n}`' for n in sets[m])}" + (" stacked along axis 2" if len(sets[m]) > 1
                else "")) if i["name"].endswith("_frames") else "True at valid frames"
        lines.append(f"| input | `{i['name']}` | {i['dtype']} | [{', '.join(map(str, i['shape']))}] | {what} |")
    classes = graph["classes"].get("letters", [])
    kind = "a sigmoid per class (WBCE)" if graph["loss"] == "wbce" else "softmax"
    for o in graph["outputs"]:
        what = f"class probabilities ({kind}) in the order {', '.join(classes)}" if o["name"] == "probs" \
            else OUTPUT_TEXT[o["name"]]
        lines.append(f"| output | `{o['name']}` | {o['dtype']} | [{', '.join(map(str, o['shape']))}] | {what} |")
    lines += ["", *_onnx_example(graph, sets, rel)]
    if decided and (h["dir"] / "decision.json").is_file():
        lines += ["", "`sercache predict` decides argmax(log probs + bias) with the biases of `decision.json` "
                  "(in class order); add them for the same class."]
    if run.config.get("max_seconds"):
        lines += ["", f"`sercache predict` keeps the first {run.config['max_seconds']} s of frames of each utterance."]
    return lines + [""]


def _onnx_example(graph: dict[str, Any], sets: dict[str, list[str]], rel: Path) -> list[str]:
    """A runnable snippet: one utterance of a sercache store through the graph."""
    lines = ["```python", "import numpy as np", "import onnxruntime as ort", "from sercache.cache import open_store",
             "", "store = open_store('CACHE_DIR')", f"session = ort.InferenceSession('{rel}')", "feed = {}"]
    for i in graph["inputs"]:
        if not i["name"].endswith("_frames"):
            continue
        m, names = i["name"][:-len("_frames")], sets[i["name"][:-len("_frames")]]
        parts = [f"store['{n}'].get('UTTERANCE_ID')" for n in names]
        value = parts[0] if len(parts) == 1 else \
            f"np.concatenate([a if a.ndim == 3 else a[:, None] for a in ({', '.join(parts)})], 1)"
        lines += [f"x = {value}.astype(np.float32)[None]  # [1, frames, ...]", f"feed['{m}_frames'] = x",
                  f"feed['{m}_mask'] = np.ones(x.shape[:2], bool)"]
    names = [o["name"] for o in graph["outputs"]]
    lines += [f"out = dict(zip({names}, session.run({names}, feed)))",
              f"classes = {graph['classes'].get('letters')}"]
    if "probs" in names:
        lines.append("print(classes[int(out['probs'][0].argmax())], out['probs'][0])")
    return lines + ["```"]

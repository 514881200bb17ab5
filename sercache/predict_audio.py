"""`sercache predict RUN AUDIO... | --input DIR_OR_MANIFEST`: audio in, emotion out, no feature store needed.

The head's (or each ensemble member's) feature sets say how they were made: encoder, weights hash,
layers, Whisper mode, storage dtype; for text features also the text sets they encode (ASR model,
backend, compute type and decoding; AEC model, weights hash and decoding; see `FeatureRecipe`). This
module reruns that chain on new audio with the extraction code itself (`load_encoder` + `encode`, the
transcription backends, `aec.generate`, `TextEncoder`), rounds the features to the storage dtype as
the writer does, and hands them to the same `HeadPredictor` as a store would (an in-memory pool).
With `store`, the chain runs through the extraction stages instead, so the features are cached there.

Where the recipe comes from: `provenance.json` of an exported head (`export-head`), else the run's
store (featureset.json and the text sets' textset.json), else the checkpoint's own provenance (enough
for audio heads; text heads then need a store or an export). A recorded model is looked up by
`--model-path` (ROLE=PATH or RECORDED=PATH, roles audio, asr, aec, text), an export's bundled copy
(`export-head --include-encoders`), its recorded path, then its recorded name (bundled or hub); its weights
must hash to the recorded value (sercache/recorded_models.py).

Per-file problems (missing, unreadable, silent, too short) give an error row; the others are predicted.
"""

from __future__ import annotations

import csv
import glob
import json
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from sercache.cache import PackedFeatures, open_store
from sercache.cache.encoding import decode, encode
from sercache.cache.texts import TextSet
from sercache.extract import ExtractConfig, run_extraction
from sercache.extract.aec import correct_text_set, load_seq2seq
from sercache.extract.aec_fallback import correct_texts, text_set_threshold
from sercache.extract.audio import SAMPLE_RATE, AudioError, load, probe
from sercache.extract.encoders import load_encoder
from sercache.extract.layers import parse_layers
from sercache.extract.manifest import AUDIO_SUFFIXES, ManifestError, Utterance, load_manifest
from sercache.extract.plan import Pending, batches
from sercache.extract.text_features import TextEncoder
from sercache.extract.transcribe import config_from_metadata, load_backend, run_transcription
from sercache.heads.after.onnx_export import onnx_path
from sercache.heads.after.predict import (
    SPEAKER_NORM_NEEDS,
    ClassRestriction,
    HeadPredictor,
    combine_members,
    resolve_members,
    unlabelled_table,
)
from sercache.heads.after.recipes import FeatureRecipe, head_recipes
from sercache.heads.errors import HeadError
from sercache.heads.fit.rundir import split_outputs
from sercache.heads.inputs.features import FeaturePool, default_device
from sercache.heads.inputs.labels import ATTRIBUTES, ClassSet

from .bundle import bundled_models
from .recorded_models import encoder_need, parse_model_paths, text_model_need
from .segments import Segmenting, plot_series

WHOLE_FILES = Segmenting()  # no --segment
PRECISION_OF = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def _precision(recorded: str | None, override: str, device: torch.device, notes: list[str], what: str) -> str:
    if override != "auto":
        return override
    precision = PRECISION_OF.get(recorded or "", "fp32")
    if device.type == "cpu" and precision != "fp32":
        notes.append(f"{what} ran in {recorded} when the features were extracted; on CPU it runs in float32")
        return "fp32"
    return precision


# ----------------------------------------------------------------------------------- inputs
@dataclass
class Item:
    """One row of the output: a file or one segment of it."""

    id: str
    path: str
    start: float | None = None
    end: float | None = None
    error: str = ""
    transcript: str | None = None

    def utterance(self):
        return Utterance(self.id, self.path, self.start, self.end)


def audio_items(audio: Sequence[str] = (), input: str = "", segmenting: Segmenting = WHOLE_FILES) -> list[Item]:
    """Files from the command line (directories and patterns expanded by `expand_audio_args`; id: the file name,
    or the path as given when names repeat) or a directory/manifest (ids as extraction gives them), cut into
    pieces if asked (fixed windows or speech segments: sercache/segments.py); the header is checked here, so
    missing, unreadable, empty and silent files become error rows."""
    if bool(audio) == bool(input):
        raise HeadError("give audio files or --input (a directory or a manifest), not both" if audio else
                        "give audio files or --input (a directory or a manifest)")
    if input:
        utts = load_manifest(input)
    else:
        audio = expand_audio_args(audio)
        names = [Path(a).name for a in audio]
        unique = len(set(names)) == len(names)
        utts = [Utterance(n if unique else a, str(Path(a))) for n, a in zip(names, audio)]
        if len({u.id for u in utts}) != len(utts):
            raise HeadError("the same audio file is given twice")
    return [item for u in utts for item in _pieces(u, segmenting)]


def _pieces(u: Utterance, segmenting: Segmenting) -> list[Item]:
    """One recording as output rows: itself, or its segments (ids `<id>@<start>-<end>`, seconds from its start)."""
    try:
        info = probe(u)
        if not segmenting.active:
            return [Item(u.id, u.path, u.start, u.end)]
        cuts = (segmenting.speech_segments(load(u).samples) if segmenting.speech
                else segmenting.windows(info.samples / SAMPLE_RATE))
    except AudioError as err:
        return [Item(u.id, u.path, u.start, u.end, error=str(err))]
    if not cuts:
        return [Item(u.id, u.path, u.start, u.end, error=f"{u.path}: no speech segment of at least "
                                                          f"{segmenting.min_seconds:g} s found")]
    first = u.start or 0.0
    return [Item(f"{u.id}@{a:.2f}-{b:.2f}", u.path, round(first + a, 6), round(first + b, 6)) for a, b in cuts]


def expand_audio_args(audio: Sequence[str]) -> list[str]:
    """The files named by the command line's audio arguments: a file as given, a directory as its audio files (as
    --input DIR finds them), a pattern that names no file (a glob the shell passed on unexpanded) as its matches.
    An argument that gives no file is an error naming it, rather than a run on nothing."""
    files: list[str] = []
    for arg in audio:
        path = Path(arg)
        if path.is_dir():
            try:
                files += [u.path for u in load_manifest(path)]
            except ManifestError:
                raise HeadError(f"{arg}: a directory without audio files ({', '.join(AUDIO_SUFFIXES)})") from None
        elif not path.exists() and glob.has_magic(arg):
            found = sorted(p for p in glob.glob(arg, recursive=True) if Path(p).is_file())
            if not found:
                raise HeadError(f"{arg}: no file matches this pattern")
            files += found
        else:
            files.append(arg)  # missing or unreadable files become error rows, as before
    return files


def _decode(items: list[Item]) -> dict[str, np.ndarray]:
    """16-kHz mono samples of the items without an error; decoding problems become error rows."""
    audio = {}
    for item in items:
        if item.error:
            continue
        try:
            audio[item.id] = load(item.utterance()).samples
        except AudioError as err:
            item.error = str(err)
    return audio


# ----------------------------------------------------------------------------------- in-memory features
class MemoryFeatureSet:
    """Features computed in this process, rounded to the storage dtype as the writer stores them; what
    FeaturePool uses of a store's FeatureSet (ids, lengths, dtype, frame_shape, meta, load, get)."""

    def __init__(self, name: str, meta: dict[str, Any], rows: dict[str, np.ndarray]):
        self.name, self.meta, self.dtype = name, dict(meta, name=name), meta.get("dtype") or "float16"
        self.frame_shape = tuple(meta.get("frame_shape") or next(iter(rows.values())).shape[1:])
        self.ids = list(rows)
        self._rows = rows

    @classmethod
    def rounded(cls, name: str, meta: dict[str, Any], features: dict[str, np.ndarray]) -> "MemoryFeatureSet":
        dtype = meta.get("dtype") or "float16"
        rows = {u: decode(encode(x, dtype, "clip", f"utterance {u!r}").data, dtype) for u, x in features.items()}
        return cls(name, meta, rows)

    def lengths(self, ids: Sequence[str] | None = None) -> np.ndarray:
        return np.array([len(self._rows[u]) for u in (self.ids if ids is None else ids)], dtype=np.int64)

    def get(self, uid: str, verify: bool = False) -> np.ndarray:
        return self._rows[uid]

    def load(self, ids: Sequence[str] | None = None, device: str = "cpu", dtype: Any = None,
             pin_memory: bool = False, verify: bool = False):
        ids = list(self.ids if ids is None else ids)
        target = dtype or getattr(torch, self.dtype)
        lengths = torch.as_tensor(self.lengths(ids))
        offsets = torch.zeros(len(ids) + 1, dtype=torch.long)
        torch.cumsum(lengths, 0, out=offsets[1:])
        frames = torch.cat([torch.from_numpy(np.ascontiguousarray(self._rows[u])).to(target) for u in ids]) \
            if ids else torch.zeros((0, *self.frame_shape), dtype=target)
        return PackedFeatures(frames.to(device), offsets, ids)


class Chain:
    """Runs recipes on decoded audio; models and intermediate texts are shared across an ensemble's members."""

    def __init__(self, device: torch.device, overrides: dict[str, str], precision: str = "auto"):
        self.device, self.overrides, self.precision = device, overrides, precision
        self.notes: list[str] = []
        self.texts: dict[str, dict[str, str]] = {}  # text set name -> id -> text, of the items being predicted
        self.loaded: dict[tuple, Any] = {}  # every model once, whatever the number of batches of items

    def model(self, key: tuple, load: Callable[[], Any]) -> Any:
        if key not in self.loaded:
            self.loaded[key] = load()
        return self.loaded[key]

    def features(self, recipes: dict[str, FeatureRecipe], items: list[Item]) -> dict[str, "MemoryFeatureSet"]:
        """Every recipe's features of these items, computed in memory (audio sets first: a text set's ASR
        runs on the audio they decoded); an item that fails gets its error."""
        by_id = {i.id: i for i in items}
        waves = _decode(items)
        self.texts = {}
        sets: dict[str, MemoryFeatureSet] = {}
        for name, r in recipes.items():
            if r.meta.get("kind") == "audio":
                sets[name] = MemoryFeatureSet.rounded(name, r.meta, self.audio_features(r, waves, by_id))
        for name, r in recipes.items():
            if r.meta.get("kind") == "text":
                texts = self.text_of(r, {u: w for u, w in waves.items() if not by_id[u].error}, by_id)
                for uid, text in texts.items():
                    by_id[uid].transcript = text
                sets[name] = MemoryFeatureSet.rounded(name, r.meta, self.text_features(r, texts))
        return sets

    # ---- audio encoders
    def audio_features(self, recipe: FeatureRecipe, audio: dict[str, np.ndarray], items: dict[str, Item],
                       batch: int = 8) -> dict[str, np.ndarray]:
        meta = recipe.meta
        path = encoder_need(recipe).resolve(self.overrides)
        layers = parse_layers(meta.get("layers") or "-1")
        precision = _precision(meta.get("compute_dtype"), self.precision, self.device, self.notes, recipe.name)
        mode = meta.get("whisper_mode") or "padded"
        encoder = self.model(("audio", path, precision, mode), lambda: load_encoder(path, self.device, precision, mode))
        encoder.check_layers(layers)
        out: dict[str, np.ndarray] = {}
        ok = []
        for uid, wave in audio.items():
            if len(wave) < encoder.min_samples:
                items[uid].error = (f"{items[uid].path}: too short ({len(wave)} samples at 16 kHz; "
                                    f"{recipe.name} needs at least {encoder.min_samples})")
            else:
                ok.append(uid)
        ok.sort(key=lambda u: len(audio[u]))  # length-sorted batches, as extraction makes them
        for start in range(0, len(ok), batch):
            group = ok[start:start + batch]
            for uid, frames in zip(group, encoder.encode([audio[u] for u in group], layers)):
                if not torch.isfinite(frames).all():
                    items[uid].error = f"{items[uid].path}: {recipe.name} output has NaN/inf"
                    continue
                out[uid] = frames.numpy()
        shape = list(meta.get("frame_shape") or [])
        got = list(next(iter(out.values())).shape[1:]) if out else shape
        if shape and got != shape:
            raise HeadError(f"{recipe.name}: the encoder gives frames of shape {got}, the head was trained on {shape}")
        return out

    # ---- text: ASR -> AEC -> text encoder
    def text_of(self, recipe: FeatureRecipe, audio: dict[str, np.ndarray], items: dict[str, Item]
                ) -> dict[str, str]:
        chain = recipe.texts
        if not chain:
            raise HeadError(f"text features {recipe.name!r}: how their transcripts were made is not recorded (the "
                            "run's store is not available and the checkpoint has no text chain); predict with the "
                            "store around, or export the head (export-head) where its store is available")
        return self._text(chain, audio, items, recipe.name)

    def _text(self, chain: list[dict[str, Any]], audio: dict[str, np.ndarray], items: dict[str, Item],
              what: str) -> dict[str, str]:
        top = chain[0]
        name = top.get("name", "")
        if name in self.texts:
            return self.texts[name]
        kind = top.get("kind")
        if kind == "human":
            raise HeadError(f"{what}: the head encodes human transcripts ({name!r}); new audio has none")
        if kind == "asr":
            texts = self._transcribe(top, audio, items)
        elif kind == "corrected":
            if len(chain) < 2:
                raise HeadError(f"{what}: the ASR text set that {name!r} corrects is not recorded")
            source = self._text(chain[1:], audio, items, what)
            texts = self._correct(top, source)
        else:
            raise HeadError(f"{what}: unknown text set kind {kind!r} of {name!r}")
        self.texts[name] = texts
        return texts

    def _transcribe(self, meta: dict[str, Any], audio: dict[str, np.ndarray], items: dict[str, Item]
                    ) -> dict[str, str]:
        path = text_model_need(meta).resolve(self.overrides)
        cfg = config_from_metadata(meta, path, self.device.type)
        backend = self.model(("asr", path, repr(cfg)), lambda: load_backend(cfg))
        ids = [u for u in audio if not items[u].error]
        texts: dict[str, str] = {}
        for start in range(0, len(ids), cfg.batch_size):
            group = ids[start:start + cfg.batch_size]
            for uid, result in zip(group, backend.transcribe([audio[u] for u in group])):
                texts[uid] = result["text"]
        return texts

    def _correct(self, meta: dict[str, Any], source: dict[str, str]) -> dict[str, str]:
        """The AEC step as correct_text_set made the text set: same decoding, same fallback threshold."""
        path = text_model_need(meta).resolve(self.overrides)
        decoding = meta.get("decoding") or {}
        tokenizer, model = self.model(("aec", path), lambda: load_seq2seq(path, self.device.type))
        ids = sorted(source)  # correct_text_set's order
        out = correct_texts(model, tokenizer, [source[u] for u in ids], text_set_threshold(meta),
                            int(decoding.get("batch_size", 32)), int(decoding.get("beam_size", 4)),
                            int(decoding.get("max_length", 128)))
        return {u: c.text for u, c in zip(ids, out)}

    def text_features(self, recipe: FeatureRecipe, texts: dict[str, str]) -> dict[str, np.ndarray]:
        meta = recipe.meta
        path = encoder_need(recipe).resolve(self.overrides)
        precision = _precision(meta.get("compute_dtype"), self.precision, self.device, self.notes, recipe.name)
        encoder = self.model(("text", path, precision), lambda: TextEncoder(path, self.device, precision))
        layers = parse_layers(meta.get("layers") or "mean(-4..-1)")
        tokens = {u: encoder.tokens(t) for u, t in texts.items()}
        pending = [Pending(Utterance(u, ""), len(tokens[u]), len(tokens[u]) + encoder.n_special)
                   for u in sorted(tokens)]
        out = {}
        for group in batches(pending, lambda n: n + encoder.n_special, 64 * 64, 64):  # run_text_extraction's
            for item, (rows, _) in zip(group, encoder.encode([tokens[p.utt.id] for p in group], layers)):
                out[item.utt.id] = rows.numpy()
        return out


STREAM_ITEMS = 256  # files (or segments) decoded, encoded and predicted at a time: memory does not grow with N


@dataclass
class Heads:
    """The head, ensemble or export that predicts, applied to one batch of items' features at a time."""

    path: Path
    spec: dict[str, Any] | None
    member_dirs: list[Path]
    decision: str
    engine: str
    restriction: ClassRestriction | None

    def predict(self, source: Any, usable: list[str], rows: list[dict[str, Any]], device: torch.device) -> None:
        """Fill the output rows of `usable` ids from `source` (a store path, or in-memory feature sets)."""
        if not usable:
            return
        pool = FeaturePool(source, device)
        predictors = [HeadPredictor(d, pool, engine=self.engine) for d in self.member_dirs]
        letters = list(predictors[0].classes.letters)
        table = unlabelled_table(usable, predictors[0].classes)
        index = np.arange(len(table))
        member_out = [split_outputs(table, index, p.predict(table, index))[0] for p in predictors]
        result = combine_members(self.path, self.spec, self.member_dirs, member_out, letters, self.decision,
                                 self.restriction, [p.sigmoid for p in predictors]).out
        where = {u: k for k, u in enumerate(result.ids)}
        for row in rows:
            k = where.get(row["FileName"])
            if k is None:
                continue
            if result.probs is not None:
                row["Prediction"] = letters[int(result.decision[k])]
                if self.restriction is not None:
                    row["classes"] = " ".join(self.restriction.letters)
                row.update({f"prob_{c}": round(float(p), 6) for c, p in zip(letters, result.probs[k])})
            if result.avd_pred is not None:
                row.update({f"pred_{a}": round(float(v), 4) for a, v in zip(ATTRIBUTES, result.avd_pred[k])})


# ----------------------------------------------------------------------------------- store mode
def _through_store(store: str, recipes: dict[str, FeatureRecipe], audio_items_: list[Item], chain: Chain) -> None:
    """Run the recipes as the extraction stages do, into `store` (what is there already is reused)."""
    good = [i for i in audio_items_ if not i.error]
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "manifest.csv"
        with open(manifest, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "path", "start", "end"])
            writer.writerows([i.id, str(Path(i.path).resolve()), "" if i.start is None else i.start,
                              "" if i.end is None else i.end] for i in good)
        for r in recipes.values():
            meta = r.meta
            if meta.get("kind") == "audio":
                path = encoder_need(r).resolve(chain.overrides)
                run_extraction(ExtractConfig(input=str(manifest), store=store, model=path, layers=meta.get("layers"),
                                             name=r.name, whisper_mode=meta.get("whisper_mode") or "padded",
                                             dtype=meta.get("dtype") or "float16", on_error="skip", workers=0,
                                             device=chain.device.type, progress=False,
                                             precision=_precision(meta.get("compute_dtype"), chain.precision,
                                                                  chain.device, chain.notes, r.name)))
                continue
            for meta_t in reversed(r.texts):
                if meta_t.get("kind") == "asr":
                    path = text_model_need(meta_t).resolve(chain.overrides)
                    model = meta_t.get("model") if path in (meta_t.get("model_path"), meta_t.get("model")) else path
                    cfg = config_from_metadata(meta_t, model, chain.device.type, input=str(manifest), store=store)
                    run_transcription(replace(cfg, name=meta_t["name"], on_error="skip"))
                elif meta_t.get("kind") == "corrected":
                    path = text_model_need(meta_t).resolve(chain.overrides)
                    decoding = meta_t.get("decoding") or {}
                    threshold = text_set_threshold(meta_t)  # the recorded one, not the model directory's
                    correct_text_set(open_store(store), meta_t["source"], meta_t.get("model") if path in (
                        meta_t.get("model_path"), meta_t.get("model")) else path, name=meta_t["name"],
                        batch_size=int(decoding.get("batch_size", 32)), beam_size=int(decoding.get("beam_size", 4)),
                        max_length=int(decoding.get("max_length", 128)), device=chain.device.type, progress=False,
                        fallback=False if threshold is None else threshold)
                else:
                    raise HeadError(f"{r.name}: the head encodes {meta_t.get('kind')} text {meta_t.get('name')!r}; "
                                    "new audio has none")
            text = (meta.get("text_source") or {}).get("name") or r.texts[0]["name"]
            path = encoder_need(r).resolve(chain.overrides)
            run_extraction(ExtractConfig(store=store, model=path, text=text, layers=meta.get("layers"), name=r.name,
                                         dtype=meta.get("dtype") or "float16", device=chain.device.type,
                                         progress=False, precision=_precision(meta.get("compute_dtype"),
                                                                              chain.precision, chain.device,
                                                                              chain.notes, r.name)))
            texts = TextSet(open_store(store), text)
            for i in good:
                if i.id in texts:
                    i.transcript = texts.text(i.id)
    opened = open_store(store)
    for i in good:  # what extraction recorded as failed (too short, NaN output), or any set without the file
        for name in recipes:
            fs = opened[name]
            if i.id not in fs and not i.error:
                failed = {f["id"]: f["error"] for f in fs.failures}
                i.error = failed.get(i.id) or f"{i.path}: not in feature set {name!r} after extraction"


# ----------------------------------------------------------------------------------- entry point
def predict_audio(path: str | Path, audio: Sequence[str] = (), input: str = "", out: str = "", store: str = "",
                  segment: Segmenting | str | float = "", model_paths: Sequence[str] = (), decision: str = "auto",
                  device: str = "auto", precision: str = "auto", verbose: bool = True, engine: str = "torch",
                  classes: Sequence[str] = (), plot: bool = False) -> list[dict[str, Any]]:
    """Predict every file (or segment: `segment` seconds, 'speech', or a Segmenting) with a head, an ensemble or
    an exported head; returns the output rows (also written to `out`: .csv, or .jsonl / .json for JSON lines;
    stdout as CSV when `out` is empty). `engine` onnx runs the heads' head.onnx; `classes` predicts within them
    (a `classes` column says which); `plot`: a PNG per recording of its segments' probabilities over time."""
    segmenting = segment if isinstance(segment, Segmenting) else Segmenting.parse(segment)
    path = Path(path)
    run, spec, member_dirs, _ = resolve_members(path)
    refuse_speaker_norm(member_dirs)
    restriction = ClassRestriction.parse(classes, ClassSet(tuple(run.letters), tuple(run.names)))
    for d in member_dirs if engine == "onnx" else ():
        onnx_path(d)  # before any encoder runs
    recipes: dict[str, FeatureRecipe] = {}
    for d in member_dirs:
        recipes.update(head_recipes(d))
    items = audio_items(audio, input, segmenting)
    chain = Chain(default_device(device), {**bundled_models(path), **parse_model_paths(model_paths)}, precision)
    heads = Heads(path, spec, member_dirs, decision, engine, restriction)
    rows_out: list[dict[str, Any]] = []
    if store:
        _through_store(store, recipes, items, chain)
        rows_out = [_row(i) for i in items]
        heads.predict(store, [i.id for i in items if not i.error], rows_out, chain.device)
    for start in range(0, len(items) if not store else 0, STREAM_ITEMS):  # bounded memory on many files
        chunk = items[start:start + STREAM_ITEMS]
        sets = chain.features(recipes, chunk)
        rows = [_row(i) for i in chunk]
        heads.predict(sets, [i.id for i in chunk if not i.error and all(i.id in s.ids for s in sets.values())],
                      rows, chain.device)
        rows_out += rows
    for row, item in zip(rows_out, items):
        if not item.error and "Prediction" not in row and "pred_EmoAct" not in row:
            row["error"] = item.error = "no features (see the notes)"
        row["status"] = "error" if item.error else "ok"
        row["error"] = item.error
    _write_rows(out, rows_out, segmenting.active)
    if plot:
        plot_series(rows_out, out)
    if verbose:
        good = sum(r["status"] == "ok" for r in rows_out)
        print(f"predicted {good} of {len(rows_out)} {'segment' if segmenting.active else 'file'}(s) with {path}"
              + (f" -> {out}" if out else ""), file=sys.stderr)
        for row in rows_out:
            if row["status"] != "ok":
                print(f"  {row['FileName']}: {row['error']}", file=sys.stderr)
        for note in dict.fromkeys(chain.notes):
            print(f"note: {note}", file=sys.stderr)
    return rows_out


def refuse_speaker_norm(member_dirs: Sequence[Path]) -> None:
    """Audio files name no speaker, so a head trained with --speaker-norm (inputs standardised with each speaker's
    own statistics) cannot be given the inputs it was trained on: refused before any encoder runs, saying why and
    what to do instead."""
    for d in member_dirs:
        if json.loads((Path(d) / "config.json").read_text()).get("speaker_norm"):
            raise HeadError(f"{d}: {SPEAKER_NORM_NEEDS}; audio files name no speaker, so predicting from audio cannot "
                            "standardise them: extract the files into a store (sercache extract), list them with "
                            "their speakers in a label table, and predict from the store")


def _row(item: Item) -> dict[str, Any]:
    row: dict[str, Any] = {"FileName": item.id, "path": item.path}
    if item.start is not None or item.end is not None:
        row.update(start=item.start, end=item.end)
    if item.transcript is not None:
        row["transcript"] = item.transcript
    return row


def _write_rows(out: str, rows: list[dict[str, Any]], segments: bool) -> None:
    keys = ["FileName", "path", *(["start", "end"] if segments else []), "status", "error"]
    keys += [k for k in dict.fromkeys(k for r in rows for k in r) if k not in keys]
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    if out and Path(out).suffix.lower() in (".jsonl", ".json"):
        with open(out, "w") as handle:
            for r in rows:
                handle.write(json.dumps({k: r.get(k) for k in keys if k in r}) + "\n")
        return
    handle = open(out, "w", newline="") if out else sys.stdout
    try:
        writer = csv.DictWriter(handle, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in keys})
    finally:
        if out:
            handle.close()

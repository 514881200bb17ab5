"""`predict-head`: run a trained head or an ensemble on cached features (labels optional) and write the
challenge submission files plus the probabilities.

Which utterances: `ids` (a text file with one id per line, or any CSV with a FileName/Filename/id
column), or `labels` + `split` (e.g. labels_consensus.csv and test3; labels present there are
scored), or by default every utterance the feature sets hold. Which features: by default the names
recorded in the run's config; other names may be given (a store laid out differently), but the
checkpoint refuses sets whose provenance (encoder, layers, reduction, dims, weights, text source)
differs from what it was trained on.

Files written to `out` (MSP-Podcast's id and class headers FileName, EmoClass; other corpora's id, label):
  submission_categorical.csv  `FileName,EmoClass` with the predicted class letter (format 'letter',
                              default; EmoClass as in labels_consensus.csv), or, format 'baseline', the
                              challenge baseline's `Filename,Prediction` where Prediction is the quoted,
                              comma-separated vector of the 8 class scores in its order A S H U F D C N
                              (scores whose argmax is the decision: probabilities after the decision's
                              biases; vote shares for a majority vote, the winner nudged by 1e-3 on ties);
  submission_attributes.csv   `FileName,EmoAct,EmoVal,EmoDom` (heads with A/V/D outputs);
  probabilities.csv           the trainer's predictions layout (truth if known, Prediction, prob_*, A/V/D);
  predict.json                what was run: model, features, engine, decision, kept classes, counts, metrics if
                              labels exist.

`engine` onnx runs each head's head.onnx (`export-head --onnx`) with onnxruntime instead of the torch head.
`classes` (`--classes`) predicts within a subset of the head's classes (see ClassRestriction).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from sercache.cache.columns import ID_COLUMNS, canonical_split, pick_column

from ..errors import HeadError
from ..fit.checkpoint import provenance
from ..fit.config import HeadConfig
from ..fit.prepare import Prepared
from ..fit.probe import load_checkpoint
from ..fit.rundir import SplitOutputs, split_outputs, summary_table, write_json, write_predictions
from ..fit.scoring import infer
from ..inputs.corpora import PREDICTION_COLUMNS, named_columns, read_labels, resolve_corpus
from ..inputs.corpora.msp import MSP_CLASSES
from ..inputs.features import FeaturePool, build_modalities, default_device, standardise_speakers
from ..inputs.labels import ATTRIBUTES, ClassSet, LabelTable
from .decision import Decision, Stacker, log_scores
from .ensemble import Combined, combine
from .onnx_export import OnnxHead
from .outputs import RunOutputs, load_run, resolve_member_path, score

FORMATS = ("letter", "baseline")
ENGINES = ("torch", "onnx")
# why a --speaker-norm head cannot predict without speakers, and what to do (store mode and audio mode say it)
SPEAKER_NORM_NEEDS = ("the head was trained with --speaker-norm: its inputs are standardised with the statistics of "
                      "each utterance's own speaker, over that speaker's utterances in the split predicted, so "
                      "predicting needs every utterance's speaker: predict from a store with --labels TABLE (a label "
                      "table naming each utterance's speaker, e.g. a speaker column) and --split SPLIT")


# ----------------------------------------------------------------------------------- which utterances
def read_ids(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise HeadError(f"{path}: id list not found")
    text = path.read_text(encoding="utf-8-sig")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise HeadError(f"{path}: empty id list")
    header = next(csv.reader([lines[0]]))
    if len(header) > 1 or pick_column(header, ID_COLUMNS):
        col = pick_column(header, ID_COLUMNS)
        if col is None:
            raise HeadError(f"{path}: CSV without an id column ({'/'.join(ID_COLUMNS)}); "
                            f"header {', '.join(header)}")
        ids = [r[col].strip() for r in csv.DictReader(lines)]
    else:
        ids = [line.strip() for line in lines]
    dup = sorted({u for u in ids if ids.count(u) > 1}) if len(set(ids)) != len(ids) else []
    if dup:
        raise HeadError(f"{path}: duplicate id(s), e.g. {dup[:3]}")
    return ids


def unlabelled_table(ids: Sequence[str], classes: ClassSet, split: str = "predict") -> LabelTable:
    n = len(ids)
    return LabelTable(classes, list(ids), np.array([split] * n, dtype=object), np.full(n, -1, np.int64),
                      np.array([""] * n, dtype=object), np.full((n, 3), np.nan, np.float32), np.full(n, -1, np.int64),
                      np.array([""] * n, dtype=object))


def target_table(classes: ClassSet, corpus: str, pool, feature_names: Sequence[str], ids: str = "", labels: str = "",
                 split: str = "", config: dict[str, Any] | None = None) -> tuple[LabelTable, str]:
    """The utterances to predict: a split of a label file (read with the run's corpus, --classes and columns),
    a list of ids, or everything the feature sets hold."""
    config = config or {}
    if ids and labels:
        raise HeadError("give either --ids or --labels/--split, not both")
    split = canonical_split(split) if split else split
    if labels:
        table = read_labels(corpus, labels, "", config.get("classes") or (), columns=named_columns(config))
        if list(table.classes.letters) != list(classes.letters):
            raise HeadError(f"{labels}: class order {table.classes.letters} differs from the model's {classes.letters}")
        if split:
            if split not in table.splits():
                raise HeadError(f"--split {split!r}: not in {labels} (splits: {', '.join(table.splits())})")
            table = table.take(table.rows(split))
        return table, split or "all"
    if split:
        raise HeadError("--split needs --labels (the file that says which utterance is in which split)")
    if ids:
        return unlabelled_table(read_ids(ids), classes), Path(ids).stem
    names = list(feature_names)
    common = list(pool.featureset(names[0]).ids)
    for n in names[1:]:
        have = set(pool.featureset(n).ids)
        common = [u for u in common if u in have]
    if not common:
        raise HeadError(f"the feature sets {', '.join(names)} share no utterance")
    return unlabelled_table(common, classes), "all"


# ----------------------------------------------------------------------------------- one head
def _config(config: dict[str, Any]) -> HeadConfig:
    import dataclasses

    known = {f.name for f in dataclasses.fields(HeadConfig)}
    return HeadConfig.from_dict({k: v for k, v in config.items() if k in known})


class HeadPredictor:
    """A trained head bound to a feature pool: checks provenance first, then predicts table rows."""

    def __init__(self, run_dir: str | Path, pool, features: Sequence[str] | None = None,
                 text_features: Sequence[str] | None = None, engine: str = "torch"):
        if engine not in ENGINES:
            raise HeadError(f"unknown engine {engine!r}; choose {', '.join(ENGINES)}")
        self.run = load_run(run_dir, read_splits=False)
        if self.run.kind != "run":
            raise HeadError(f"{run_dir}: not a trained head")
        self.cfg = _config(self.run.config)
        self.audio = list(features) if features else list(self.cfg.features)
        self.text = list(text_features) if text_features else list(self.cfg.text_features)
        self.pool = pool
        ckpt = self.run.path / "best.safetensors"
        stored = self.run.config.get("resolved", {}).get("features", {})
        given = {"audio": self.audio, "text": self.text}
        for modality in ("audio", "text"):
            if bool(stored.get(modality)) != bool(given[modality]):
                raise HeadError(f"{run_dir}: the head was trained {'with' if stored.get(modality) else 'without'} "
                                f"{modality} features, but {len(given[modality])} {modality} set(s) were given")
        want = {m: [provenance({**pool.featureset(n).meta, "name": n}) for n in names]
                for m, names in given.items() if names}
        self.model, self.info = load_checkpoint(ckpt, classes=self.run.letters, features=want,
                                                device=str(pool.device))  # a FusionHead or a ProbeHead
        self.classes = ClassSet(tuple(self.info["classes"]["letters"]), tuple(self.info["classes"]["names"]))
        self.onnx = OnnxHead(self.run.path) if engine == "onnx" else None  # checked against best.safetensors

    @property
    def sigmoid(self) -> bool:
        """Whether the class probabilities are independent sigmoids (WBCE), not one softmax."""
        return not getattr(self.model, "is_probe", False) and self.cfg.loss == "wbce"

    @property
    def feature_names(self) -> list[str]:
        return [*self.audio, *self.text]

    def modalities(self, table: LabelTable):
        """The head's feature sets for every row of `table`; with --speaker-norm, standardised per (split, speaker)
        over the rows every set holds, as training did (a split predicted here gets the run's own inputs)."""
        modalities = build_modalities(self.pool, self.audio, self.text, table, np.arange(len(table)),
                                      self.cfg.max_seconds, self.cfg.allow_human_text)
        if self.cfg.speaker_norm:
            rows = np.flatnonzero(np.all([m.present for m in modalities.values()], axis=0))
            standardise_speakers(modalities, table, rows, "the utterances to predict", SPEAKER_NORM_NEEDS)
        return modalities

    def predict(self, table: LabelTable, rows: np.ndarray, modalities=None) -> dict[str, np.ndarray]:
        modalities = modalities or self.modalities(table)
        if self.onnx is not None:  # --engine onnx: the exported graph on the same gathered frames
            return self.onnx.predict_table(modalities, rows, self.cfg.eval_batch_size)
        if getattr(self.model, "is_probe", False):  # --head probe: pooled features -> logistic regression
            return self.model.predict_table(modalities, rows, self.cfg.eval_batch_size)
        device = self.pool.device
        main = modalities.get("audio") or modalities["text"]
        cfg = self.cfg.replace(device=str(device))
        empty = np.zeros(0, np.int64)
        avd_range = self.info.get("avd_range", {})
        low, high = avd_range.get("low", [1.0] * 3), avd_range.get("high", [7.0] * 3)
        prep = Prepared(cfg, table, modalities, device, empty, empty, {}, empty, main.lengths,
                        torch.as_tensor(table.label).to(device), torch.as_tensor(table.attributes).to(device),
                        torch.as_tensor(table.gender).to(device), None, None, (low, high))
        self.model.to(device)
        pred, _ = infer(self.model, prep, rows)
        return pred


# ----------------------------------------------------------------------------------- --classes
RESTRICTION_RULE = ("within the kept classes: a tuned decision's biases are added to the log-probabilities first, "
                    "then the best kept class is predicted; softmax heads' probabilities are renormalised over the "
                    "kept classes, sigmoid (WBCE) heads' are kept as they are; other classes get 0; ensemble members "
                    "are restricted before they are combined")


@dataclass(frozen=True)
class ClassRestriction:
    """`predict --classes`: predict within a subset of the head's classes (e.g. a test set without some of them).

    A softmax head's probabilities conditioned on the subset are p_c / sum_{k in S} p_k; a WBCE head's sigmoids
    are independent per class, so there is nothing to renormalise and the best class of the subset is taken.
    A tuned decision stays what it was tuned as, argmax(log p + b), only over S. Ensembles restrict each member
    (after its own decision) before combining, and the combination once more (its own decision; a stacker may
    put mass outside S); a vote of restricted members already lies in S."""

    letters: tuple[str, ...]  # kept, in the head's class order
    keep: np.ndarray  # bool [C]

    @classmethod
    def parse(cls, given: Sequence[str], classes: ClassSet) -> "ClassRestriction | None":
        """Class letters or names (any case; several per argument with commas); None when none is given."""
        wanted = [w.strip() for g in given for w in str(g).split(",") if w.strip()]
        if not wanted:
            return None
        lookup = {c.lower(): i for i, c in enumerate(classes.names)}
        lookup.update({c.lower(): i for i, c in enumerate(classes.letters)})
        unknown = [w for w in wanted if w not in classes.letters and w.lower() not in lookup]
        if unknown:
            listing = ", ".join(c if c == n else f"{c} ({n})" for c, n in zip(classes.letters, classes.names))
            raise HeadError(f"--classes {' '.join(unknown)}: not among this head's classes: {listing}")
        keep = np.zeros(len(classes), bool)
        keep[[classes.index(w) if w in classes.letters else lookup[w.lower()] for w in wanted]] = True
        return cls(tuple(c for c, k in zip(classes.letters, keep) if k), keep)

    def apply(self, out: SplitOutputs, sigmoid: bool, bias: np.ndarray | None = None, vote: bool = False) -> None:
        """Restrict `out` in place: decision over the kept classes (argmax of log p + bias with a bias, else of
        p; a vote's decision is kept), probabilities zero elsewhere and renormalised unless `sigmoid`."""
        if out.probs is None:
            return
        p = np.asarray(out.probs, np.float64)
        if not vote:
            scores = p if bias is None else log_scores(p) + np.asarray(bias, np.float64)[None, :]
            out.decision = np.where(self.keep[None, :], scores, -np.inf).argmax(1)
        kept = np.where(self.keep[None, :], p, 0.0)
        out.probs = kept if sigmoid else kept / np.maximum(kept.sum(1, keepdims=True), np.finfo(np.float64).tiny)

    def to_dict(self) -> dict[str, Any]:
        return {"kept": list(self.letters), "rule": RESTRICTION_RULE}


def _present(mods_list, n: int) -> np.ndarray:
    present = np.ones(n, bool)
    for mods in mods_list:
        for m in mods.values():
            present &= m.present
    return present


# ----------------------------------------------------------------------------------- entry point
def resolve_members(path: Path, features: Sequence[str] = (), text_features: Sequence[str] = ()
                    ) -> tuple[RunOutputs, dict[str, Any] | None, list[Path], dict[str, Any]]:
    """A head or ensemble directory: (its run, the ensemble spec or None, member head directories, the first
    member's config.json)."""
    run = load_run(path, read_splits=False)
    ensemble = run.kind == "ensemble"
    spec = run.config if ensemble else None
    if ensemble and (features or text_features):
        raise HeadError("--features/--text-features apply to one head; an ensemble uses each member's own sets")
    member_dirs = [path]
    if ensemble:
        member_dirs = [resolve_member_path(m, path) for m in spec["members"]]
    if any(not (d / "config.json").is_file() for d in member_dirs):
        raise HeadError(f"{path}: predicting with nested ensembles is not supported; build the ensemble from heads")
    first_cfg = json.loads((member_dirs[0] / "config.json").read_text())
    return run, spec, member_dirs, first_cfg


def combine_members(path: Path, spec: dict[str, Any] | None, member_dirs: Sequence[Path],
                    member_out: list[SplitOutputs], letters: list[str], decision: str = "auto",
                    restriction: ClassRestriction | None = None, sigmoid: Sequence[bool] = ()) -> Combined:
    """One head's outputs with its decision, or the ensemble's combination of its members' outputs. With a
    restriction (`--classes`) each member is restricted after its own decision, before anything combines;
    `sigmoid`: per member, whether its probabilities are WBCE sigmoids."""
    sigmoid = list(sigmoid) or [False] * len(member_out)
    if spec is not None:
        return _combine_ensemble(path, spec, member_dirs, member_out, letters, decision, restriction, sigmoid)
    result = member_out[0]
    dec_obj = _load_decision(decision, path / "decision.json" if (path / "decision.json").is_file() else None,
                             letters)
    if dec_obj is not None and result.probs is not None:
        result.decision = dec_obj.apply(result.probs)
    if restriction is not None:
        restriction.apply(result, sigmoid[0], None if dec_obj is None else dec_obj.bias)
    return Combined(result, decision=dec_obj, method="head")


def _load_decision(decision: str, auto: Path | None, letters: list[str]) -> Decision | None:
    """--decision: auto (the model's own decision.json, `auto`, if it has one), none, or a decision.json path."""
    if decision == "auto":
        return Decision.load(auto, letters) if auto is not None else None
    return None if decision == "none" else Decision.load(decision, letters)


def _combine_ensemble(path: Path, spec: dict[str, Any], member_dirs: Sequence[Path], member_out: list[SplitOutputs],
                      letters: list[str], decision: str, restriction: ClassRestriction | None,
                      sigmoid: list[bool]) -> Combined:
    """Members' own decisions (if the ensemble uses them), the restriction, the combination, its decision."""
    if spec.get("member_decisions"):
        for d, o in zip(member_dirs, member_out):
            md = Decision.load(d / "decision.json", letters)
            if o.probs is not None:
                o.decision, o.probs = md.apply(o.probs), md.adjusted_probs(o.probs)
    if restriction is not None:
        for o, sig in zip(member_out, sigmoid):
            restriction.apply(o, sig)
    dec_obj = _load_decision(decision, path / "decision.json" if spec.get("decision") else None, letters)
    stacker = Stacker.from_dict(spec["stacker"]["model"]) if spec.get("stacker") else None
    dev_values = [m["dev_selection"] if m["dev_selection"] is not None else -np.inf for m in spec["members"]]
    order = sorted(range(len(dev_values)), key=lambda i: -dev_values[i])
    cls_members = [i for i, o in enumerate(member_out) if o.probs is not None]
    rank = [cls_members.index(i) for i in order if i in cls_members]
    combined = combine(member_out, letters, spec["method"], spec["tie_rule"], rank, stacker, dec_obj)
    if restriction is not None:  # a stacker (or a decision's bias) may still favour a class outside the subset
        restriction.apply(combined.out, any(sigmoid), None if dec_obj is None else dec_obj.bias,
                          vote=spec["method"] == "vote")
    combined.decision, combined.method = dec_obj, f"ensemble ({spec['method']} of {len(member_dirs)})"
    return combined


def predict(path: str | Path, out: str | Path, store: str = "", features: Sequence[str] = (),
            text_features: Sequence[str] = (), ids: str = "", labels: str = "", split: str = "", corpus: str = "",
            decision: str = "auto", fmt: str = "letter", device: str = "auto", drop_missing: bool = False,
            verbose: bool = True, engine: str = "torch", classes: Sequence[str] = ()) -> dict[str, Any]:
    """Predict with a head run directory or an ensemble directory; returns the predict.json payload. `engine`
    onnx runs each head's head.onnx; `classes` predicts within those of the head's classes."""
    if fmt not in FORMATS:
        raise HeadError(f"unknown submission format {fmt!r}; choose {', '.join(FORMATS)}")
    path, out = Path(path), Path(out)
    run, spec, member_dirs, first_cfg = resolve_members(path, features, text_features)
    restriction = ClassRestriction.parse(classes, ClassSet(tuple(run.letters), tuple(run.names)))
    store = store or first_cfg.get("store", "")
    if not store:
        raise HeadError("--store is required (the run records none)")
    pool = FeaturePool(store, default_device(device))
    predictors = [HeadPredictor(d, pool, features or None, text_features or None, engine) for d in member_dirs]
    if not labels and any(p.cfg.speaker_norm for p in predictors):  # before any feature is read
        raise HeadError(f"{SPEAKER_NORM_NEEDS} (--ids and a whole store name no speaker)")
    corpus = corpus or first_cfg.get("corpus", "msp")
    names = list(dict.fromkeys(n for p in predictors for n in p.feature_names))
    table, what = target_table(predictors[0].classes, corpus, pool, names, ids, labels, split, first_cfg)
    mods = [p.modalities(table) for p in predictors]
    rows, notes = _rows_to_predict(table, _present(mods, len(table)), drop_missing)
    member_out = [split_outputs(table, rows, p.predict(table, rows, m))[0] for p, m in zip(predictors, mods)]
    letters = list(predictors[0].classes.letters)
    combined = combine_members(path, spec, member_dirs, member_out, letters, decision, restriction,
                               [p.sigmoid for p in predictors])
    files = write_predict_files(out, combined, letters, fmt, resolve_corpus(corpus, labels).columns)
    payload = {"model": str(path), "kind": combined.method, "store": str(store), "utterances": what,
               "n": len(combined.out), "features": {str(d): p.feature_names for d, p in zip(member_dirs, predictors)},
               "engine": engine, **_outcome(combined, letters, restriction), "format": fmt, "files": files,
               "notes": notes}
    write_json(out / "predict.json", payload)
    if verbose:
        _print_prediction(payload, path, out, what)
    return payload


def _outcome(combined: Combined, letters: list[str], restriction: ClassRestriction | None) -> dict[str, Any]:
    """predict.json's account of the decision: biases, kept classes, counts per class, metrics if labelled."""
    result, dec_obj = combined.out, combined.decision
    return {"decision": None if dec_obj is None else {"method": dec_obj.method, "bias": dec_obj.bias.tolist()},
            "classes": None if restriction is None else restriction.to_dict(),
            "predicted_counts": None if result.probs is None else
            {c: int((result.decision == j).sum()) for j, c in enumerate(letters)},
            "metrics": score(result, letters) or None}


def _rows_to_predict(table: LabelTable, present: np.ndarray, drop_missing: bool) -> tuple[np.ndarray, list[str]]:
    """The table rows every feature set has; the missing ones are an error unless --drop-missing."""
    notes = []
    if not present.all():
        gone = [table.ids[i] for i in np.flatnonzero(~present)]
        if not drop_missing:
            raise HeadError(f"{len(gone)} utterance(s) are missing from the feature sets, e.g. {gone[:3]}; extract "
                            "them, or pass --drop-missing to predict the others")
        notes.append(f"{len(gone)} utterance(s) missing from the cache were skipped, e.g. {gone[:3]}")
    rows = np.flatnonzero(present)
    if not len(rows):
        raise HeadError("nothing to predict")
    return rows, notes


def write_predict_files(out: Path, combined: Combined, letters: list[str], fmt: str,
                        columns: tuple[str, str]) -> list[str]:
    """probabilities.csv and the submission files, headed by the corpus' id and label `columns`; returns their
    names."""
    result, dec_obj = combined.out, combined.decision
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / "probabilities.csv", result, letters, columns=columns)
    files = ["probabilities.csv"]
    if result.probs is not None:
        if fmt == "baseline":
            if tuple(letters) != MSP_CLASSES:
                raise HeadError("--format baseline writes the 8 MSP-Podcast scores in the order "
                                f"{' '.join(MSP_CLASSES)}; "
                                f"this model's classes are {' '.join(letters)} (use --format letter)")
            if combined.vote_shares is not None:
                scores = combined.vote_shares.copy()
                scores[np.arange(len(scores)), result.decision] += 1e-3 * combined.tied
            elif dec_obj is not None:
                scores = dec_obj.adjusted_probs(result.probs)
            else:
                scores = result.probs
            write_submission_baseline(out / "submission_categorical.csv", result.ids, scores)
        else:
            write_submission_letters(out / "submission_categorical.csv", result.ids,
                                     [letters[int(i)] for i in result.decision], columns)
        files.append("submission_categorical.csv")
    if result.avd_pred is not None:
        write_submission_attributes(out / "submission_attributes.csv", result.ids, result.avd_pred, columns[0])
        files.append("submission_attributes.csv")
    return files


def _print_prediction(payload: dict[str, Any], path: Path, out: Path, what: str) -> None:
    files = ", ".join(payload["files"])
    engine = " (onnxruntime)" if payload.get("engine") == "onnx" else ""
    print(f"predicted {payload['n']} utterance(s) with {payload['kind']}{engine} {path} -> {out}: {files}")
    if payload.get("classes"):
        print(f"within the classes {' '.join(payload['classes']['kept'])} (--classes)")
    if payload["predicted_counts"]:
        print("predicted classes: " + "  ".join(f"{c} {n}" for c, n in payload["predicted_counts"].items()))
    if payload["metrics"]:
        print(summary_table({"splits": {what: payload["metrics"]}}))
    for note in payload["notes"]:
        print(f"note: {note}")


# ----------------------------------------------------------------------------------- submission files
def write_submission_letters(path: Path, ids: Sequence[str], letters: Sequence[str],
                             columns: tuple[str, str]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(columns))
        writer.writerows(zip(ids, letters))


def write_submission_baseline(path: Path, ids: Sequence[str], scores: np.ndarray) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Filename", "Prediction"])
        for uid, row in zip(ids, scores):
            writer.writerow([uid, ",".join(f"{v:.6f}" for v in row)])


def write_submission_attributes(path: Path, ids: Sequence[str], values: np.ndarray, id_column: str) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([id_column, *ATTRIBUTES])
        for uid, row in zip(ids, values):
            writer.writerow([uid, *[f"{v:.6f}" for v in row]])


def read_submission(path: str | Path) -> dict[str, Any]:
    """A submission file back as {id: letter}, {id: score vector} or {id: (act, val, dom)}."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    if len(header) == 2 and header[1] in ("EmoClass", PREDICTION_COLUMNS[1]):
        return {r[0]: r[1] for r in rows}
    if header == ["Filename", "Prediction"]:
        return {r[0]: np.array([float(v) for v in r[1].split(",")]) for r in rows}
    if header[1:] == list(ATTRIBUTES):
        return {r[0]: tuple(float(v) for v in r[1:]) for r in rows}
    raise HeadError(f"{path}: unknown submission header {header}")

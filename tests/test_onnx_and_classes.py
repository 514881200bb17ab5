"""`export-head --onnx` / `predict --engine onnx` (the head as an ONNX graph run by onnxruntime, within 1e-4 of the
torch head for every input and fusion kind, a probe and an ensemble's members) and `predict --classes` (predicting
within a subset of the head's classes: renormalised softmax, best sigmoid, decision first, members restricted
before they combine), in store mode and audio mode; tiny heads on a synthetic store."""

from __future__ import annotations

import csv
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sercache import cli
from sercache.heads import HeadConfig, train
from sercache.heads.after.decision import Decision
from sercache.heads.after.ensemble import build_ensemble
from sercache.heads.after.predict import ClassRestriction
from sercache.heads.errors import HeadError
from sercache.heads.inputs.labels import ClassSet
from sercache.testing import make_synthetic_corpus

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TINY = dict(hidden=8, d_model=8, ff_dim=16, batch_size=16, max_epochs=2, patience=0, progress=False, threads=1)
HEADS = {  # name -> what differs from an early-fusion audio + text head
    "audio": dict(text_features=[], frame_stride=2, pooling="attentive", heads=2),
    "text": dict(features=[]),
    "early": {}, "late": dict(fusion="late"), "deep": dict(fusion="deep", heads=2),
    "tensor": dict(fusion="tensor", fusion_dim=3), "lowrank": dict(fusion="lowrank", fusion_rank=2),
    "wbce": dict(text_features=[], loss="wbce"),
    "probe": dict(head="probe"),
}
KEPT = ["A", "H", "N"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    torch.set_num_threads(1)
    return make_synthetic_corpus(tmp_path_factory.mktemp("onnx"), n_train=64, n_dev=24, n_test=16, audio_dim=8,
                                 text_dim=6, mean_seconds=0.3, std_seconds=0.1, signal=2.0, seed=3)


@pytest.fixture(scope="module")
def heads(corpus, tmp_path_factory):
    """Every head trained and exported with --onnx, and a mean ensemble of two of them, exported too."""
    root = tmp_path_factory.mktemp("heads")
    runs = {}
    for i, (name, changes) in enumerate(HEADS.items()):
        base = dict(store=str(corpus.store), features=[corpus.audio], text_features=[corpus.text],
                    labels=str(corpus.consensus), out=str(root / "runs" / name), seed=i, **TINY)
        with warnings.catch_warnings():  # few optimiser steps
            warnings.simplefilter("ignore")
            train(HeadConfig(**{**base, **changes}), verbose=False)
        runs[name] = root / "runs" / name
    build_ensemble([runs["audio"], runs["early"]], root / "runs" / "ensemble", method="mean", verbose=False)
    runs["ensemble"] = root / "runs" / "ensemble"
    exports = {}
    for name, run in runs.items():
        exports[name] = root / "exports" / name
        assert cli.main(["export-head", str(run), "--to", str(exports[name]), "--onnx"]) == 0
    return exports


def predict(corpus, model: Path, out: Path, *options: str) -> dict:
    assert cli.main(["predict", str(model), "--store", str(corpus.store), "--out", str(out), "--threads", "1",
                     *options]) == 0
    return json.loads((out / "predict.json").read_text())


def read_probs(path: Path, letters=tuple("ASHUFDCN")) -> tuple[list[str], np.ndarray, list[str]]:
    """ids, probabilities [N, C] and predicted letters of a probabilities.csv."""
    with open(path / "probabilities.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return ([r["FileName"] for r in rows], np.array([[float(r[f"prob_{c}"]) for c in letters] for r in rows]),
            [r["Prediction"] for r in rows])


def renormalised(p: np.ndarray, kept=KEPT, letters="ASHUFDCN") -> np.ndarray:
    keep = np.array([c in kept for c in letters])
    q = np.where(keep, p, 0.0)
    return q / q.sum(1, keepdims=True)


def best_kept(scores: np.ndarray, kept=KEPT, letters="ASHUFDCN") -> list[str]:
    keep = np.array([c in kept for c in letters])
    return [letters[int(i)] for i in np.where(keep, scores, -np.inf).argmax(1)]


def clear(scores: np.ndarray, kept=KEPT, letters="ASHUFDCN", margin: float = 1e-4) -> np.ndarray:
    """Rows whose best kept score leads the next by more than `margin` (6-decimal CSV values decide the rest)."""
    keep = np.array([c in kept for c in letters])
    top = np.sort(scores[:, keep], 1)
    return top[:, -1] - top[:, -2] > margin


# ----------------------------------------------------------------------------------- ONNX
@pytest.mark.parametrize("name", [*HEADS, "ensemble"])
def test_onnx_engine_matches_the_torch_head(corpus, heads, name, tmp_path):
    export = heads[name]
    graphs = sorted(export.rglob("head.onnx"))
    assert len(graphs) == (2 if name == "ensemble" else 1)  # an ensemble: one graph per member
    want = predict(corpus, export, tmp_path / "torch")
    got = predict(corpus, export, tmp_path / "onnx", "--engine", "onnx")
    assert (want["engine"], got["engine"]) == ("torch", "onnx")
    ids_t, p_t, pred_t = read_probs(tmp_path / "torch")
    ids_o, p_o, pred_o = read_probs(tmp_path / "onnx")
    assert ids_t == ids_o and len(ids_t) == want["n"] > 0
    np.testing.assert_allclose(p_o, p_t, atol=1e-4)
    sure = clear(p_t, kept="ASHUFDCN")
    assert [a for a, s in zip(pred_o, sure) if s] == [a for a, s in zip(pred_t, sure) if s]
    card = (export / "README.md").read_text()
    assert "## ONNX" in card and "`probs` | float32 | [batch, 8]" in card and "A, S, H, U, F, D, C, N" in card


def test_the_model_card_recipe_runs_in_plain_onnxruntime(corpus, heads, tmp_path):
    """Inputs as the card names them, one cached utterance at a time, give predict's probabilities."""
    from sercache.cache import open_store

    predict(corpus, heads["deep"], tmp_path / "torch")
    ids, probs, _ = read_probs(tmp_path / "torch")
    session = ort.InferenceSession(str(heads["deep"] / "head.onnx"))
    meta = json.loads(session.get_modelmeta().custom_metadata_map["sercache"])
    assert meta["classes"]["letters"] == list("ASHUFDCN")
    assert [i.name for i in session.get_inputs()] == ["audio_frames", "audio_mask", "text_frames", "text_mask"]
    store = open_store(corpus.store)
    for k in (0, len(ids) - 1):
        feed = {}
        for m, name in (("audio", corpus.audio), ("text", corpus.text)):
            x = store[name].get(ids[k]).astype(np.float32)[None]
            feed[f"{m}_frames"], feed[f"{m}_mask"] = x, np.ones(x.shape[:2], bool)
        np.testing.assert_allclose(session.run(["probs"], feed)[0][0], probs[k], atol=1e-4)


def test_onnx_engine_refuses_a_run_without_a_graph_and_a_stale_graph(corpus, heads, tmp_path, capsys):
    run = Path(json.loads((heads["early"] / "export.json").read_text())["source"])
    assert cli.main(["predict", str(run), "--store", str(corpus.store), "--out", str(tmp_path / "p"),
                     "--engine", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "no head.onnx" in err and "export-head RUN --to DIR --onnx" in err
    stale = tmp_path / "stale"
    shutil.copytree(heads["early"], stale)
    shutil.copyfile(heads["late"] / "head.onnx", stale / "head.onnx")
    assert cli.main(["predict", str(stale), "--store", str(corpus.store), "--out", str(tmp_path / "q"),
                     "--engine", "onnx"]) == 2
    assert "made from another checkpoint" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- --classes
def test_class_names_are_letters_or_names_and_unknown_ones_list_the_classes(corpus, heads, tmp_path, capsys):
    classes = ClassSet(tuple("ASHUFDCN"), ("Angry", "Sad", "Happy", "Surprise", "Fear", "Disgust", "Contempt",
                                           "Neutral"))
    assert ClassRestriction.parse(["n,happy", "a"], classes).letters == ("A", "H", "N")  # head's order
    assert ClassRestriction.parse([], classes) is None
    with pytest.raises(HeadError, match=r"--classes Q: not among this head's classes: A \(Angry\), S \(Sad\)"):
        ClassRestriction.parse(["A", "Q"], classes)
    assert cli.main(["predict", str(heads["early"]), "--store", str(corpus.store), "--out", str(tmp_path / "p"),
                     "--classes", "A", "Joy"]) == 2
    assert "--classes Joy: not among this head's classes" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_softmax_heads_renormalise_over_the_kept_classes(corpus, heads, tmp_path, engine):
    full = predict(corpus, heads["early"], tmp_path / "full", "--engine", engine)
    kept = predict(corpus, heads["early"], tmp_path / "kept", "--engine", engine, "--classes", "N", "A", "H")
    assert full["classes"] is None and kept["classes"]["kept"] == KEPT
    assert sum(kept["predicted_counts"][c] for c in KEPT) == kept["n"]
    _, p, _ = read_probs(tmp_path / "full")
    _, q, pred = read_probs(tmp_path / "kept")
    np.testing.assert_allclose(q, renormalised(p), atol=2e-5)
    sure = clear(p)
    assert np.array(pred)[sure].tolist() == np.array(best_kept(p))[sure].tolist()


def test_sigmoid_heads_take_the_best_kept_class(corpus, heads, tmp_path):
    predict(corpus, heads["wbce"], tmp_path / "full")
    predict(corpus, heads["wbce"], tmp_path / "kept", "--classes", *KEPT)
    _, p, _ = read_probs(tmp_path / "full")
    _, q, pred = read_probs(tmp_path / "kept")
    keep = np.array([c in KEPT for c in "ASHUFDCN"])
    np.testing.assert_allclose(q[:, keep], p[:, keep], atol=1e-6)  # sigmoids as they are, not renormalised
    assert (q[:, ~keep] == 0).all() and not np.allclose(q[:, keep].sum(1), 1.0)
    sure = clear(p)
    assert np.array(pred)[sure].tolist() == np.array(best_kept(p))[sure].tolist()


def test_a_tuned_decision_applies_before_the_restriction(corpus, heads, tmp_path):
    bias = np.random.default_rng(0).normal(0.0, 2.0, 8)
    bias[list("ASHUFDCN").index("S")] = 40.0  # would win everything, but S is not kept
    decision = tmp_path / "decision.json"
    Decision(list("ASHUFDCN"), "bias", bias).save(decision)
    predict(corpus, heads["early"], tmp_path / "raw", "--decision", "none")
    payload = predict(corpus, heads["early"], tmp_path / "kept", "--decision", str(decision), "--classes", *KEPT)
    assert payload["decision"]["bias"] == pytest.approx(bias.tolist()) and payload["classes"]["kept"] == KEPT
    _, p, _ = read_probs(tmp_path / "raw")
    _, q, pred = read_probs(tmp_path / "kept")
    np.testing.assert_allclose(q, renormalised(p), atol=2e-5)  # probabilities stay the head's
    scores = np.log(np.clip(p, 1e-9, None)) + bias
    sure = clear(scores, margin=1e-3)
    assert sure.sum() > len(p) // 2 and best_kept(scores) != best_kept(p)  # the biases change decisions
    assert np.array(pred)[sure].tolist() == np.array(best_kept(scores))[sure].tolist()


def test_ensemble_members_are_restricted_before_they_combine(corpus, heads, tmp_path):
    members = sorted((heads["ensemble"] / "members").iterdir())
    probs = []
    for i, member in enumerate(members):
        predict(corpus, member, tmp_path / f"m{i}", "--decision", "none")
        probs.append(read_probs(tmp_path / f"m{i}")[1])
    payload = predict(corpus, heads["ensemble"], tmp_path / "kept", "--classes", *KEPT, "--engine", "onnx")
    assert payload["classes"]["kept"] == KEPT and payload["kind"] == "ensemble (mean of 2)"
    _, q, pred = read_probs(tmp_path / "kept")
    before = np.mean([renormalised(p) for p in probs], 0)  # restrict, then combine
    np.testing.assert_allclose(q, before, atol=2e-5)
    assert np.abs(before - renormalised(np.mean(probs, 0))).max() > 1e-3  # not: combine, then restrict
    sure = clear(before)
    assert np.array(pred)[sure].tolist() == np.array(best_kept(before))[sure].tolist()


# ----------------------------------------------------------------------------------- audio mode
def test_audio_mode_threads_engine_and_classes(corpus, heads, tmp_path, monkeypatch):
    """Audio in (the encoder replaced by deterministic frames): --engine onnx equals torch, --classes renormalises
    and says so in a `classes` column."""
    import soundfile as sf

    from sercache import predict_audio as module

    def fake_frames(self, recipe, audio, items, batch=8):
        return {u: np.random.default_rng(sum(map(ord, u))).normal(size=(12, 8)).astype(np.float32) for u in audio}

    monkeypatch.setattr(module.Chain, "audio_features", fake_frames)
    wavs = []
    for i in range(3):
        wavs.append(tmp_path / f"clip{i}.wav")
        sf.write(wavs[-1], np.random.default_rng(i).normal(0, 0.1, 8000).astype(np.float32), 16000)

    def rows(*options: str) -> list[dict]:
        out = tmp_path / f"preds{len(list(tmp_path.glob('preds*')))}.csv"
        assert cli.main(["predict", str(heads["audio"]), *map(str, wavs), "--out", str(out), "--device", "cpu",
                         *options]) == 0
        with open(out, newline="") as handle:
            return list(csv.DictReader(handle))

    def probs(table: list[dict]) -> np.ndarray:
        return np.array([[float(r[f"prob_{c}"]) for c in "ASHUFDCN"] for r in table])

    full, onnx, kept = rows(), rows("--engine", "onnx"), rows("--classes", *KEPT, "--engine", "onnx")
    assert all(r["status"] == "ok" for r in full + onnx + kept)
    np.testing.assert_allclose(probs(onnx), probs(full), atol=1e-4)
    np.testing.assert_allclose(probs(kept), renormalised(probs(full)), atol=1e-4)
    assert {r["classes"] for r in kept} == {"A H N"} and "classes" not in full[0]
    assert {r["Prediction"] for r in kept} <= set(KEPT)


@pytest.mark.parametrize("loss, changes", [
    ("amsoftmax", dict(inputs={"audio": [3, 8], "text": [6]}, cosine=True, fusion="deep", frame_stride=3)),
    ("ce", dict(inputs={"audio": [2, 8]}, task="both", aux="gender", pooling="attentive", layers=2)),
])
def test_layer_mixes_cosine_classes_and_every_output_export(tmp_path, loss, changes):
    """Heads the store-mode tests do not train: multi-layer inputs (the learned layer mix), AM-Softmax cosines,
    A/V/D and gender outputs; the export's own check compares them with the torch head on new shapes."""
    from sercache.heads.after.onnx_export import export_onnx
    from sercache.heads.fit.checkpoint import save_head
    from sercache.heads.fit.model import FusionHead, HeadSpec

    torch.manual_seed(0)
    spec = HeadSpec(**{**dict(n_classes=4, hidden=8, d_model=8, ff_dim=16, heads=2, layers=1, input_norm=True),
                       **changes})
    save_head(tmp_path / "best.safetensors", FusionHead(spec).eval(),
              {"classes": {"letters": list("ASHN"), "names": list("ASHN")}, "config": {"loss": loss, "am_scale": 30.0}})
    described = export_onnx(tmp_path / "best.safetensors", tmp_path / "head.onnx")
    assert described["parity"] <= 1e-4
    outputs = [o["name"] for o in described["outputs"]]
    assert outputs == (["probs", "avd", "gender"] if "aux" in changes else ["probs"])
    assert described["inputs"][0]["shape"] == ["batch", "audio_frames", *changes["inputs"]["audio"]]


def test_an_export_that_disagrees_with_the_torch_head_is_refused(tmp_path, monkeypatch):
    from sercache.heads.after import onnx_export
    from sercache.heads.fit.checkpoint import save_head
    from sercache.heads.fit.model import FusionHead, HeadSpec

    spec = HeadSpec(inputs={"text": [6]}, n_classes=2, hidden=8, d_model=8, ff_dim=16, layers=1)
    save_head(tmp_path / "best.safetensors", FusionHead(spec).eval(),
              {"classes": {"letters": ["A", "N"], "names": ["A", "N"]}, "config": {"loss": "ce"}})
    monkeypatch.setattr(onnx_export, "PARITY", -1.0)  # any difference, even 0, is too much
    with pytest.raises(HeadError, match="differs from the torch head"):
        onnx_export.export_onnx(tmp_path / "best.safetensors", tmp_path / "head.onnx")
    assert not (tmp_path / "head.onnx").exists()


def test_audio_mode_streams_its_files_and_loads_each_model_once(corpus, heads, tmp_path, monkeypatch):
    """Files are decoded, encoded and predicted a few at a time (STREAM_ITEMS), never all at once, with the same
    outputs as in one go."""
    import soundfile as sf

    from sercache import predict_audio as module

    def fake_frames(self, recipe, audio, items, batch=8):
        self.model(("audio", "fake"), lambda: loads.append(1))
        return {u: np.random.default_rng(sum(map(ord, u))).normal(size=(12, 8)).astype(np.float32) for u in audio}

    decoded, loads = [], []
    real_decode = module._decode
    monkeypatch.setattr(module, "_decode", lambda items: decoded.append(len(items)) or real_decode(items))
    monkeypatch.setattr(module.Chain, "audio_features", fake_frames)
    wavs = []
    for i in range(5):
        wavs.append(tmp_path / f"clip{i}.wav")
        sf.write(wavs[-1], np.random.default_rng(i).normal(0, 0.1, 8000).astype(np.float32), 16000)
    together = module.predict_audio(heads["audio"], [str(w) for w in wavs], device="cpu", verbose=False)
    monkeypatch.setattr(module, "STREAM_ITEMS", 2)
    decoded.clear()
    loads.clear()
    streamed = module.predict_audio(heads["audio"], [str(w) for w in wavs], device="cpu", verbose=False)
    assert decoded == [2, 2, 1] and loads == [1]
    assert streamed == together and all(r["status"] == "ok" for r in streamed)

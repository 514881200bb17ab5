"""Audio in, emotion out (`sercache predict HEAD AUDIO...`) and `export-head`: a tiny espeak corpus through the
real whisper-base (trimmed) + faster-whisper ASR + a tiny AEC BART + all-MiniLM-L6-v2, tiny heads; predicting
the Test1 wav files from an export reproduces the run's predictions_test1.csv."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sercache import cli

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (bin/setup-env)")

AUDIO = "whisper-base-ct2/L-1"


def _read(path):
    with open(path, newline="") as handle:
        return {r["FileName"]: r for r in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from sercache.benchcorpus import BenchSizes, synthesize_bench_corpus
    from sercache.cache import open_store
    from sercache.cache.texts import TextSet, TextSetWriter
    from sercache.extract import ExtractConfig, run_extraction
    from sercache.extract.aec import AECTrainConfig, correct_text_set, read_splits, train_aec
    from sercache.extract.text_cli import read_human_transcripts
    from sercache.extract.transcribe import TranscribeConfig, run_transcription
    from sercache.heads import HeadConfig, train
    from sercache.testing.small_seq2seq import build_small_seq2seq

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("predict-audio")
    corpus = synthesize_bench_corpus(root / "corpus", BenchSizes(32, 8, 8, 0, 0), jobs=2)
    store = root / "store"
    run_extraction(ExtractConfig(input=str(corpus), store=str(store), model="whisper-base-ct2", whisper_mode="trimmed",
                                 workers=0, progress=False))
    # trimmed ASR (as the demo runs it): predict must replay that mode to reproduce the transcripts
    run_transcription(TranscribeConfig(input=str(corpus), store=str(store), model="whisper-base-ct2",
                                       compute_type="int8", beam_size=1, device="cpu", whisper_mode="trimmed",
                                       progress=False))
    asr = "asr/whisper-base-ct2"
    human = TextSetWriter(open_store(store), "human")
    human.ensure_metadata({"kind": "human", "model": None, "source": str(corpus / "Transcripts")})
    human.commit([{"id": u, "text": t} for u, t in sorted(read_human_transcripts(corpus / "Transcripts").items())])
    labels = corpus / "Labels" / "labels_consensus.csv"
    splits = read_splits(labels)
    st = open_store(store)
    texts = [t.text(u) for t in (TextSet(st, asr), TextSet(st, "human")) for u in t.records
             if splits.get(u) == "train"]
    init = build_small_seq2seq(root / "aec-init", texts, 0)
    # enough epochs for the tiny BART to write text (after 1 epoch it writes nothing), so the fusion check
    # compares real corrected transcripts
    train_aec(AECTrainConfig(store=str(store), source=asr, reference="human", splits=str(labels), model=str(init),
                             out=str(root / "aec"), epochs=30, batch_size=4, lr=3e-3, max_length=48, beam_size=1,
                             synthetic=0, device="cpu", progress=False))
    corrected = correct_text_set(open_store(store), asr, str(root / "aec" / "best"), beam_size=1, max_length=48,
                                 device="cpu", progress=False)
    text = run_extraction(ExtractConfig(store=str(store), model="all-minilm-l6-v2", text=corrected,
                                        progress=False)).name
    with open(labels, newline="") as handle:
        train_classes = {r["EmoClass"] for r in csv.DictReader(handle) if r["Split_Set"] == "Train"}
    classes = [c for c in ("A", "S", "H", "N") if c in train_classes]  # the tiny corpus may lack one
    runs = {}
    for name, text_features, task in (("audio", [], {}), ("fusion", [text], {}),
                                      ("avd", [text], {"task": "avd", "loss": "ccc", "frame_stride": 2})):
        cfg = HeadConfig(store=str(store), features=[AUDIO], text_features=text_features, labels=str(labels),
                         classes=classes, out=str(root / "runs" / name), hidden=16, d_model=16,
                         ff_dim=32, batch_size=16, max_epochs=2, allow_empty_classes=True,
                         patience=0, device="cpu", threads=1, progress=False, **task)
        train(cfg, verbose=False)
        runs[name] = root / "runs" / name
    from sercache.heads.after.ensemble import build_ensemble

    build_ensemble([str(runs["audio"]), str(runs["fusion"])], root / "runs" / "vote", method="vote", verbose=False)
    runs["vote"] = root / "runs" / "vote"
    test1 = sorted(u for u, s in splits.items() if s == "test1")
    return {"root": root, "corpus": corpus, "store": store, "runs": runs, "test1": test1, "text": text,
            "corrected": corrected}


def _predict_test1_without(demo, model, hidden: list, tmp_path):
    """`sercache predict MODEL` on the Test1 wav files while the `hidden` directories are moved away."""
    aside = [(Path(h), tmp_path / f"hidden-{i}") for i, h in enumerate(hidden)]
    for path, away in aside:
        shutil.move(str(path), str(away))
    try:
        wavs = [str(demo["corpus"] / "Audios" / u) for u in demo["test1"]]
        out = tmp_path / "preds.csv"
        assert cli.main(["predict", str(model), *wavs, "--out", str(out), "--device", "cpu"]) == 0
    finally:
        for path, away in aside:
            shutil.move(str(away), str(path))
    return out


def _check_reproduces(preds: dict, run_csv: dict, letters: list[str]) -> None:
    assert set(run_csv) <= set(preds)
    for uid, want in run_csv.items():
        got = preds[uid]
        assert got["status"] == "ok", got
        if "pred_EmoAct" in want:  # regression head: A/V/D on the 1-7 scale, fp16 features
            for a in ("EmoAct", "EmoVal", "EmoDom"):
                assert abs(float(got[f"pred_{a}"]) - float(want[f"pred_{a}"])) < 5e-3, (uid, a)
        if "Prediction" not in want:
            continue
        p_want = np.array([float(want[f"prob_{c}"]) for c in letters])
        p_got = np.array([float(got[f"prob_{c}"]) for c in letters])
        np.testing.assert_allclose(p_got, p_want, atol=2e-3, err_msg=uid)
        assert got["Prediction"] == want["Prediction"] or np.sort(p_want)[-1] - np.sort(p_want)[-2] < 4e-3, uid


@pytest.mark.parametrize("head", ["audio", "fusion", "avd", "vote"])
def test_exported_head_reproduces_the_run_from_wav_files(demo, head, tmp_path):
    run = demo["runs"][head]
    export = tmp_path / "export"
    assert cli.main(["export-head", str(run), "--to", str(export)]) == 0
    heads = ("members/00-audio/", "members/01-fusion/") if head == "vote" else ("",)
    own = [f"{h}{n}" for h in heads for n in ("best.safetensors", "config.json", "classes.json", "provenance.json")]
    for name in (*own, *(["ensemble.json"] if head == "vote" else []), "metrics.json", "export.json", "README.md"):
        assert (export / name).is_file(), name
    card = (export / "README.md").read_text()
    assert "whisper-base-ct2" in card and "test1" in card
    roles = {"audio": ["audio"], "fusion": ["audio", "asr", "aec", "text"], "avd": ["audio", "asr", "aec", "text"],
             "vote": ["audio", "asr", "aec", "text"]}[head]
    assert " ".join(f"--model-path {r}=PATH" for r in roles) + "\n" in card  # the usage for another machine
    if head in ("fusion", "avd"):
        provenance = json.loads((export / "provenance.json").read_text())
        chain = provenance[demo["text"]]["texts"]
        assert [t["kind"] for t in chain] == ["corrected", "asr"] and chain[0]["aec_weights_sha256"]
    # no run directory and no store around: only the export and the wav files
    out = _predict_test1_without(demo, export, [run, demo["store"]], tmp_path)
    letters = json.loads((export / heads[-1] / "classes.json").read_text())["letters"]
    preds = _read(out)
    _check_reproduces(preds, _read(run / "predictions_test1.csv"), letters)
    if head in ("fusion", "avd"):  # the transcript predict computed is the store's corrected text, and not empty
        from sercache.cache import open_store
        from sercache.cache.texts import TextSet

        corrected = TextSet(open_store(demo["store"]), demo["corrected"])
        assert {u: preds[u]["transcript"] for u in demo["test1"]} == {u: corrected.text(u) for u in demo["test1"]}
        assert sum(bool(preds[u]["transcript"]) for u in demo["test1"]) >= len(demo["test1"]) // 2


def test_bad_files_get_error_rows_and_the_rest_predictions(demo, tmp_path):
    good = demo["corpus"] / "Audios" / demo["test1"][0]
    silent, short = tmp_path / "silent.wav", tmp_path / "short.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    sf.write(short, (0.1 * np.random.default_rng(0).standard_normal(100)).astype(np.float32), 16000)
    out = tmp_path / "preds.jsonl"
    argv = ["predict", "--run", str(demo["runs"]["fusion"]), str(good), str(tmp_path / "missing.wav"), str(silent),
            str(short), "--out", str(out), "--device", "cpu"]
    assert cli.main(argv) == 0
    rows = {r["FileName"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows[good.name]["status"] == "ok" and rows[good.name]["Prediction"]
    assert "file not found" in rows["missing.wav"]["error"]
    assert "is silent" in rows["silent.wav"]["error"]
    assert "too short" in rows["short.wav"]["error"]
    assert all(rows[n]["status"] == "error" and "Prediction" not in rows[n]
               for n in ("missing.wav", "silent.wav", "short.wav"))


def test_segments_store_cache_and_refusals(demo, tmp_path, capsys):
    from sercache.cache import open_store

    wav = demo["corpus"] / "Audios" / demo["test1"][1]
    long_wav = tmp_path / "long.wav"
    samples, rate = sf.read(wav, dtype="float32")
    sf.write(long_wav, np.concatenate([samples] * 4), rate)
    out = tmp_path / "series.csv"
    assert cli.main(["predict", str(demo["runs"]["audio"]), str(long_wav), "--segment", "1", "--out", str(out),
                     "--device", "cpu"]) == 0
    rows = list(csv.DictReader(open(out)))
    seconds = 4 * len(samples) / rate
    assert len(rows) == int(seconds // 1) and all(r["status"] == "ok" for r in rows)
    assert float(rows[0]["start"]) == 0 and abs(float(rows[-1]["end"]) - seconds) < 1e-3

    # --store caches what it computes through the extraction writer; a second call reuses it
    cache = tmp_path / "cache"
    argv = ["predict", str(demo["runs"]["fusion"]), str(wav), "--store", str(cache), "--out", str(tmp_path / "a.csv"),
            "--device", "cpu"]
    assert cli.main(argv) == 0
    st = open_store(cache)
    assert wav.name in st[AUDIO] and wav.name in st[demo["text"]]
    memory = tmp_path / "m.csv"
    assert cli.main(["predict", str(demo["runs"]["fusion"]), str(wav), "--out", str(memory), "--device", "cpu"]) == 0
    a, m = _read(tmp_path / "a.csv")[wav.name], _read(memory)[wav.name]
    assert a["Prediction"] == m["Prediction"]
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert "nothing to do" in capsys.readouterr().err

    # a recorded model replaced by other weights is refused, naming the model
    other = tmp_path / "other-minilm"
    from sercache.extract.bundled import resolve_bundled

    shutil.copytree(resolve_bundled("all-minilm-l6-v2"), other)
    weights = next(other.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    code = cli.main(["predict", str(demo["runs"]["fusion"]), str(wav), "--model-path", f"text={other}",
                     "--device", "cpu"])
    assert code == 2
    assert "weights sha256" in capsys.readouterr().err


def test_model_card_names_the_asr_mode(demo, tmp_path):
    export = tmp_path / "export"
    assert cli.main(["export-head", str(demo["runs"]["fusion"]), "--to", str(export)]) == 0
    assert "Whisper mode trimmed" in (export / "README.md").read_text()


@pytest.mark.parametrize("head", ["audio", "fusion"])
def test_a_run_whose_store_is_gone_predicts_from_its_checkpoint_provenance(demo, head, tmp_path):
    """The checkpoint records each feature set's recipe (for text, its ASR -> AEC chain), so a run directory
    predicts from audio after its store was moved or deleted."""
    run = demo["runs"][head]
    out = _predict_test1_without(demo, run, [demo["store"]], tmp_path)
    letters = json.loads((run / "config.json").read_text())["resolved"]["classes"]["letters"]
    _check_reproduces(_read(out), _read(run / "predictions_test1.csv"), letters)


def test_an_export_with_its_encoders_predicts_where_none_of_them_is(demo, tmp_path, monkeypatch, capsys):
    """--include-encoders: the fusion head (whisper encoder, whisper ASR, the AEC model, MiniLM) predicts from
    its export alone; a bundled copy whose weights changed is refused by its hash."""
    import sercache.recorded_models as recorded

    export = tmp_path / "export"
    assert cli.main(["export-head", str(demo["runs"]["fusion"]), "--to", str(export), "--include-encoders"]) == 0
    bundle = json.loads((export / "encoders.json").read_text())["models"]
    assert sorted(r for m in bundle for r in m["roles"]) == ["aec", "asr", "audio", "text"]
    assert len(bundle) == 3  # whisper-base serves as audio encoder and as ASR: one copy
    assert all(m["weights_sha256"] and (export / m["path"]).exists() for m in bundle)
    card = (export / "README.md").read_text()
    assert "are bundled in `encoders/`" in card and "--model-path audio=PATH asr=PATH" not in card
    assert "--model-path audio=PATH --model-path asr=PATH --model-path aec=PATH --model-path text=PATH" in card

    def nothing_bundled(name):
        raise FileNotFoundError(name)

    monkeypatch.setattr(recorded, "resolve_bundled", nothing_bundled)  # as on a machine without sercache's models
    out = _predict_test1_without(demo, export, [demo["runs"]["fusion"], demo["store"], demo["root"] / "aec"],
                                 tmp_path)
    letters = json.loads((export / "classes.json").read_text())["letters"]
    _check_reproduces(_read(out), _read(demo["runs"]["fusion"] / "predictions_test1.csv"), letters)

    text = next(m for m in bundle if m["roles"] == ["text"])
    weights = next((export / text["path"]).glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    capsys.readouterr()
    wav = str(demo["corpus"] / "Audios" / demo["test1"][0])
    assert cli.main(["predict", str(export), wav, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "weights sha256" in err and str(export / text["path"]) in err


def test_speech_segments_of_a_long_recording_come_back_in_order(demo, tmp_path):
    """Three clips of known emotion with silences between them, as one recording: --segment speech finds the
    three, in order, where they are, and predicts each as the clip alone is predicted; --plot draws them."""
    clips = [demo["corpus"] / "Audios" / u for u in demo["test1"][:3]]
    waves, rate = zip(*(sf.read(c, dtype="float32") for c in clips))
    gap = np.zeros(int(1.2 * rate[0]), np.float32)
    pieces, bounds, t = [gap[: rate[0] // 2]], [], 0.5
    for w in waves:  # where each clip's voice is (espeak pads its clips with a little silence)
        voiced = np.flatnonzero(np.abs(w) > 0.02 * np.abs(w).max())
        bounds.append((t + voiced[0] / rate[0], t + voiced[-1] / rate[0]))
        pieces += [w, gap]
        t += len(w) / rate[0] + len(gap) / rate[0]
    long_wav = tmp_path / "meeting.wav"
    sf.write(long_wav, np.concatenate(pieces), rate[0])
    alone = tmp_path / "alone.csv"
    assert cli.main(["predict", str(demo["runs"]["audio"]), *map(str, clips), "--out", str(alone),
                     "--device", "cpu"]) == 0
    series = tmp_path / "series.csv"
    assert cli.main(["predict", str(demo["runs"]["audio"]), str(long_wav), "--segment", "speech", "--plot",
                     "--out", str(series), "--device", "cpu"]) == 0
    rows = list(csv.DictReader(open(series)))
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    for row, (start, end) in zip(rows, bounds):
        assert abs(float(row["start"]) - start) < 0.35 and abs(float(row["end"]) - end) < 0.35, (row, start, end)
    letters = [k[5:] for k in rows[0] if k.startswith("prob_")]
    for row, want in zip(rows, _read(alone).values()):
        p = sorted(float(want[f"prob_{c}"]) for c in letters)
        assert row["Prediction"] == want["Prediction"] or p[-1] - p[-2] < 0.1, (row, want)
    assert (tmp_path / "series_plots" / "meeting.png").stat().st_size > 0

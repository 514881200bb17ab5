"""Issue 9, defects 2-8: one regression test (or a few) per defect, each failing on the code before its fix."""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import make_corpus, write_audio

from sercache.cache import FeatureSetWriter, StorageConfig, Store, UtteranceRecord, open_store
from sercache.heads import HeadConfig, train
from sercache.heads.errors import HeadError
from sercache.heads.inputs.corpora import read_labels
from sercache.testing import make_synthetic_corpus

torch.set_num_threads(1)
TINY = dict(hidden=8, d_model=8, ff_dim=16, batch_size=32, max_epochs=1, progress=False, lr=3e-3,
            eval_batch_size=64)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic_corpus(tmp_path_factory.mktemp("issue9"), n_train=60, n_dev=24, n_test=8, audio_dim=8,
                                 mean_seconds=0.3, std_seconds=0.1, signal=2.5, with_text=False, seed=9)


# ----------------------------------------------------------------------------------- defect 2
@pytest.mark.parametrize("changes", [dict(task="avd", loss="ccc"), dict(task="both", loss="ce"),
                                     dict(soft_labels="P", loss="kld"), dict(soft_labels="P", loss="ce", task="both")])
def test_ox_rows_stay_out_of_training_with_a_class_subset(synthetic, changes):
    """--classes A S H N must not let O/X rows back in through A/V/D targets or soft labels."""
    from sercache.heads.fit.prepare import select_rows

    classes = ["A", "S", "H", "N"]
    table = read_labels("msp", str(synthetic.consensus), str(synthetic.detailed), classes)
    assert {"O", "X"} <= set(table.letter[table.rows("train")])
    cfg = HeadConfig(labels=str(synthetic.consensus), detailed=str(synthetic.detailed), classes=classes,
                     features=[synthetic.audio], **changes)
    train_rows, _, _ = select_rows(cfg, table)
    assert not set(table.letter[train_rows]) & {"O", "X"}
    with_ox, _, _ = select_rows(cfg.replace(include_ox=True), table)
    assert {"O", "X"} <= set(table.letter[with_ox])


# ----------------------------------------------------------------------------------- defect 3
def _attribute_only_csv(synthetic, path: Path) -> Path:
    splits = {"Train": "train", "Development": "dev", "Test1": "test1"}
    with open(synthetic.consensus) as handle, open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "split", "arousal", "valence", "dominance"])
        for row in csv.DictReader(handle):
            writer.writerow([row["FileName"], splits[row["Split_Set"]], row["EmoAct"], row["EmoVal"], row["EmoDom"]])
    return path


def test_balanced_selection_without_classes_is_refused_before_training(synthetic, tmp_path):
    labels = _attribute_only_csv(synthetic, tmp_path / "avd.csv")
    cfg = HeadConfig(corpus="csv", labels=str(labels), store=str(synthetic.store), features=[synthetic.audio],
                     loss="ccc", select="balanced", out=str(tmp_path / "run"), **TINY)
    with pytest.raises(HeadError, match="--select balanced"):
        train(cfg, verbose=False)
    assert not (tmp_path / "run" / "epochs.json").exists()  # refused before the first epoch


def test_no_finite_selection_value_is_a_head_error_not_an_assert(synthetic, tmp_path, monkeypatch):
    from sercache.heads.fit import loop

    monkeypatch.setattr(loop, "selection_value", lambda *args, **kwargs: float("nan"))
    cfg = HeadConfig(labels=str(synthetic.consensus), store=str(synthetic.store), features=[synthetic.audio],
                     out=str(tmp_path / "run"), **TINY)
    with pytest.raises(HeadError, match="selection"):
        train(cfg, verbose=False)


# ----------------------------------------------------------------------------------- defect 4
def _run(tmp_path: Path, name: str, balanced: float, plain: float):
    from sercache.heads.after.outputs import load_run

    path = tmp_path / name
    path.mkdir()
    metrics = {"dev_split": "dev", "best_epoch": 1, "epochs_run": 1,
               "selection": {"metric": "balanced_macro_f1", "value": balanced},
               "splits": {"dev": {"n": 10, "macro_f1": plain, "micro_f1": plain, "accuracy": plain,
                                  "balanced_accuracy": plain},
                          "test1": {"n": 10, "macro_f1": plain, "micro_f1": plain, "accuracy": plain,
                                    "balanced_accuracy": plain}}}
    config = {"loss": "ce", "select": "balanced", "features": ["x/L-1"],
              "resolved": {"classes": {"letters": ["A", "B"], "names": ["A", "B"]}, "task": "class"}}
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "config.json").write_text(json.dumps(config))
    return load_run(path, read_splits=False)


def test_ensemble_and_leaderboard_rank_balanced_runs_by_their_balanced_value(tmp_path):
    from sercache.heads.after.ensemble import Member
    from sercache.heads.after.report import build_report, leaderboard_rows

    good = _run(tmp_path, "good", balanced=0.9, plain=0.5)   # best on the balanced metric it was selected on
    other = _run(tmp_path, "other", balanced=0.6, plain=0.8)
    assert Member(good).dev_value == pytest.approx(0.9)
    assert Member(other).dev_value == pytest.approx(0.6)
    boards = leaderboard_rows([other, good], ["other", "good"])
    assert list(boards) == ["balanced_macro_f1"]
    rows = boards["balanced_macro_f1"]
    assert [r["label"] for r in rows] == ["good", "other"]
    assert [r["dev"] for r in rows] == pytest.approx([0.9, 0.6])
    build_report([good.path, other.path], tmp_path / "report", html_page=False, curves=False, verbose=False)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "balanced" in text and "90.00" in text


# ----------------------------------------------------------------------------------- defect 5
@pytest.fixture(scope="module")
def ct2_store(tmp_path_factory):
    pytest.importorskip("ctranslate2")
    from sercache.extract import ExtractConfig, run_extraction

    root = tmp_path_factory.mktemp("ct2")
    write_audio(root / "Audios" / "a.wav", 0.6, seed=1)
    cfg = ExtractConfig(input=str(root / "Audios"), store=str(root / "store"), model="whisper-base-ct2",
                        whisper_mode="trimmed", workers=0, progress=False, device="cpu")
    run_extraction(cfg)
    return root, cfg


def test_ctranslate2_provenance_says_last_layer_and_old_stores_still_work(ct2_store):
    from dataclasses import replace

    from sercache.extract import run_extraction

    root, cfg = ct2_store
    fs_dir = root / "store" / "whisper-base-ct2" / "L-1"
    meta = json.loads((fs_dir / "featureset.json").read_text())
    assert meta["layers"] == "-1" and meta["layer_indices"] == [-1] and meta["n_hidden_states"] is None
    # a store written before the fix recorded [0]: it still reads as the last layer and still resumes
    (fs_dir / "featureset.json").write_text(json.dumps({**meta, "layer_indices": [0]}))
    assert open_store(root / "store")["whisper-base-ct2/L-1"].meta["layer_indices"] == [-1]
    write_audio(root / "Audios" / "b.wav", 0.5, seed=2)
    assert run_extraction(replace(cfg)).extracted == 1


def test_predict_provenance_check_accepts_old_ct2_records_and_still_refuses_other_layers(tmp_path):
    from sercache.heads.fit.checkpoint import load_head, save_head
    from sercache.heads.fit.model import FusionHead, HeadSpec

    cfg = HeadConfig(features=["whisper-base-ct2/L-1"], hidden=8, d_model=8, ff_dim=16, layers=1)
    model = FusionHead(HeadSpec.from_config(cfg, {"audio": (4,)}, 2))
    base = {"name": "whisper-base-ct2/L-1", "model": "whisper-base-ct2", "kind": "audio", "layers": "-1",
            "frame_rate": 50.0, "frame_shape": [4], "reduction": "none", "weights_sha256": "ab" * 32,
            "whisper_mode": "trimmed", "dtype": "float16", "text_source": None}
    old = {**base, "layer_indices": [0]}  # what CTranslate2 sets recorded before the fix
    save_head(tmp_path / "best.safetensors", model, {"classes": {"letters": ["A", "B"], "names": ["A", "B"]},
                                                    "features": {"audio": [old]}})
    load_head(tmp_path / "best.safetensors", features={"audio": [{**base, "layer_indices": [-1]}]})
    with pytest.raises(HeadError, match="layer"):  # a genuine first-layer input is not the last layer
        load_head(tmp_path / "best.safetensors", features={"audio": [{**base, "layers": "0", "layer_indices": [0]}]})


# ----------------------------------------------------------------------------------- defect 6
def test_export_keeps_failures_when_the_last_utterance_fills_a_part(tmp_path, monkeypatch):
    import sercache.cache.cli as cache_cli

    store = Store.create(tmp_path / "src", "zarr")
    writer = FeatureSetWriter(store, "m/L-1", StorageConfig(backend="zarr"))
    writer.ensure_metadata({"model": "m", "kind": "audio", "frame_rate": 50.0, "sample_rate": 16000,
                            "frame_shape": [8], "layers": "-1", "layer_indices": [3], "reduction": "none"})
    rng = np.random.default_rng(0)
    recs = [UtteranceRecord(f"u{i}", rng.standard_normal((10, 8)).astype(np.float32), f"fp{i}", f"/a/u{i}.wav", "1:2")
            for i in range(3)]
    failure = {"id": "bad.wav", "source": "/a/bad.wav", "error": "/a/bad.wav: is silent", "stat": "1:2"}
    writer.commit_part(0, recs, [8], failures=[failure])
    # parts of exactly 30 float16 rows of width 8: the third utterance fills the first part
    monkeypatch.setattr(cache_cli, "StorageConfig",
                        functools.partial(StorageConfig, part_megabytes=30 * 16 / (1 << 20)))
    target = Store.create(tmp_path / "dst", "zarr")
    cache_cli.copy_feature_set(open_store(store.root)["m/L-1"], target, None, "none")
    copied = open_store(target.root)["m/L-1"]
    assert sorted(copied.ids) == ["u0", "u1", "u2"]
    assert copied.failures == [failure]


# ----------------------------------------------------------------------------------- defect 7
def test_text_parts_are_never_replaced_by_a_concurrent_writer(tmp_path, monkeypatch):
    import sercache.cache.texts as texts
    from sercache.cache.texts import TextSet, TextSetWriter

    store = Store.create(tmp_path / "store", "zarr")
    writer = TextSetWriter(store, "asr/x")
    writer.ensure_metadata({"kind": "asr", "model": "x"})
    # both writers computed their part number before either committed: the numbers collide
    monkeypatch.setattr(texts, "committed_parts", lambda *args, **kwargs: {})
    first = writer.commit([{"id": "a", "text": "first writer"}])
    second = TextSetWriter(store, "asr/x").commit([{"id": "b", "text": "second writer"}])
    assert first != second
    monkeypatch.undo()
    records = TextSet(store, "asr/x").records
    assert records["a"]["text"] == "first writer" and records["b"]["text"] == "second writer"
    assert not [p for p in (writer.path / "parts").iterdir() if p.name.startswith(".tmp-")]


def test_failed_text_commit_leaves_no_temporary(tmp_path, monkeypatch):
    import sercache.cache.texts as texts
    from sercache.cache.texts import TextSetWriter

    store = Store.create(tmp_path / "store", "zarr")
    writer = TextSetWriter(store, "asr/x")
    writer.ensure_metadata({"kind": "asr", "model": "x"})

    def disk_full(path):
        raise OSError("No space left on device")

    monkeypatch.setattr(texts, "fsync_tree", disk_full)
    with pytest.raises(OSError, match="No space"):
        writer.commit([{"id": "a", "text": "x"}])
    assert list((writer.path / "parts").iterdir()) == []


# ----------------------------------------------------------------------------------- defect 8
def _manifest_with_bad_files(root: Path) -> Path:
    make_corpus(root, [1.0, 1.2])
    audios = root / "Audios"
    sf.write(audios / "empty.wav", np.zeros(0, np.float32), 16000)
    sf.write(audios / "short.wav", np.full(300, 0.1, np.float32), 16000)
    sf.write(audios / "silent.wav", np.zeros(16000, np.float32), 16000)
    manifest = root / "manifest.csv"
    rows = [f"{p.name},{p}" for p in sorted(audios.iterdir())] + [f"gone.wav,{audios / 'gone.wav'}"]
    manifest.write_text("id,path\n" + "\n".join(rows) + "\n")
    return manifest


def _extract_config(manifest: Path, store: Path, model: str, **changes):
    from sercache.extract import ExtractConfig

    return ExtractConfig(**{**dict(input=str(manifest), store=str(store), model=model, workers=0, progress=False,
                                   device="cpu"), **changes})


def test_silent_audio_is_named_by_the_pre_check_in_both_modes(tmp_path, tiny_models):
    from sercache.extract import ExtractionError, run_extraction

    manifest = _manifest_with_bad_files(tmp_path / "c")
    with pytest.raises(ExtractionError) as caught:
        run_extraction(_extract_config(manifest, tmp_path / "stop", tiny_models["wavlm"]))
    message = str(caught.value)
    assert "4 utterance(s) cannot be extracted" in message
    for name in ("empty.wav", "short.wav", "gone.wav", "silent.wav: is silent"):
        assert name in message
    assert not (tmp_path / "stop/tiny-wavlm/L-1/parts").exists()
    run_extraction(_extract_config(manifest, tmp_path / "skip", tiny_models["wavlm"], on_error="skip"))
    failed = {f["id"]: f["error"] for f in open_store(tmp_path / "skip")["tiny-wavlm/L-1"].failures}
    assert set(failed) == {"empty.wav", "short.wav", "gone.wav", "silent.wav"}
    for error in failed.values():  # the same check gave the same words in both modes
        assert error in message


def test_exit_code_of_a_store_with_recorded_failures_does_not_depend_on_the_path(tmp_path, tiny_models):
    from sercache.extract.cli import main

    manifest = _manifest_with_bad_files(tmp_path / "c")
    argv = ["--input", str(manifest), "--store", str(tmp_path / "store"), "--model", tiny_models["wavlm"],
            "--workers", "0", "--no-progress", "--device", "cpu"]
    assert main(argv + ["--on-error", "skip"]) == 0
    nothing_to_do = main(argv)
    write_audio(tmp_path / "c" / "Audios" / "late.wav", 0.8, seed=7)
    with open(manifest, "a") as handle:
        handle.write(f"late.wav,{tmp_path / 'c' / 'Audios' / 'late.wav'}\n")
    extracted_more = main(argv)
    assert nothing_to_do == extracted_more == 1

"""Bad input fails before training starts, with a message naming what is wrong."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from sercache.heads import HeadConfig, train
from sercache.heads.cli import main
from sercache.heads.errors import HeadError
from sercache.testing import make_synthetic_corpus

torch.set_num_threads(1)
TINY = dict(hidden=8, d_model=8, ff_dim=16, batch_size=32, max_epochs=1, progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_synthetic_corpus(tmp_path_factory.mktemp("bad"), n_train=120, n_dev=48, n_test=16, audio_dim=8,
                                 text_dim=4, mean_seconds=0.3, std_seconds=0.1, seed=7)


def cfg(corpus, tmp_path, **changes):
    values = dict(store=str(corpus.store), features=[corpus.audio], labels=str(corpus.consensus),
                  out=str(tmp_path / "run"), **TINY)
    values.update(changes)
    return HeadConfig(**values)


def write_set(corpus, name, dim, model="synthetic-audio", kind="audio", length_delta=0, nan_in=None,
              monkeypatch=None):
    from sercache.cache import FeatureSetWriter, StorageConfig, UtteranceRecord, open_store

    store = open_store(corpus.store)
    ref = store[corpus.audio]
    writer = FeatureSetWriter(store, name, StorageConfig())
    writer.ensure_metadata({"model": model, "kind": kind, "frame_rate": 50.0, "sample_rate": 16000,
                            "frame_shape": [dim], "layers": "-3", "layer_indices": [-3], "reduction": "none",
                            "whisper_mode": None, "weights_sha256": None})
    records = []
    for uid, length in zip(ref.ids, ref.lengths()):
        x = np.ones((int(length) + length_delta, dim), np.float32)
        if uid == nan_in:
            x[1, 0] = np.nan
        records.append(UtteranceRecord(uid, x, "f", "s", ""))
    if nan_in is not None:  # the writer refuses NaN; bypass it to simulate a corrupted / foreign cache
        from sercache.cache import writer as writer_module
        from sercache.cache.encoding import EncodedRows

        monkeypatch.setattr(writer_module, "encode", lambda v, *a, **k: EncodedRows(v.astype(np.float16), 0))
    writer.commit_part(0, records, frame_shape=[dim])


def test_label_ids_missing_from_cache(corpus, tmp_path):
    rows = list(csv.DictReader(open(corpus.consensus)))
    rows.append({**rows[0], "FileName": "MSP-PODCAST_9999_0001.wav"})
    path = tmp_path / "labels_consensus.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(HeadError, match=r"1 labelled utterance\(s\) of 'train' are missing from the cache.*"
                                        r"MSP-PODCAST_9999_0001\.wav"):
        train(cfg(corpus, tmp_path, labels=str(path)), verbose=False)
    result = train(cfg(corpus, tmp_path, labels=str(path), drop_missing=True), verbose=False)
    assert any("dropped 1" in n for n in result.summary["notes"])


def test_mismatched_dims_provenance_and_lengths(corpus, tmp_path, monkeypatch):
    write_set(corpus, "synthetic-audio/L-3", dim=5)
    with pytest.raises(HeadError, match="different dims"):
        train(cfg(corpus, tmp_path, features=[corpus.audio, "synthetic-audio/L-3"]), verbose=False)
    write_set(corpus, "other-model/L-1", dim=8, model="other-model")
    with pytest.raises(HeadError, match="differ in provenance 'model'"):
        train(cfg(corpus, tmp_path, features=[corpus.audio, "other-model/L-1"]), verbose=False)
    write_set(corpus, "synthetic-audio/L-2", dim=8, length_delta=1)
    with pytest.raises(HeadError, match="disagree on the length"):
        train(cfg(corpus, tmp_path, features=[corpus.audio, "synthetic-audio/L-2"]), verbose=False)
    with pytest.raises(HeadError, match="has kind 'text'.*--features"):
        train(cfg(corpus, tmp_path, features=[corpus.text]), verbose=False)
    with pytest.raises(HeadError, match="no feature set 'nope/L-1'"):
        train(cfg(corpus, tmp_path, features=["nope/L-1"]), verbose=False)


def test_stacked_layers_of_one_encoder_train(corpus, tmp_path):
    write_set(corpus, "synthetic-audio/L-4", dim=8)
    result = train(cfg(corpus, tmp_path, features=[corpus.audio, "synthetic-audio/L-4"]), verbose=False)
    assert result.summary["splits"]["dev"]["n"] > 0


def test_nan_features_name_the_utterance(corpus, tmp_path, monkeypatch):
    victim = corpus.ids["dev"][3]
    write_set(corpus, "synthetic-audio/L-5", dim=8, nan_in=victim, monkeypatch=monkeypatch)
    with pytest.raises(HeadError, match=f"utterance '{victim}' has NaN/inf"):
        train(cfg(corpus, tmp_path, features=["synthetic-audio/L-5"]), verbose=False)


def test_empty_class_in_a_split(corpus, tmp_path):
    rows = list(csv.DictReader(open(corpus.consensus)))
    for split, flag in (("Train", "train"), ("Development", "dev")):
        changed = [{**r, "EmoClass": "N"} if r["EmoClass"] == "F" and r["Split_Set"] == split else r for r in rows]
        path = tmp_path / f"no-fear-{split}.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(changed)
        with pytest.raises(HeadError, match=rf"F \(Fear\) have no samples in split '{flag}'"):
            train(cfg(corpus, tmp_path, labels=str(path)), verbose=False)
    with pytest.warns(UserWarning, match="no samples in split 'dev'"):
        train(cfg(corpus, tmp_path, labels=str(path), allow_empty_classes=True), verbose=False)


@pytest.mark.parametrize("changes, message", [
    (dict(loss="hinge"), "--loss: unknown value 'hinge'"),
    (dict(weights="inverse"), "--weights: unknown value 'inverse'"),
    (dict(sampler="random"), "--sampler: unknown value 'random'"),
    (dict(loss="ccc", task="class"), "regression loss"),
    (dict(soft_labels="S"), "need --detailed"),
    (dict(annotation_dropout=0.2), "needs --soft-labels"),
    (dict(features=[]), "no input"),
    (dict(loss="kld", loss_norm="weight-sum"), "weight-sum is defined for hard-label"),
    (dict(d_model=10, heads=3), "not divisible"),
])
def test_bad_config_values(corpus, tmp_path, changes, message):
    with pytest.raises(HeadError, match=message):
        cfg(corpus, tmp_path, **changes).validate()


def test_unknown_split_and_store(corpus, tmp_path):
    with pytest.raises(HeadError, match=r"--dev-split 'dev2': no such split.*train, dev, test1"):
        train(cfg(corpus, tmp_path, dev_split="dev2"), verbose=False)
    with pytest.raises(HeadError, match="cannot open feature store"):
        train(cfg(corpus, tmp_path, store=str(tmp_path / "nowhere")), verbose=False)


def test_cli_reports_errors_without_traceback(corpus, tmp_path, capsys):
    code = main(["--store", str(corpus.store), "--features", corpus.audio, "--labels", str(corpus.consensus),
                 "--out", str(tmp_path / "r"), "--weights", "prior", "--soft-labels", "P"])
    assert code == 2
    assert "train-head: error:" in capsys.readouterr().err


def _text_set(corpus, name, source_kind, source_name):
    from sercache.cache import FeatureSetWriter, StorageConfig, UtteranceRecord, open_store

    store = open_store(corpus.store)
    writer = FeatureSetWriter(store, name, StorageConfig())
    writer.ensure_metadata({"model": "tiny-roberta", "kind": "text", "frame_rate": None, "sample_rate": None,
                            "frame_shape": [4], "layers": "mean(-4..-1)", "layer_indices": [1, 2, 3, 4],
                            "reduction": "mean", "whisper_mode": None, "weights_sha256": None,
                            "text_source": {"name": source_name, "kind": source_kind}})
    records = [UtteranceRecord(u, np.ones((5, 4), np.float32), "f", "s", "") for u in store[corpus.audio].ids]
    writer.commit_part(0, records,
                       frame_shape=[4])
    return name


def test_human_transcript_features_refused_unless_allowed(corpus, tmp_path):
    human = _text_set(corpus, "roberta/human/x", "human", "human")
    asr = _text_set(corpus, "roberta/asr/x", "asr", "asr/whisper")
    with pytest.raises(HeadError, match="human transcripts.*--allow-human-text"):
        train(cfg(corpus, tmp_path, text_features=[human]))
    train(cfg(corpus, tmp_path, text_features=[human], allow_human_text=True))
    with pytest.raises(HeadError, match="different transcripts"):
        train(cfg(corpus, tmp_path, text_features=[asr, human], allow_human_text=True))

"""A corpus of one's own: a label table in whatever columns and split names it has, recognised without
--corpus, with --classes keeping a subset of its word labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from sercache.cache import UtteranceRecord
from sercache.cli import main
from sercache.heads.errors import HeadError
from sercache.heads.inputs.corpora import read_labels
from sercache.testing import write_audio_feature_set

WORDS = ("angry", "happy", "neutral", "sad")
SPLITS = ("training", "validation", "testing")


def write_corpus(root: Path, header: tuple[str, str, str], delimiter: str = ",", extra_label: str = "fear") -> Path:
    """A store of 6-d features for clip_NNNN.wav and a label table with the given id, label and split columns;
    two clips carry a label outside the four classes."""
    rng = np.random.default_rng(0)
    rows, records = [], []
    for i in range(120):
        word = WORDS[i % 4] if i not in (7, 50) else extra_label
        uid = f"clip_{i:04d}.wav"
        x = rng.normal(size=(int(rng.integers(5, 15)), 6)).astype(np.float32)
        x[:, WORDS.index(word) if word in WORDS else 4] += 2.0
        records.append(UtteranceRecord(uid, x, "f", "s", ""))
        rows.append(delimiter.join((uid, word, SPLITS[0] if i < 72 else SPLITS[1] if i < 96 else SPLITS[2])))
    write_audio_feature_set(root / "store", "enc/L-1", records)
    table = root / ("labels.tsv" if delimiter == "\t" else "labels.csv")
    table.write_text(delimiter.join(header) + "\n" + "\n".join(rows) + "\n")
    return table


TINY = ["--hidden", "8", "--d-model", "8", "--ff-dim", "16", "--batch-size", "16", "--max-epochs", "1",
        "--no-progress", "--threads", "1"]


def test_a_word_labelled_table_trains_without_naming_its_format(tmp_path, capsys):
    labels = write_corpus(tmp_path, ("path", "emotion", "partition"), delimiter="\t")
    with pytest.warns(UserWarning) as caught:
        code = main(["train", "--store", str(tmp_path / "store"), "--features", "enc/L-1", "--labels", str(labels),
                     "--classes", *WORDS, "--out", str(tmp_path / "run"), *TINY])
    assert code == 0
    said = [str(w.message) for w in caught]
    assert any("left out of classification (fear 2 rows)" in m for m in said)
    assert any(m.startswith("5 optimiser step(s) per epoch (70 training rows at --batch-size 16)") and
               "--preset small-data" in m for m in said)
    out = capsys.readouterr().out
    assert f"corpus: csv (recognised from --labels {labels}" in out
    assert re.search(r"^class counts\s+angry\s+happy\s+neutral\s+sad\s+\(none\)$", out, re.M)
    assert re.search(r"^train\s+18\s+18\s+17\s+17\s+0$", out, re.M)
    assert re.search(r"^test\s+6\s+6\s+6\s+6\s+0$", out, re.M)
    assert re.search(r"^95 % interval \(test, bootstrap over its utterances\): Macro-F1 [\d.]+-[\d.]+, UA ", out, re.M)
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["splits"]["test"]
    low, high = test["ci95"]["macro_f1"]
    assert 0 <= low <= high <= 1 and set(test["ci95"]) == {"macro_f1", "balanced_accuracy", "accuracy"}
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["corpus"] == "csv" and config["resolved"]["classes"]["letters"] == list(WORDS)
    assert sorted(p.name for p in (tmp_path / "run").glob("predictions_*.csv")) == ["predictions_dev.csv",
                                                                                   "predictions_test.csv"]
    assert config["resolved"]["rows"] == {"train": 70, "dev": 24, "predict_dev": 24, "predict_test": 24}
    header = (tmp_path / "run" / "predictions_test.csv").read_text().splitlines()[0]
    assert header == "id,label,Prediction,prob_angry,prob_happy,prob_neutral,prob_sad"  # not MSP's FileName,EmoClass
    assert main(["predict", str(tmp_path / "run"), "--out", str(tmp_path / "pred"), "--threads", "1"]) == 0
    assert (tmp_path / "pred" / "submission_categorical.csv").read_text().startswith("id,label\nclip_0000.wav,")


def test_named_columns_and_the_errors_that_list_what_is_accepted(tmp_path, capsys):
    labels = write_corpus(tmp_path, ("clip", "mood", "fold"))
    base = ["train", "--store", str(tmp_path / "store"), "--features", "enc/L-1", "--labels", str(labels),
            "--out", str(tmp_path / "run"), *TINY]
    assert main(base) == 2
    assert "needs an id and a split column (id: id/utterance_id/uid/utt_id/utt/utterance/FileName/filename/file/path " \
           "or --id-column; split: split/Split_Set/set/partition or --split-column); found clip, mood, fold" \
           in capsys.readouterr().err
    assert main(base + ["--id-column", "clip", "--split-column", "fold", "--label-column", "mood"]) == 2
    assert "class(es) fear have no samples in split 'dev'" in capsys.readouterr().err  # named once, not "fear (fear)"
    assert main(base + ["--id-column", "clip", "--split-column", "fold", "--label-column", "mood",
                        "--allow-empty-classes"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]["classes"]["letters"] == \
        sorted([*WORDS, "fear"])
    assert main(base + ["--id-column", "name", "--split-column", "fold"]) == 2
    assert "--id-column 'name' is not a column (found: clip, mood, fold)" in capsys.readouterr().err
    assert main(base + ["--corpus", "msp", "--id-column", "clip"]) == 2
    assert "apply to a generic CSV" in capsys.readouterr().err


def test_classes_keep_a_subset_for_every_corpus_and_refuse_a_typo(tmp_path):
    labels = write_corpus(tmp_path, ("id", "label", "split"))
    table = read_labels("csv", str(labels), classes=["sad", "angry"])
    assert table.classes.letters == ("sad", "angry") and int((table.label >= 0).sum()) == 59
    assert sorted(set(table.split)) == ["dev", "test", "train"]  # validation / testing / training
    with pytest.raises(HeadError, match=r"--classes angy not among the file's labels \(angry, fear, happy"):
        read_labels("csv", str(labels), classes=["angy", "sad"])
    release = tmp_path / "IEMOCAP" / "Session1" / "dialog" / "EmoEvaluation"
    release.mkdir(parents=True)
    (release / "Ses01F_impro01.txt").write_text(
        "% header\n\n[0.0 - 1.0]\tSes01F_impro01_F000\tang\t[2.5, 3.0, 3.5]\n\n"
        "[1.0 - 2.0]\tSes01F_impro01_M001\texc\t[2.5, 3.0, 3.5]\n\n[2.0 - 3.0]\tSes01F_impro01_F002\tneu\t[2, 3, 3]\n")
    four = read_labels("auto", str(tmp_path / "IEMOCAP"))
    assert four.classes.letters == ("A", "S", "H", "N") and four.label.tolist() == [0, 2, 3]
    two = read_labels("iemocap", str(tmp_path / "IEMOCAP"), classes=["H", "A"])
    assert two.classes.letters == ("H", "A") and two.label.tolist() == [1, 0, -1]


@pytest.mark.parametrize("flag, value, message", [
    ("--gamma", "-1", "--gamma -1: must be >= 0"), ("--dropout", "1", "--dropout 1: must be in [0, 1)"),
    ("--lr", "0", "--lr 0: must be > 0"), ("--plateau-factor", "1.5", "--plateau-factor 1.5: must be in (0, 1]"),
    ("--batch-size", "0", "--batch-size 0: must be >= 1")])
def test_out_of_range_values_are_refused_by_name(flag, value, message, capsys):
    assert main(["train", "--features", "a/L-1", "--labels", "x.csv", flag, value]) == 2
    assert f"error: {message}" in capsys.readouterr().err


def test_a_preset_named_but_not_applied_is_refused():
    """HeadConfig(preset=...) cannot apply the preset (a default and a given value look alike): refused, not trained
    as the paper's defaults; from_values (the command line's way) lays the preset under the given values."""
    from sercache.heads.fit.config import HeadConfig
    from sercache.heads.fit.plan import check

    with pytest.raises(HeadError, match=r"preset 'small-data' is named but none of its values is set .*from_values"):
        check(HeadConfig(features=["a/L-1"], preset="small-data"))
    assert check(HeadConfig.from_values({"features": ["a/L-1"], "preset": "small-data", "lr": 1e-3})).batch_size == 32

"""Every trained run puts its scores in context: majority-class and chance floors per scored split, and the
same scores per gender and per speaker, in metrics.json and in the printed summary (issue "honest about
noise", item 6). Numbers are checked against sklearn and against separately coded computations."""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sercache.cache import UtteranceRecord
from sercache.cli import main
from sercache.heads.fit.metrics import chance_macro_f1, group_scores, reference_scores
from sercache.heads.fit.rundir import summary_table
from sercache.testing import write_audio_feature_set

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def sk_scores(y_true, y_pred, n_classes: int) -> dict[str, float]:
    return {"macro_f1": sklearn_metrics.f1_score(y_true, y_pred, labels=list(range(n_classes)), average="macro",
                                                 zero_division=0),
            "balanced_accuracy": sklearn_metrics.balanced_accuracy_score(y_true, y_pred),
            "accuracy": sklearn_metrics.accuracy_score(y_true, y_pred)}


def ccc(pred: np.ndarray, target: np.ndarray) -> float:
    """Lin's concordance correlation with population moments, coded apart from heads/fit/metrics.py."""
    cov = np.cov(pred, target, bias=True)[0, 1]
    return 2 * cov / (np.var(pred) + np.var(target) + (np.mean(pred) - np.mean(target)) ** 2)


# ------------------------------------------------------------------------------------------- chance
def test_chance_macro_f1_is_the_expected_macro_f1_of_uniform_guessing():
    y = np.array([0, 0, 0, 0, 1, 2])  # imbalanced: chance Macro-F1 is well below 1/C
    exact = np.mean([sk_scores(y, np.array(guess), 3)["macro_f1"]  # all 3^6 equally likely guess vectors
                     for guess in itertools.product(range(3), repeat=len(y))])
    assert exact < 0.30  # the test can tell it from 1/3
    simulated = chance_macro_f1(y, 3, draws=20000, seed=0)
    assert simulated == pytest.approx(exact, abs=0.005)
    assert chance_macro_f1(y, 3, draws=20000, seed=0) == simulated  # seeded
    assert chance_macro_f1(y, 3, draws=20000, seed=1) != simulated


def test_chance_macro_f1_of_two_balanced_classes_is_near_one_half():
    y = np.repeat([0, 1], 3000)
    assert chance_macro_f1(y, 2, draws=500, seed=3) == pytest.approx(0.5, abs=0.005)


def test_chance_macro_f1_on_a_large_split_draws_in_smaller_chunks():
    """Beyond 4,194 rows fewer than 1,000 guess vectors are drawn at once; the expectation is unchanged:
    with 8 equally frequent classes every class' F1 is about 1/8."""
    y = np.tile(np.arange(8), 2500)
    assert chance_macro_f1(y, 8, draws=300, seed=0) == pytest.approx(1 / 8, abs=0.003)


# -------------------------------------------------------------------------------------------- majority
def test_reference_scores_match_sklearn_for_the_majority_class_and_uniform_guessing():
    y = np.array([0, 0, 1, 2, 2, 2, 1, 3])
    ref = reference_scores(y, 0, ("A", "B", "C", "D"), draws=4000, seed=0)
    assert ref["majority"]["class"] == "A"
    expected = sk_scores(y, np.zeros_like(y), 4)
    assert {k: ref["majority"][k] for k in expected} == pytest.approx(expected)
    assert expected["macro_f1"] == pytest.approx(2 * 0.25 / 1.25 / 4)  # A: precision 2/8, recall 1
    assert ref["chance"]["balanced_accuracy"] == ref["chance"]["accuracy"] == 0.25
    assert ref["chance"]["macro_f1"] == pytest.approx(chance_macro_f1(y, 4, draws=4000, seed=0))


# ---------------------------------------------------------------------------------------------- groups
def test_group_scores_equal_sklearn_on_each_group_and_skip_unknown_and_unscored_rows():
    rng = np.random.default_rng(5)
    n = 90
    y_true = rng.integers(-1, 3, n)  # -1: no class
    y_pred = np.where(rng.random(n) < 0.6, np.maximum(y_true, 0), rng.integers(0, 3, n))
    groups = np.array(rng.choice(["s1", "s2", "s3", ""], n), dtype=object)
    groups[np.flatnonzero(y_true < 0)[:6]] = "s4"  # a speaker without any class label
    avd_true = rng.normal(size=(n, 3))
    avd_true[rng.random(n) < 0.2, 1] = np.nan
    avd_pred = avd_true * 0.5 + rng.normal(size=(n, 3))
    avd_pred = np.nan_to_num(avd_pred)
    out = group_scores(groups, ("a", "b", "c"), y_true, y_pred, avd_true, avd_pred)
    assert "" not in out
    for name in ("s1", "s2", "s3"):
        member = groups == name
        scored = member & (y_true >= 0)
        assert out[name]["n"] == scored.sum()
        assert {k: out[name][k] for k in ("macro_f1", "balanced_accuracy", "accuracy")} == \
            pytest.approx(sk_scores(y_true[scored], y_pred[scored], 3))
        full = member & np.isfinite(avd_true).all(1)
        assert out[name]["n_avd"] == full.sum()
        assert out[name]["ccc_mean"] == pytest.approx(np.mean([ccc(avd_pred[full, j], avd_true[full, j])
                                                               for j in range(3)]))
    # s4: rows without a class only, so no classification scores; its CCC is still there, n = its CCC rows
    assert "macro_f1" not in out["s4"] and out["s4"]["n"] == out["s4"]["n_avd"] >= 2
    only_cls = group_scores(groups, ("a", "b", "c"), y_true, y_pred)
    assert set(only_cls) == {"s1", "s2", "s3"} and "ccc_mean" not in only_cls["s1"]


def test_summary_lines_for_references_and_groups():
    split = {"n": 40, "macro_f1": 0.5, "accuracy": 0.6, "balanced_accuracy": 0.55,
             "reference": {"majority": {"class": "N", "macro_f1": 0.1, "balanced_accuracy": 0.25, "accuracy": 0.4},
                           "chance": {"macro_f1": 0.2345, "balanced_accuracy": 0.25, "accuracy": 0.25}},
             "by_gender": {"female": {"n": 22, "macro_f1": 0.4, "balanced_accuracy": 0.45, "accuracy": 0.5},
                           "male": {"n": 18, "macro_f1": 0.6, "balanced_accuracy": 0.65, "accuracy": 0.7}},
             "by_speaker": {f"s{i}": {"n": 4, "macro_f1": 0.3, "balanced_accuracy": 0.1 * i, "accuracy": 0.3}
                            for i in range(1, 6)}}
    text = summary_table({"splits": {"test": split}})
    assert "reference (test): majority class N: Macro-F1 10.00, UA 25.00, WA 40.00; " \
           "chance: Macro-F1 23.45, UA 25.00, WA 25.00" in text
    assert "by gender (test): female n=22 Macro-F1 40.00, UA 45.00; male n=18 Macro-F1 60.00, UA 65.00" in text
    assert "by speaker (test, 5 speakers): UA min 10.00 median 30.00 max 50.00" in text
    regression = {"n_avd": 9, "ccc_mean": 0.3, "by_speaker": {"a": {"n": 3, "ccc_mean": 0.2, "n_avd": 3},
                                                            "b": {"n": 3, "ccc_mean": 0.4, "n_avd": 3}}}
    text = summary_table({"splits": {"test": regression}})
    assert "by speaker (test, 2 speakers): CCC min 0.2000 median 0.3000 max 0.4000" in text
    assert "reference (" not in text and "by gender" not in text


# ------------------------------------------------------------------------------------------ end to end
WORDS = ("angry", "happy", "neutral", "sad")


def write_corpus(root: Path) -> tuple[Path, list[dict[str, str]]]:
    """160 clips of 6-d features; train has more 'sad' than any other class; gender and speaker columns with
    some unknowns (blank speaker, gender 'unknown')."""
    rng = np.random.default_rng(0)
    rows, records = [], []
    for i in range(160):
        word = "sad" if i < 96 and i % 8 == 1 else WORDS[i % 4]
        uid = f"clip_{i:04d}.wav"
        x = rng.normal(size=(int(rng.integers(5, 15)), 6)).astype(np.float32)
        x[:, WORDS.index(word)] += 1.0
        records.append(UtteranceRecord(uid, x, "f", "s", ""))
        split = "train" if i < 96 else "dev" if i < 128 else "test"
        gender = "unknown" if i % 10 == 9 else ("female", "male")[(i // 3) % 2]
        speaker = "" if i % 11 == 0 else f"spk{i % 7}"
        rows.append({"id": uid, "label": word, "split": split, "gender": gender, "speaker": speaker})
    write_audio_feature_set(root / "store", "enc/L-1", records)
    table = root / "labels.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return table, rows


TINY = ["--hidden", "8", "--d-model", "8", "--ff-dim", "16", "--batch-size", "16", "--max-epochs", "1",
        "--no-progress", "--threads", "1"]


@pytest.mark.parametrize("head", ["paper", "probe"])
def test_a_trained_run_writes_and_prints_references_and_groups(tmp_path, capsys, head):
    labels, rows = write_corpus(tmp_path)
    assert main(["train", "--store", str(tmp_path / "store"), "--features", "enc/L-1", "--labels", str(labels),
                 "--classes", *WORDS, "--head", head, "--out", str(tmp_path / "run"), *TINY]) == 0
    out = capsys.readouterr().out
    splits = json.loads((tmp_path / "run" / "metrics.json").read_text())["splits"]
    majority = Counter(r["label"] for r in rows if r["split"] == "train").most_common(1)[0][0]
    assert majority == "sad"
    test_rows = [r for r in rows if r["split"] == "test"]
    with open(tmp_path / "run" / "predictions_test.csv", newline="") as handle:
        predicted = {r["id"]: WORDS.index(r["Prediction"]) for r in csv.DictReader(handle)}
    y = np.array([WORDS.index(r["label"]) for r in test_rows])
    y_pred = np.array([predicted[r["id"]] for r in test_rows])

    for split in ("dev", "test"):
        m = splits[split]
        assert set(m["reference"]) == {"majority", "chance"} and m["reference"]["majority"]["class"] == "sad"
        assert m["reference"]["chance"]["balanced_accuracy"] == 0.25
        assert set(m["by_gender"]) == {"female", "male"}
        assert sum(g["n"] for g in m["by_gender"].values()) == m["n"] - sum(r["gender"] == "unknown" for r in rows
                                                                          if r["split"] == split)
    test = splits["test"]
    expected = sk_scores(y, np.full_like(y, WORDS.index("sad")), 4)
    assert {k: test["reference"]["majority"][k] for k in expected} == pytest.approx(expected)
    assert 0.15 < test["reference"]["chance"]["macro_f1"] < 0.3
    for key, column in (("by_gender", "gender"), ("by_speaker", "speaker")):
        names = sorted({r[column] for r in test_rows} - {"", "unknown"})
        assert sorted(test[key]) == names
        for name in names:
            member = np.array([r[column] == name for r in test_rows])
            assert test[key][name]["n"] == member.sum()
            assert {k: test[key][name][k] for k in expected} == pytest.approx(sk_scores(y[member], y_pred[member], 4))

    assert re.search(r"^reference \(test\): majority class sad: Macro-F1 [\d.]+, UA 25\.00, WA [\d.]+; "
                     r"chance: Macro-F1 [\d.]+, UA 25\.00, WA 25\.00$", out, re.M)
    assert re.search(r"^by gender \(dev\): female n=\d+ Macro-F1 [\d.]+, UA [\d.]+; male n=\d+ ", out, re.M)
    assert re.search(rf"^by speaker \(test, {len(test['by_speaker'])} speakers\): UA min [\d.]+ median [\d.]+ "
                     r"max [\d.]+$", out, re.M)
    assert "spk3" not in out  # speakers are listed in metrics.json, not on the console

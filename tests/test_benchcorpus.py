"""The benchmark corpus: deterministic, speaker-disjoint, balanced Test1, the ceiling as defined, and a
directory never mixes two plans."""

from __future__ import annotations

import csv
from collections import Counter

import pytest
from sklearn.metrics import f1_score

from sercache.benchcorpus import (
    CLASSES,
    BenchSizes,
    corpus_ceiling,
    plan_bench_corpus,
    synthesize_bench_corpus,
    train_subset_labels,
)

SMALL = BenchSizes(train=40, dev=16, test1=16, test2=8, test3=8)


def test_plan_is_deterministic_speaker_disjoint_and_test1_balanced():
    plan = plan_bench_corpus(BenchSizes(), seed=3)
    assert plan == plan_bench_corpus(BenchSizes(), seed=3)
    assert plan != plan_bench_corpus(BenchSizes(), seed=4)
    speakers: dict[str, set[int]] = {}
    for u in plan:
        speakers.setdefault(u.split, set()).add(u.speaker.number)
    splits = list(speakers)
    for i, a in enumerate(splits):
        for b in splits[i + 1:]:
            assert not speakers[a] & speakers[b], (a, b)
    test1 = Counter(u.emotion for u in plan if u.split == "Test1")
    assert set(test1.values()) == {BenchSizes().test1 // len(CLASSES)}
    train = Counter(u.emotion for u in plan if u.split == "Train")
    assert train["N"] > train["H"] > train["F"]  # MSP-Podcast's imbalance
    # the wording carries the emotion only partly: many sentences have no cue phrase at all
    assert sum(u.text.count(" ") < 9 for u in plan) > 0.2 * len(plan)


def test_files_labels_and_ceiling(tmp_path):
    root = synthesize_bench_corpus(tmp_path / "c", SMALL, seed=1)
    consensus = list(csv.DictReader(open(root / "Labels" / "labels_consensus.csv")))
    intended = {r["FileName"]: r for r in csv.DictReader(open(root / "Labels" / "intended_emotions.csv"))}
    assert len(consensus) == len(intended) == 88 == len(list((root / "Audios").glob("*.wav")))
    assert all(r["EmoClass"] == "" for r in consensus if r["Split_Set"] == "Test3")
    assert {r["EmoClass"] for r in consensus} - {""} <= set(CLASSES) | {"O", "X"}
    votes = Counter(line.split(",")[0] for line in open(root / "Labels" / "labels_detailed.csv").readlines()[1:])
    assert all(5 <= votes[r["FileName"]] <= 8 for r in consensus if r["Split_Set"] != "Test3")
    assert not (root / "Transcripts" / (consensus[-1]["FileName"][:-4] + ".txt")).exists()  # no test transcripts
    ceiling = corpus_ceiling(root)
    assert "Test3" not in ceiling
    test1 = [r for r in consensus if r["Split_Set"] == "Test1" and r["EmoClass"] in tuple(CLASSES)]
    expected = f1_score([r["EmoClass"] for r in test1], [intended[r["FileName"]]["Intended"] for r in test1],
                        labels=list(CLASSES), average="macro")
    assert ceiling["Test1"]["macro_f1"] == pytest.approx(expected)
    assert ceiling["Test1"]["n"] == len(test1)


def test_nested_train_subsets_and_one_plan_per_directory(tmp_path):
    root = synthesize_bench_corpus(tmp_path / "c", SMALL, seed=1)
    small = train_subset_labels(root, 10, tmp_path / "10.csv")
    large = train_subset_labels(root, 25, tmp_path / "25.csv")

    def train_ids(path):
        return {r["FileName"] for r in csv.DictReader(open(path)) if r["Split_Set"] == "Train"}

    assert len(train_ids(small)) == 10 and train_ids(small) < train_ids(large)
    others = [r for r in csv.DictReader(open(small)) if r["Split_Set"] != "Train"]
    assert len(others) == 48
    with pytest.raises(ValueError, match="use another directory"):
        synthesize_bench_corpus(root, BenchSizes(train=41), seed=1)
    synthesize_bench_corpus(root, SMALL, seed=1)  # same settings: reused

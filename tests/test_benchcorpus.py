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


@pytest.mark.parametrize("seed", [0, 1])
def test_speaker_splits_are_stratified_by_gender_and_accent(seed):
    from sercache.benchcorpus import ACCENTS, SPLIT_SHARES, speakers

    split = speakers(seed)
    pool = [s for v in split.values() for s in v]
    assert len(pool) == len({s.number for s in pool}) == 192
    female = sum(s.gender == "Female" for s in pool) / len(pool)
    for name, share in SPLIT_SHARES.items():
        people = split[name]
        assert abs(len(people) - share * len(pool)) <= 2, name
        assert abs(sum(s.gender == "Female" for s in people) - female * len(people)) <= 1, name
        accents = Counter(s.voice.split("+")[0] for s in people)
        assert len(accents) >= min(len(ACCENTS), len(people) // 3) and max(accents.values()) <= \
            -(-len(people) // len(ACCENTS)) + 1, (name, accents)


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


def test_signal_ceiling_reads_the_generating_parameters(tmp_path):
    """A linear model on what the signal carries (cue phrase, prosody settings, voice) learns the corpus far
    above chance and stays below the ceiling of the intended emotion; no audio is needed to compute it."""
    from sercache.benchcorpus import CUES, _write_labels, generating_parameters, signal_ceiling

    row = {"Text": f"{CUES['F'][2]} the package arrived this morning", "Pitch": "60", "Rate": "190",
           "Amplitude": "100", "Gap": "2", "Voice": "en+f1"}
    x = generating_parameters(row, ["en+f1", "en+m1"])
    cue_index = [c for e in CLASSES for c in CUES[e]].index(CUES["F"][2])
    assert x[cue_index] == 1 and x[:49].sum() == 1 and x[49] == 60 and list(x[-2:]) == [1, 0]
    assert generating_parameters({**row, "Text": "the package arrived this morning"}, ["en+f1"])[48] == 1

    root = tmp_path / "labels-only"
    root.mkdir()
    _write_labels(root, plan_bench_corpus(BenchSizes(train=1200, dev=300, test1=320, test2=0, test3=0), seed=2), 2)
    result = signal_ceiling(root)
    ceiling = corpus_ceiling(root)["Test1"]["macro_f1"]
    assert 0.3 < result["Test1"] < ceiling and result["n_train"] > 1000, (result, ceiling)

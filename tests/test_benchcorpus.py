"""The benchmark corpus: deterministic, speaker-disjoint, balanced Test1, the ceiling as defined, and a
directory never mixes two plans."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

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


@pytest.mark.parametrize("seed,count", [(0, 192), (1, 192), (0, 60), (2, 300)])
def test_speaker_splits_are_stratified_by_gender_and_accent(seed, count):
    from sercache.benchcorpus import ACCENTS, SPLIT_SHARES, speakers

    split = speakers(seed, count) if count != 192 else speakers(seed)
    pool = [s for v in split.values() for s in v]
    assert len(pool) == len({s.number for s in pool}) == count
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


def _fingerprint(plan) -> str:
    import hashlib

    rows = [(u.file_name, u.text, u.emotion, u.split, u.prosody, u.speaker.number, u.speaker.voice, u.speaker.gender,
             u.speaker.pitch, u.speaker.rate, u.speaker.loudness) for u in plan]
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def test_default_msp_draw_is_unchanged_by_the_new_parameters():
    """Fingerprints computed before the speaker count and class shares became parameters: the demo corpus and
    every corpus already on disk keep their plan, and their corpus.json marker still matches."""
    from sercache.benchcorpus import _settings

    assert _fingerprint(plan_bench_corpus(BenchSizes(), seed=0)) == "e296ef2eec9d8d4c"
    assert _fingerprint(plan_bench_corpus(SMALL, seed=1)) == "10172d774d59832c"
    assert _fingerprint(plan_bench_corpus(BenchSizes(speakers=192, class_shares=None), seed=0)) == "e296ef2eec9d8d4c"
    assert _settings(SMALL, 1) == {"generator": "sercache.benchcorpus", "seed": 1,
                                   "sizes": {"train": 40, "dev": 16, "test1": 16, "test2": 8, "test3": 8}}


def test_speaker_count_and_class_shares_are_parameters():
    from sercache.benchcorpus import ACCENTS, speakers

    split = speakers(0, 60)
    pool = [s for v in split.values() for s in v]
    assert len({s.number for s in pool}) == 60 and {s.number for s in pool} == set(range(1, 61))
    assert sum(s.gender == "Male" for s in pool) == 35 and len({s.voice.split("+")[0] for s in pool}) == len(ACCENTS)
    assert all(split.values())
    plan = plan_bench_corpus(BenchSizes(train=200, dev=40, test1=16, test2=8, test3=8, speakers=60,
                                        class_shares={"A": 1, "N": 3}), seed=0)
    assert {u.speaker.number for u in plan} <= set(range(1, 61))
    assert {u.emotion for u in plan if u.split != "Test1"} == {"A", "N"}
    assert set(Counter(u.emotion for u in plan if u.split == "Test1").values()) == {2}  # still balanced
    with pytest.raises(ValueError, match="without a speaker"):
        plan_bench_corpus(BenchSizes(speakers=4), seed=0)
    with pytest.raises(ValueError, match="unknown"):
        plan_bench_corpus(BenchSizes(class_shares={"Q": 1}), seed=0)


def test_iemocap_plan_is_iemocap_shaped():
    import re

    from sercache.benchcorpus import IemocapSizes, iemocap_dialog_names, plan_iemocap_corpus

    assert iemocap_dialog_names(1, 5) == ["Ses01F_impro01", "Ses01M_impro01", "Ses01F_script01_1",
                                          "Ses01M_script01_1", "Ses01F_impro02"]
    plan = plan_iemocap_corpus(IemocapSizes(), seed=0)
    assert len(plan) == 1000 and plan == plan_iemocap_corpus(IemocapSizes(), seed=0)
    assert all(re.fullmatch(r"Ses0[1-5][FM]_(impro\d\d|script\d\d_\d)_[FM]\d{3}\.wav", u.file_name) for u in plan)
    assert Counter(u.split for u in plan) == {f"Session{s}": 200 for s in range(1, 6)}
    actors = {(u.split, u.file_name.rsplit("_", 1)[1][0], u.speaker.gender, u.speaker.voice) for u in plan}
    assert len(actors) == 10 and all(g[0] == letter for _, letter, g, _ in actors)
    assert len({voice for *_, voice in actors}) == 10
    intended = Counter(u.emotion for u in plan)
    assert min(intended[c] for c in ("ang", "hap", "exc", "sad", "neu", "fru")) > 30


def test_iemocap_layout_is_read_by_the_iemocap_reader(tmp_path):
    from extract.manifest import load_manifest
    from sercache.benchcorpus import IemocapSizes, iemocap_wav, main, plan_iemocap_corpus
    from sercache.heads.inputs.corpora import read_labels
    from sercache.heads.inputs.corpora.iemocap import IEMOCAP, IEMOCAP_CODES, iemocap_fold

    root = tmp_path / "iemocap"
    assert main(["--layout", "iemocap", "--out", str(root), "--utterances", "100", "--per-dialog", "8",
                 "--seed", "2", "--jobs", "2"]) == 0
    rows = list(csv.DictReader(open(root / "intended_emotions.csv")))
    codes = Counter(r["Label"] for r in rows)
    assert len(rows) == 100 and codes["exc"] > 0 and codes["hap"] > 0 and codes["xxx"] > 0
    table = read_labels("iemocap", str(root))
    expected = Counter(IEMOCAP_CODES[c] for c in codes.elements() if c in IEMOCAP_CODES)
    assert Counter(IEMOCAP.letters[i] for i in table.label) == expected  # exc counted as H
    assert expected["H"] == codes["hap"] + codes["exc"] and len(table.ids) == sum(expected.values())
    assert sorted(set(table.speaker)) == [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
    assert set(table.split) == {f"session{s}" for s in range(1, 6)}
    assert set(iemocap_fold(table, 1).split[table.split == "session1"]) == {"test"}
    plan = plan_iemocap_corpus(IemocapSizes(100, 8), seed=2)
    assert all(iemocap_wav(root, u).stat().st_size > 1000 for u in plan)  # sentences/wav/<dialog>/<turn>.wav
    manifest = {u.id: u.path for u in load_manifest(root / "manifest.csv")}
    assert set(table.ids) <= set(manifest) and all(Path(p).is_file() for p in manifest.values())
    assert {Path(u.id).stem for u in load_manifest(root)} == set(manifest)  # a directory input joins by stem
    dialog = (root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt").read_text().splitlines()
    assert dialog[0].startswith("% [START_TIME - END_TIME]") and dialog[3].startswith("C-E1:\t")
    assert dialog[3].endswith(";\t()") and dialog[6].startswith("A-E1:\tval ")
    assert (root / "Session1" / "dialog" / "transcriptions" / "Ses01F_impro01.txt").is_file()


def test_emobox_layout_has_speaker_disjoint_folds_covering_every_file(tmp_path):
    import json

    from sercache.benchcorpus import EmoboxSizes, emobox_folds, synthesize_bench_corpus

    root = synthesize_bench_corpus(tmp_path / "box", EmoboxSizes(utterances=48, speakers=9, name="syn"), seed=1,
                                   jobs=2)
    folder = root / "data" / "syn"
    entries = [json.loads(line) for line in open(folder / "syn.jsonl")]
    keys = {e["key"] for e in entries}
    assert len(keys) == 48 and all({"key", "wav", "emo", "length"} <= set(e) for e in entries)
    assert all((root / e["wav"]).is_file() and e["length"] > 0.5 for e in entries)  # relative to the data root
    assert {e["emo"] for e in entries} <= set(json.loads((folder / "label_map.json").read_text()))
    speaker = {line.split()[0]: line.split()[2] for line in open(folder / "data.seg.wrd.stm")}
    assert set(speaker) == keys and len(set(speaker.values())) == 9
    folds = sorted(folder.glob("fold_*"))
    assert [f.name for f in folds] == ["fold_1", "fold_2"]  # EmoBox: more than 6 speakers -> len // 4 folds
    tested = []
    for k, fold in enumerate(folds, 1):
        train = [json.loads(line)["key"] for line in open(fold / f"syn_train_fold_{k}.jsonl")]
        test = [json.loads(line)["key"] for line in open(fold / f"syn_test_fold_{k}.jsonl")]
        assert set(train) | set(test) == keys and not set(train) & set(test)
        assert not {speaker[x] for x in train} & {speaker[x] for x in test}
        tested += test
    assert sorted(tested) == sorted(keys)  # every file is tested exactly once
    with open(root / "manifest.csv") as f:
        assert {r["id"] for r in csv.DictReader(f)} == keys
    assert emobox_folds([1, 2, 3, 4, 5], 0) == [[1], [2], [3], [4], [5]]
    with pytest.raises(ValueError, match="at least 4"):
        emobox_folds([1, 2, 3], 0)

"""EmoBox's per-corpus folders as a fold protocol: folds found in the folder, both fold-file namings, lenient
label maps, a dev set carved per fold (by speaker where the keys say who speaks, else per class), extraction
through the same JSONL, and one tiny training run of a fold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_audio

from sercache.cache import UtteranceRecord, open_store
from sercache.cli import main
from sercache.extract.manifest import load_manifest
from sercache.heads.errors import HeadError
from sercache.heads.inputs.corpora import detect_corpus, get_corpus, read_labels
from sercache.heads.inputs.corpora.base import LabelSource
from sercache.heads.inputs.corpora.emobox import DEV_FRACTION, split_fold
from sercache.testing import write_audio_feature_set

RAVDESS_MAP = {"Angry": "Angry", "Happy": "Happy", "Sad": "Sad", "Surprised": "Surprise"}
RAVDESS_EMO = tuple(RAVDESS_MAP)
TINY = ["--hidden", "8", "--d-model", "8", "--ff-dim", "16", "--batch-size", "16", "--max-epochs", "1",
        "--no-progress", "--threads", "1"]


def row(name: str, key: str, emo: str, old: bool = False) -> str:
    """One line of an EmoBox fold file (the older naming's fields are audio and label)."""
    wav = f"downloads/{name}/{key.removeprefix(name + '-')}.wav"
    fields = {"key": key, "audio": wav, "label": emo} if old else {
        "key": key, "dataset": name, "wav": wav, "type": "raw", "sample_rate": 16000, "length": 1.0, "emo": emo}
    return json.dumps(fields)


def write_emobox(folder: Path, name: str, rows: list[tuple[str, str]], tests: list[set[str]],
                 label_map: dict[str, str], valid: set[str] = frozenset(), old_naming: tuple[int, ...] = ()) -> Path:
    """An EmoBox corpus folder: <name>.jsonl, fold_<k>/ files (test = tests[k-1], valid, train = the rest) in
    the current naming, or for the folds in old_naming as <name>_<part>_fold<k>.jsonl with audio/label fields."""
    folder.mkdir(parents=True)
    (folder / "label_map.json").write_text(json.dumps(label_map, indent=4))
    (folder / f"{name}.jsonl").write_text("".join(row(name, k, e) + "\n" for k, e in rows))
    for k, test in enumerate(tests, start=1):
        (folder / f"fold_{k}").mkdir()
        old = k in old_naming
        parts = {"train": [r for r in rows if r[0] not in test and r[0] not in valid],
                 "test": [r for r in rows if r[0] in test], "valid": [r for r in rows if r[0] in valid]}
        for part, chosen in parts.items():
            if chosen:
                path = folder / f"fold_{k}" / f"{name}_{part}_fold{'' if old else '_'}{k}.jsonl"
                path.write_text("".join(row(name, key, e, old) + "\n" for key, e in chosen))
    return folder


def ravdess_like(root: Path) -> Path:
    """10 actors x 8 utterances, 5 folds leaving 2 actors out each (the actor is the key's last field)."""
    rows = [(f"ravdess-03-01-0{e + 1}-01-0{s + 1}-01-{a:02d}", RAVDESS_EMO[e])
            for a in range(1, 11) for e in range(4) for s in range(2)]
    tests = [{k for k, _ in rows if int(k[-2:]) in (2 * f - 1, 2 * f)} for f in range(1, 6)]
    return write_emobox(root / "ravdess", "ravdess", rows, tests, RAVDESS_MAP)


def no_speaker_corpus(root: Path, name: str = "mycorpus", old_naming: tuple[int, ...] = (2,)) -> Path:
    """60 utterances whose keys do not name the speaker, 2 random folds; codes, a capitalised map key
    ("Neutral" for "neutral"), EmoDB's misspelt "boredem", and a value that is the class name itself."""
    codes = ("a", "h", "neutral", "s", "boredem", "Sad")
    rows = [(f"{name}-utt{i:03d}", codes[i % 6]) for i in range(60)]
    tests = [{k for i, (k, _) in enumerate(rows) if i % 4 == f} for f in (0, 1)]
    label_map = {"a": "Angry", "h": "Happy", "Neutral": "Neutral", "s": "Sad", "boredem": "Boredom"}
    return write_emobox(root / name, name, rows, tests, label_map, old_naming=old_naming)


def table_of(folder: Path, classes: tuple[str, ...] = ()):
    return get_corpus("emobox").read(LabelSource(str(folder), classes=classes))


def test_folds_sizes_and_classes_come_from_the_folder(tmp_path):
    folder = ravdess_like(tmp_path)
    corpus = get_corpus("emobox").for_labels(str(folder))
    assert corpus.folds == ("1", "2", "3", "4", "5") and corpus.runs_all_folds("all")
    table = table_of(folder)
    assert len(table) == 80 and table.classes.letters == ("Angry", "Happy", "Sad", "Surprise")
    assert sorted(set(table.split.tolist())) == [f"fold{k}" for k in range(1, 6)]  # tested in that fold
    for fold in corpus.folds:
        split = split_fold(table, fold)[0].split
        assert (split == "test").sum() == 16 and (split == "dev").sum() + (split == "train").sum() == 64
    assert no_speaker_corpus(tmp_path) and get_corpus("emobox").for_labels(str(tmp_path / "mycorpus")).folds == (
        "1", "2")
    with pytest.raises(HeadError, match=r"--fold '7': this EmoBox corpus has fold\(s\) 1, 2, 3, 4, 5"):
        get_corpus("emobox").of_fold(table, "7")


def test_speaker_keys_give_a_speaker_disjoint_dev_set_seeded_and_recorded(tmp_path):
    table = table_of(ravdess_like(tmp_path))
    fold, record = split_fold(table, "3")
    by_split = {s: set(fold.speaker[fold.split == s].tolist()) for s in ("train", "dev", "test")}
    assert by_split["test"] == {"05", "06"} and len(by_split["dev"]) == 2 and len(by_split["train"]) == 6
    assert not (by_split["dev"] & by_split["train"]) and not (by_split["dev"] & by_split["test"])
    assert record == {"dev": "carved from the fold's train part", "method": "speaker-disjoint", "seed": 0,
                      "fraction": DEV_FRACTION, "speakers": sorted(by_split["dev"]), "rows": 16}
    again = split_fold(table_of(tmp_path / "ravdess"), "3")
    assert np.array_equal(again[0].split, fold.split) and again[1] == record  # same files, same dev
    note = get_corpus("emobox").fold_note(LabelSource(str(tmp_path / "ravdess")), "3")
    assert note == record


def test_keys_without_a_speaker_give_a_stratified_dev_set(tmp_path):
    table = table_of(no_speaker_corpus(tmp_path))
    fold, record = split_fold(table, "1")
    assert record["method"] == "stratified by emo code" and record["why"] == "the keys do not encode the speaker"
    train_part = (fold.split == "train") | (fold.split == "dev")
    for code in set(table.letter.tolist()):
        n = (train_part & (table.letter == code)).sum()
        assert ((fold.split == "dev") & (table.letter == code)).sum() == int(DEV_FRACTION * n + 0.5)
    assert record["rows"] == (fold.split == "dev").sum() and (fold.split == "test").sum() == 15
    assert np.array_equal(split_fold(table_of(tmp_path / "mycorpus"), "1")[0].split, fold.split)
    assert not np.array_equal(split_fold(table, "2")[0].split == "dev", fold.split == "dev")  # seeded per fold


def test_both_fold_namings_and_a_lenient_label_map(tmp_path):
    folder = no_speaker_corpus(tmp_path)  # fold 2 in the older naming, audio/label fields
    (folder / "fold_1" / "mycorpus_test_fold1.jsonl").write_text("not read: the _fold_1 file comes first\n")
    table = table_of(folder)
    assert table.classes.letters == ("Angry", "Boredom", "Happy", "Neutral", "Sad")
    counts = dict(zip(table.classes.letters, table.class_counts().tolist()))
    assert counts == {"Angry": 10, "Boredom": 10, "Happy": 10, "Neutral": 10, "Sad": 20}  # s and Sad: Sad
    assert set(table.letter.tolist()) == {"a", "h", "neutral", "s", "boredem", "Sad"}  # the corpus' own codes
    assert (split_fold(table, "2")[0].split == "test").sum() == 15
    with pytest.warns(UserWarning, match=r"outside --classes .* \(Boredom 10, Happy 10, Neutral 10 rows\)"):
        subset = table_of(folder, ("Sad", "Angry"))
    assert subset.classes.letters == ("Sad", "Angry") and (subset.label == -1).sum() == 30
    with pytest.raises(HeadError, match=r"label_map.json: --classes Fear not among the file's labels"):
        table_of(folder, ("Fear",))


def test_an_official_valid_file_is_the_dev_set(tmp_path):
    rows = [(f"meld-dia{i}_utt0", ("joy", "anger")[i % 2]) for i in range(20)]
    folder = write_emobox(tmp_path / "meld", "meld", rows, [{k for k, _ in rows[:5]}],
                          {"joy": "Happy", "anger": "Angry"}, valid={k for k, _ in rows[5:8]})
    fold, record = split_fold(table_of(folder), "1")
    assert record == {"dev": "the release's valid file", "rows": 3}
    assert [(fold.split == s).sum() for s in ("train", "dev", "test")] == [12, 3, 5]


def test_errors_name_the_file_and_what_is_accepted(tmp_path):
    folder = no_speaker_corpus(tmp_path)
    with (folder / "fold_1" / "mycorpus_test_fold_1.jsonl").open("a") as handle:
        handle.write(row("mycorpus", "mycorpus-utt999", "angrey") + "\n")
    with pytest.raises(HeadError, match=r"mycorpus_test_fold_1.jsonl:16: emo 'angrey' is not a key of .*label_map"
                                        r".json \(accepted: a, h, Neutral, s, boredem, or a class name: Angry, "):
        table_of(folder)
    (folder / "fold_1" / "mycorpus_test_fold_1.jsonl").write_text('{"key": "x"}\n')
    with pytest.raises(HeadError, match=r"mycorpus_test_fold_1.jsonl:1: an EmoBox row needs a key and an emo"):
        table_of(folder)
    folder = no_speaker_corpus(tmp_path / "b")
    lines = (folder / "fold_1" / "mycorpus_train_fold_1.jsonl").read_text().splitlines()
    (folder / "fold_1" / "mycorpus_train_fold_1.jsonl").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(HeadError, match=r"fold_1: utterance 'mycorpus-utt001' .* each fold's train file holds"):
        table_of(folder)
    (folder / "label_map.json").unlink()
    with pytest.raises(HeadError, match=r"mycorpus: no label_map.json or label_dict.json"):
        table_of(folder)
    with pytest.raises(HeadError, match=r"no fold_<k>/ folder .* point --labels at one corpus' folder"):
        get_corpus("emobox").for_labels(str(tmp_path))


def test_auto_recognises_an_emobox_folder_or_its_corpus_file(tmp_path):
    folder = ravdess_like(tmp_path)
    assert detect_corpus(str(folder)).name == "emobox" and detect_corpus(str(folder)).folds[-1] == "5"
    assert detect_corpus(str(folder / "ravdess.jsonl")).name == "emobox"
    (folder / "label_map.json").rename(folder / "label_dict.json")  # emovo's name for it
    assert detect_corpus(str(folder)).name == "emobox"
    assert read_labels("auto", str(folder)).classes.letters == ("Angry", "Happy", "Sad", "Surprise")
    (tmp_path / "other").mkdir()
    with pytest.raises(HeadError, match="not a label format sercache recognises"):
        detect_corpus(str(tmp_path / "other"))


def test_the_corpus_jsonl_is_the_extraction_manifest(tmp_path, tiny_models):
    rows = [("pavoque-poker_n0010-poker", "poker"), ("pavoque-angry_n0011-angry", "angry")]
    folder = write_emobox(tmp_path / "meta" / "pavoque", "pavoque", rows, [{rows[0][0]}],
                          {"poker": "Poker", "angry": "Angry"})
    manifest = folder / "pavoque.jsonl"
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    lines[1].update(wav="downloads/pavoque/long.flac", start_time=0.5, end_time=1.25)
    manifest.write_text("".join(json.dumps(r) + "\n" for r in lines))
    root = tmp_path / "EmoBox"
    write_audio(root / lines[0]["wav"], 1.0)
    write_audio(root / "downloads/pavoque/long.flac", 2.0, seed=1)
    utts = load_manifest(manifest, root)
    assert [u.id for u in utts] == [k for k, _ in rows] and utts[0].path == str(root / lines[0]["wav"])
    assert (utts[1].start, utts[1].end) == (0.5, 1.25)
    assert load_manifest(manifest)[0].path == str(folder / lines[0]["wav"])  # no --data-root: the manifest's folder
    code = main(["extract", "--input", str(manifest), "--data-root", str(root), "--store", str(tmp_path / "store"),
                 "--model", tiny_models["wavlm"], "--device", "cpu", "--workers", "0", "--no-progress"])
    assert code == 0
    assert sorted(open_store(tmp_path / "store")["tiny-wavlm/L-1"].ids) == sorted(k for k, _ in rows)


def test_one_fold_trains_end_to_end(tmp_path, capsys):
    folder = ravdess_like(tmp_path)
    table = table_of(folder)
    rng = np.random.default_rng(0)
    records = []
    for key, label in zip(table.ids, table.label.tolist()):
        x = rng.normal(size=(int(rng.integers(5, 15)), 6)).astype(np.float32)
        x[:, label] += 2.0
        records.append(UtteranceRecord(key, x, "f", "s", ""))
    write_audio_feature_set(tmp_path / "store", "enc/L-1", records)
    with pytest.warns(UserWarning, match="optimiser step"):
        code = main(["train", "--corpus", "emobox", "--labels", str(folder), "--fold", "1", "--store",
                     str(tmp_path / "store"), "--features", "enc/L-1", "--out", str(tmp_path / "run"), *TINY])
    assert code == 0, capsys.readouterr().err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["corpus"] == "emobox" and config["fold"] == "1"
    assert config["resolved"]["rows"] == {"train": 48, "dev": 16, "predict_dev": 16, "predict_test": 16}
    dev_ids = {line.split(",")[0] for line in (tmp_path / "run" / "predictions_dev.csv").read_text().splitlines()[1:]}
    fold = split_fold(table, "1")[0]
    assert dev_ids == {k for k, s in zip(fold.ids, fold.split.tolist()) if s == "dev"}

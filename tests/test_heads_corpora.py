"""The corpus registry: each corpus module declares its reader and scoring conventions, and nothing else needs to
know about it (a new corpus is one module plus its test)."""

from __future__ import annotations

import numpy as np
import pytest

from sercache.heads.errors import HeadError
from sercache.heads.fit.config import HeadConfig
from sercache.heads.inputs.corpora import CORPORA, get_corpus, read_labels
from sercache.heads.inputs.corpora.base import REGISTRY, Corpus, LabelSource, register
from sercache.heads.inputs.labels import ClassSet, LabelTable


def test_every_corpus_module_is_registered_by_name_with_the_default_first():
    assert CORPORA[0] == "msp" and sorted(CORPORA) == ["csv", "emobox", "iemocap", "msp"]
    field = HeadConfig.__dataclass_fields__["corpus"]
    assert field.default == "auto" and field.metadata["choices"] == ("auto", *CORPORA)
    with pytest.raises(HeadError, match="unknown corpus 'nope'; choose one of csv, emobox, iemocap, msp"):
        get_corpus("nope")


def test_corpora_declare_their_scoring_conventions():
    msp, iemocap, generic = get_corpus("msp"), get_corpus("iemocap"), get_corpus("csv")
    assert msp.non_class == ("O", "X") and msp.detailed and not msp.folds
    assert iemocap.folds == ("1", "2", "3", "4", "5") and iemocap.codes["exc"] == "H"
    assert [iemocap.runs_all_folds(f) for f in ("", "all", "3")] == [True, True, False]
    assert not generic.runs_all_folds("") and not generic.detailed and generic.non_class == ()
    with pytest.raises(HeadError, match="--fold '6': use 1..5, all or whole"):
        iemocap.check_fold("6")
    with pytest.raises(HeadError, match="--fold"):
        HeadConfig(features=["a"], corpus="iemocap", fold="0").validate()
    with pytest.raises(HeadError, match="per-annotator labels"):
        HeadConfig(features=["a"], corpus="csv", soft_labels="P", detailed="d.csv").validate()


def _table(split: list[str]) -> LabelTable:
    n = len(split)
    return LabelTable(ClassSet(("a", "b"), ("a", "b")), [f"u{i}" for i in range(n)], np.array(split, dtype=object),
                      np.arange(n) % 2, np.array(["a", "b"] * (n // 2), dtype=object),
                      np.full((n, 3), np.nan, np.float32), np.full(n, -1), np.array(["s"] * n, dtype=object))


def test_a_new_corpus_is_one_registration(monkeypatch):
    """A corpus with two folds: its reader and fold split are all the rest of stage 2 needs."""
    monkeypatch.setattr("sercache.heads.inputs.corpora.base.REGISTRY", dict(REGISTRY))

    def read(source: LabelSource) -> LabelTable:
        return _table(["part1", "part2"] * 4)

    def fold_split(table: LabelTable, fold: str, dev: str) -> LabelTable:
        split = np.where(table.split == f"part{fold}", "test", "train").astype(object)
        split[np.flatnonzero(split == "train")[:2]] = "dev"
        return LabelTable(table.classes, table.ids, split, table.label, table.letter, table.attributes,
                          table.gender, table.speaker)

    from sercache.heads.inputs.corpora import base

    toy = register(Corpus(name="toy", read=read, detect=lambda path: path.suffix == ".toy", labels_help="a toy",
                          folds=("1", "2"), fold_split=fold_split))
    assert base.get_corpus("toy") is toy and read_labels("toy", "x").splits() == ["part1", "part2"]
    assert toy.table(LabelSource("x"), fold="2").splits() == ["dev", "test", "train"]
    assert toy.runs_all_folds("all") and toy.table(LabelSource("x"), fold="all").splits() == ["part1", "part2"]
    with pytest.raises(ValueError, match="registered twice"):
        register(toy)
    with pytest.raises(HeadError, match="--labels is required"):
        toy.table(LabelSource(""))


# ----------------------------------------------------------------------------------- --corpus auto
def test_auto_recognises_each_format_and_names_what_it_reads(tmp_path):
    from sercache.heads.inputs.corpora import detect_corpus
    from sercache.testing import make_synthetic_corpus

    syn = make_synthetic_corpus(tmp_path / "msp", n_train=16, n_dev=8, n_test=8, write_features=False)
    assert detect_corpus(str(syn.consensus)).name == "msp"
    assert detect_corpus(str(syn.consensus.parent)).name == "msp"  # the Labels/ directory
    session = tmp_path / "IEMOCAP" / "Session1" / "dialog" / "EmoEvaluation"
    session.mkdir(parents=True)
    (session / "Ses01F_impro01.txt").write_text("% header\n")
    assert detect_corpus(str(tmp_path / "IEMOCAP")).name == "iemocap"
    (tmp_path / "mine.tsv").write_text("path\tpartition\temotion\na.wav\ttraining\tangry\n")
    assert detect_corpus(str(tmp_path / "mine.tsv")).name == "csv"
    with pytest.raises(HeadError,
                       match=r"not a label format sercache recognises \(emobox: .*; iemocap: .*; msp: .*; csv: "):
        detect_corpus(str(tmp_path / "IEMOCAP" / "Session1"))
    with pytest.raises(HeadError, match="--labels is required"):
        detect_corpus("")


def test_fold_whole_trains_on_everything_but_a_dev_part(tmp_path):
    """--fold whole: a fold protocol keeps its first fold's dev part (IEMOCAP: session 2) and trains on the other
    four sessions, the test session included; a split protocol trains on every split but dev."""
    from sercache.testing import write_iemocap_corpus

    root, _ = write_iemocap_corpus(tmp_path, 8, lambda rng: 5, 1.0, 0)
    iemocap = get_corpus("iemocap")
    table = read_labels("iemocap", str(root))
    whole = iemocap.of_fold(table, "whole")
    session = np.array([s[-1] for s in table.split.tolist()])
    assert set(whole.split.tolist()) == {"train", "dev"}
    assert (whole.split == "dev").tolist() == (session == "2").tolist()
    generic = get_corpus("csv")
    csv_table = LabelTable(ClassSet(("a", "b"), ("a", "b")), ["1", "2", "3", "4"],
                           np.array(["train", "dev", "test", "test2"], dtype=object), np.array([0, 1, 0, 1]),
                           np.array(["a", "b", "a", "b"], dtype=object), np.full((4, 3), np.nan, np.float32),
                           np.full(4, -1), np.array([""] * 4, dtype=object))
    assert generic.of_fold(csv_table, "whole").split.tolist() == ["train", "dev", "train", "train"]
    with pytest.raises(HeadError, match="--fold whole: --corpus csv gives no dev split"):
        generic.of_fold(csv_table.take(np.array([0, 2])), "whole")

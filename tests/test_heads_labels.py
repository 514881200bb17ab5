"""Label readers on small hand-written files in the exact published formats."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from sercache.heads.errors import HeadError
from sercache.heads.inputs.corpora.csv import read_generic_csv
from sercache.heads.inputs.corpora.iemocap import iemocap_fold, parse_emo_evaluation, read_iemocap, speaker_of
from sercache.heads.inputs.corpora.msp import MSP_CLASSES, attach_detailed, read_msp_consensus, read_msp_detailed

pytestmark = pytest.mark.filterwarnings("ignore:.*utterances have no rows in the detailed label file")

CONSENSUS = """\
FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
MSP-PODCAST_0001_0008.wav,N,4.2,4.0,4.4,127,Female,Train
MSP-PODCAST_0001_0009.wav,A,5.8,2.0,5.6,127,Female,Train
MSP-PODCAST_0001_0010.wav,X,3.0,3.5,3.2,Unknown,Unknown,Train
MSP-PODCAST_0002_0001.wav,O,4.0,4.0,4.0,12,Male,Development
MSP-PODCAST_0002_0002.wav,S,2.2,2.4,3.0,12,Male,Development
MSP-PODCAST_0003_0001.wav,H,5.0,6.0,5.0,99,Male,Test1
MSP-PODCAST_0003_0002.wav,,,,,Unknown,Unknown,Test3
"""

# v1.11+ layout; the first file reproduces CONILIUM's figure 2 (P = N 3/4, S 1/4; S = N 3/7, S 3/7, U 1/7).
DETAILED_NEW = """\
FileName,EmoDetail
MSP-PODCAST_0001_0008.wav,WORKER00001; Neutral; Sad; A:4.0; V:4.0; D:4.0;
MSP-PODCAST_0001_0008.wav,WORKER00002; Neutral; Other; A:4.0; V:5.0; D:4.0;
MSP-PODCAST_0001_0008.wav,WORKER00003; Sad; Surprise; A:3.0; V:3.0; D:4.0;
MSP-PODCAST_0001_0008.wav,WORKER00004; Neutral; Sad,Other; A:5.0; V:4.0; D:4.0;
MSP-PODCAST_0001_0009.wav,WORKER00001; Angry; Annoyed,Frustrated; A:5.0; V:2.0; D:4.0;
MSP-PODCAST_0001_0009.wav,WORKER00005; Other-irritated; Angry,Dissapointed; A:6.0; V:2.0; D:5.0;
MSP-PODCAST_0001_0009.wav,WORKER00006; Contempt; ; A:6.0; V:2.0; D:6.0;
MSP-PODCAST_0001_0010.wav,WORKER00007; Happy; Excited; A:3.0; V:4.0; D:3.0;
MSP-PODCAST_0001_0010.wav,WORKER00008; Sad; ; A:3.0; V:3.0; D:3.0;
"""

DETAILED_OLD = """\
FileName,Workers,EmoClass_Major,EmoClass_Second,EmoAct,EmoVal,EmoDom
MSP-PODCAST_0001_0008.wav,WORKER00001,Neutral,Sad,4,4,4
MSP-PODCAST_0001_0008.wav,WORKER00002,Neutral,Other,4,5,4
MSP-PODCAST_0001_0008.wav,WORKER00003,Sad,Surprise,3,3,4
MSP-PODCAST_0001_0008.wav,WORKER00004,Neutral,"Sad,Other",5,4,4
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def idx(letter):
    return MSP_CLASSES.index(letter)


def test_consensus_reads_published_columns_and_codes(tmp_path):
    t = read_msp_consensus(write(tmp_path, "labels_consensus.csv", CONSENSUS))
    assert t.ids[0] == "MSP-PODCAST_0001_0008.wav"
    assert list(t.classes.letters) == ["A", "S", "H", "U", "F", "D", "C", "N"]
    assert t.label.tolist() == [idx("N"), idx("A"), -1, -1, idx("S"), idx("H"), -1]
    assert t.letter.tolist() == ["N", "A", "X", "O", "S", "H", ""]
    assert t.split.tolist() == ["train", "train", "train", "dev", "dev", "test1", "test3"]
    assert t.gender.tolist() == [0, 0, -1, 1, 1, 1, -1]
    np.testing.assert_allclose(t.attributes[1], [5.8, 2.0, 5.6], rtol=1e-6)
    assert np.isnan(t.attributes[6]).all()
    assert t.speaker[2] == "Unknown"


def test_consensus_accepts_labels_directory_and_old_spelling(tmp_path):
    (tmp_path / "Labels").mkdir()
    write(tmp_path / "Labels", "labels_concensus.csv", CONSENSUS.replace("Development", "Validation"))
    t = read_msp_consensus(tmp_path)
    assert t.split.tolist()[3] == "dev"


def test_consensus_unknown_code_is_named(tmp_path):
    bad = CONSENSUS.replace("0001_0009.wav,A,", "0001_0009.wav,Q,")
    with pytest.raises(HeadError, match=r"unknown EmoClass code 'Q' on line\(s\) 3"):
        read_msp_consensus(write(tmp_path, "c.csv", bad))


def test_consensus_lowercase_code_is_rejected(tmp_path):
    with pytest.raises(HeadError, match="'n'"):
        read_msp_consensus(write(tmp_path, "c.csv", CONSENSUS.replace(".wav,N,", ".wav,n,")))


def test_consensus_missing_column_and_bad_split(tmp_path):
    with pytest.raises(HeadError, match="missing column.*Split_Set"):
        read_msp_consensus(write(tmp_path, "a.csv", CONSENSUS.replace("Split_Set", "Set")))
    with pytest.raises(HeadError, match="unknown Split_Set 'Dev'"):
        read_msp_consensus(write(tmp_path, "b.csv", CONSENSUS.replace("Development", "Dev")))


def _quoted(text):
    lines = text.splitlines()
    return "\n".join([lines[0]] + [f'{x.split(",", 1)[0]},"{x.split(",", 1)[1]}"' for x in lines[1:]]) + "\n"


@pytest.mark.parametrize("layout", ["new", "new-quoted", "old"])
def test_soft_labels_P_and_S_as_conilium_figure_2(tmp_path, layout):
    table = read_msp_consensus(write(tmp_path, "c.csv", CONSENSUS))
    text = {"new": DETAILED_NEW, "new-quoted": _quoted(DETAILED_NEW), "old": DETAILED_OLD}[layout]
    table = attach_detailed(table, read_msp_detailed(write(tmp_path, "d.csv", text)))
    P, S = table.soft("P"), table.soft("S")
    expected_p = np.zeros(8)
    expected_p[[idx("N"), idx("S")]] = [3 / 4, 1 / 4]
    expected_s = np.zeros(8)
    expected_s[[idx("N"), idx("S"), idx("U")]] = [3 / 7, 3 / 7, 1 / 7]
    np.testing.assert_allclose(P[0], expected_p, rtol=1e-6)
    np.testing.assert_allclose(S[0], expected_s, rtol=1e-6)
    assert table.agreement[0] == pytest.approx(0.75)
    if layout.startswith("new"):
        # Other-irritated is dropped from P; S counts Angry once for annotator 5 (primary Other, secondary Angry)
        np.testing.assert_allclose(P[1][[idx("A"), idx("C")]], [0.5, 0.5])
        np.testing.assert_allclose(S[1][[idx("A"), idx("C")]], [2 / 3, 1 / 3])
        np.testing.assert_allclose(P[2][[idx("H"), idx("S")]], [0.5, 0.5])  # X sample: votes still usable
        assert np.isnan(P[3]).all()  # no detailed rows -> no soft label


def test_detailed_primary_counted_once_in_S(tmp_path):
    table = read_msp_consensus(write(tmp_path, "c.csv", CONSENSUS))
    text = "FileName,EmoDetail\nMSP-PODCAST_0001_0008.wav,WORKER00001; Neutral; Neutral,Sad; A:4.0; V:4.0; D:4.0;\n"
    S = attach_detailed(table, read_msp_detailed(write(tmp_path, "d.csv", text))).soft("S")
    np.testing.assert_allclose(S[0][[idx("N"), idx("S")]], [0.5, 0.5])


def test_detailed_layout_sniffing_and_errors(tmp_path):
    with pytest.raises(HeadError, match="not an MSP-Podcast detailed label file"):
        read_msp_detailed(write(tmp_path, "x.csv", "FileName,Emotion\na.wav,Angry\n"))
    with pytest.raises(HeadError, match="unknown primary emotion.*'Grumpy'"):
        read_msp_detailed(write(tmp_path, "y.csv", "FileName,EmoDetail\na.wav,WORKER1; Grumpy; ; A:1; V:1; D:1;\n"))
    with pytest.raises(HeadError, match="does not read as"):
        read_msp_detailed(write(tmp_path, "z.csv", "FileName,EmoDetail\na.wav,WORKER1 Angry\n"))
    lenient = read_msp_detailed(write(tmp_path, "w.csv",
                                      "FileName,EmoDetail\na.wav,WORKER1; Grumpy; ; A:1; V:1; D:1;\n"),
                                strict=False)
    assert lenient["a.wav"][0].primary == "O"


def test_generic_csv(tmp_path):
    text = ("id,label,split,gender,speaker,arousal\nu1,ang,train,f,s1,3.5\nu2,neu,train,m,s2,\nu3,ang,dev,,s3,2\n"
            "u4,,test,,s4,1\n")
    t = read_generic_csv(write(tmp_path, "g.csv", text))
    assert t.classes.letters == ("ang", "neu")
    assert t.label.tolist() == [0, 1, 0, -1]
    assert t.gender.tolist() == [0, 1, -1, -1]
    assert np.isnan(t.attributes[1, 0]) and np.isnan(t.attributes[0, 1])
    t2 = read_generic_csv(tmp_path / "g.csv", classes=["neu", "ang"])
    assert t2.label.tolist() == [1, 0, 1, -1]
    with pytest.raises(HeadError, match=r"--classes sad not among the file's labels \(ang, neu\)"):  # a typo
        read_generic_csv(tmp_path / "g.csv", classes=["neu", "ang", "sad"])
    with pytest.warns(UserWarning, match=r"labels outside --classes are left out of classification \(ang 2 rows\)"):
        t3 = read_generic_csv(tmp_path / "g.csv", classes=["neu"])
    assert t3.label.tolist() == [-1, 0, -1, -1] and t3.letter.tolist() == ["ang", "neu", "ang", ""]
    with pytest.raises(HeadError, match="needs an id and a split column"):
        read_generic_csv(write(tmp_path, "h.csv", "name,label\na,b\n"))


IEMOCAP_FILE = """\
% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()
A-E3:\tval 3; act 2; dom  2;\t()

[10.0100 - 11.3925]\tSes01F_impro01_M001\texc\t[3.0000, 4.0000, 3.5000]
[12.0100 - 13.3925]\tSes01F_impro01_F002\tfru\t[2.0000, 3.5000, 3.5000]
[14.0100 - 15.3925]\tSes01F_impro01_M003\thap\t[4.0000, 3.0000, 3.0000]
"""


def _iemocap_tree(tmp_path):
    for s in range(1, 6):
        d = tmp_path / f"Session{s}" / "dialog" / "EmoEvaluation"
        d.mkdir(parents=True)
        text = IEMOCAP_FILE.replace("Ses01", f"Ses0{s}")
        (d / f"Ses0{s}F_impro01.txt").write_text(text)
    return tmp_path


def test_iemocap_parse_line_format():
    rows = parse_emo_evaluation(IEMOCAP_FILE)
    assert rows[0] == ("Ses01F_impro01_F000", "neu", (2.5, 2.5, 2.5))
    assert [r[1] for r in rows] == ["neu", "exc", "fru", "hap"]
    with pytest.raises(HeadError, match="unknown IEMOCAP category 'bor'"):
        parse_emo_evaluation("[1.0 - 2.0]\tSes01F_impro01_F000\tbor\t[1, 2, 3]\n")


def test_iemocap_four_classes_speaker_and_folds(tmp_path):
    t = read_iemocap(_iemocap_tree(tmp_path))
    assert len(t) == 15  # fru dropped, exc merged into hap
    assert t.classes.letters == ("A", "S", "H", "N")
    hap = t.classes.index("H")
    assert t.label[t.ids.index("Ses01F_impro01_M001")] == hap  # excited -> happy
    assert t.speaker[t.ids.index("Ses01F_impro01_M001")] == "Ses01M"  # speaker from the last field
    np.testing.assert_allclose(t.attributes[t.ids.index("Ses01F_impro01_M001")], [4.0, 3.0, 3.5])  # A, V, D
    assert speaker_of("Ses03M_script01_F012") == "Ses03F"
    for dev in ("next-session", "next-speaker"):
        for k in range(1, 6):
            f = iemocap_fold(t, k, dev)
            spk = {s: set(f.speaker[f.split == s]) for s in ("train", "dev", "test")}
            assert spk["test"] == {f"Ses0{k}F", f"Ses0{k}M"}
            assert spk["dev"] and not (spk["dev"] & spk["train"]) and not (spk["dev"] & spk["test"])
            assert not (spk["train"] & spk["test"])
    assert len(set(iemocap_fold(t, 1, "next-speaker").speaker[iemocap_fold(t, 1, "next-speaker").split == "dev"])) == 1

"""The README's quick tour, run as written: its command block and its Python block, read from README.md, on a
generated folder of clips in a user's own layout (file,emotion,speaker,gender,split with word labels and an
extra label, new recordings, and an empty file, a text file named .wav and a 10-ms clip among the clips)."""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import pytest

from sercache.cache import open_store
from sercache.cli import main
from sercache.testing.own_corpus import write_own_corpus

README = Path(__file__).resolve().parents[1] / "README.md"
FOUR = ("angry", "happy", "neutral", "sad")


def readme_block(after: str, language: str) -> str:
    """The first ```language block after the heading `after` in README.md."""
    text = README.read_text()
    start = text.index(f"```{language}\n", text.index(after)) + len(language) + 4
    return text[start:text.index("```", start)]


def readme_commands() -> list[list[str]]:
    """The tour's commands, continuation lines joined and comments dropped."""
    lines = readme_block("### Command line", "bash").replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    root = tmp_path_factory.mktemp("tour")
    write_own_corpus(root)
    return root


def run(argv: list[str], capsys) -> tuple[int, str]:
    assert argv[0] == "sercache", argv
    code = main(argv[1:])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_readme_tour_runs_as_written(tour, capsys, monkeypatch):
    monkeypatch.chdir(tour)
    commands = readme_commands()
    assert [c[1] for c in commands] == ["extract", "transcribe", "extract", "cache", "train", "report", "predict",
                                        "predict", "export-head", "predict"]
    extract, transcribe, text, info, train, report, predict_new, predict_split, export, predict_export = commands

    # without --on-error skip, extraction stops before encoding and names each bad file with its reason
    code, said = run([a for a in extract if a not in ("--on-error", "skip")], capsys)
    assert code == 2 and "pass --on-error skip" in said
    assert len(open_store("store")["whisper-base-ct2/L-1"].ids) == 0  # nothing encoded
    for message in ("clips/empty.wav: file is empty (0 bytes)", "clips/notes.wav: unreadable audio",
                    "clips/blip.wav: too short (160 samples = 10.0 ms at 16 kHz"):
        assert message in said

    code, said = run(extract, capsys)
    assert code == 0 and "3 utterance(s) failed and were recorded in the store" in said
    assert len(open_store("store")["whisper-base-ct2/L-1"].ids) == 74
    code, said = run(transcribe, capsys)
    assert code == 0 and "3 failed:" in said
    assert all(f"{n}: clips/{n}" in said for n in ("empty.wav", "notes.wav", "blip.wav"))
    assert run(text, capsys)[0] == 0
    code, said = run(info, capsys)
    assert code == 0 and "all-minilm-l6-v2/asr/whisper-base-ct2/mean(L-4..-1)" in said

    with pytest.warns(UserWarning, match=r"left out of classification \(fear 2 rows\)"):
        code, said = run(train, capsys)
    assert code == 0
    check_training(said)
    code, said = run(report, capsys)
    assert code == 0 and (tour / "report" / "report.md").is_file()

    code, said = run(predict_new, capsys)
    assert code == 0 and "predicted 2 of 2 file(s)" in said
    from_run = read_rows(tour / "preds.csv")
    assert [r["FileName"] for r in from_run] == ["call1.wav", "call2.wav"]
    assert all(r["status"] == "ok" and r["Prediction"] in FOUR and r["transcript"] for r in from_run)
    with pytest.warns(UserWarning):
        code, said = run(predict_split, capsys)
    assert code == 0 and "predicted 16 utterance(s)" in said
    submission = (tour / "predictions" / "submission_categorical.csv").read_text().splitlines()
    assert submission[0] == "id,label" and len(submission) == 17

    code, said = run(export, capsys)
    assert code == 0 and re.search(r"with 2 model\(s\), \d+ MB", said)
    assert run(predict_export, capsys)[0] == 0  # the export's own copies of the encoders
    from_export = read_rows(tour / "preds.csv")
    assert [(r["Prediction"], r["prob_sad"]) for r in from_export] == [(r["Prediction"], r["prob_sad"])
                                                                       for r in from_run]


def check_training(said: str) -> None:
    """What training prints and writes for the tour's table."""
    assert "corpus: csv (recognised from --labels labels.csv" in said
    assert re.search(r"^class counts\s+angry\s+happy\s+neutral\s+sad\s+\(none\)$", said, re.M)
    assert re.search(r"^train\s+10\s+10\s+10\s+10\s+0$", said, re.M)  # fear and the bad files: left out
    assert re.search(r"^95 % interval \(test, bootstrap over its utterances\): Macro-F1 ", said, re.M)
    assert re.search(r"^reference \(test\): majority class \w+: Macro-F1 ", said, re.M)
    assert re.search(r"^by speaker \(test, \d+ speakers\): UA min ", said, re.M)
    metrics = json.loads(Path("runs/fusion/metrics.json").read_text())["splits"]["test"]
    assert metrics["n"] == 16 and {"ci95", "reference", "by_gender", "by_speaker"} <= set(metrics)
    config = json.loads(Path("runs/fusion/config.json").read_text())
    assert config["corpus"] == "csv" and config["resolved"]["classes"]["letters"] == list(FOUR)
    header = Path("runs/fusion/predictions_test.csv").read_text().splitlines()[0]
    assert header == "id,label,Prediction,prob_angry,prob_happy,prob_neutral,prob_sad"


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_readme_python_block_runs_as_written(tour, capsys, monkeypatch):
    """After the command line's tour (the store is there: extraction finds nothing to do), the Python block."""
    monkeypatch.chdir(tour)
    if not (tour / "store").is_dir():
        pytest.skip("needs the command-line tour's store")
    with pytest.warns(UserWarning, match=r"left out of classification"):
        exec(compile(readme_block("### Python", "python"), "README.md", "exec"), {})
    said = capsys.readouterr().out
    assert re.search(r"^0\.\d+ \[0\.\d+, 0\.\d+\]$", said, re.M)  # test Macro-F1 and its interval
    rows = read_rows(tour / "p.csv")
    assert len(rows) == 1 and rows[0]["status"] == "ok"


def test_the_guard_rails_a_new_user_meets(tour, capsys, monkeypatch):
    """The refusals of the own-corpus issue on the tour's own files, each naming what to do instead."""
    monkeypatch.chdir(tour)
    if not (tour / "runs" / "fusion").is_dir():
        pytest.skip("needs the command-line tour's run")
    code, said = run(["sercache", "predict", "runs/fusion", "--out", "check.csv"], capsys)
    assert code == 2 and "give them after the head" in said and not Path("check.csv").exists()
    base = ["sercache", "train", "--store", "store/", "--labels", "labels.csv", "--features", "whisper-base-ct2/L-1",
            "--drop-missing", "--out", "runs/x"]
    code, said = run([*base, "--classes", "angry", "happy", "nuetral", "sad"], capsys)
    assert code == 2 and "--classes nuetral not among the file's labels" in said
    code, said = run([*base, "--classes", *FOUR, "--loss", "focal", "--gamma", "-1"], capsys)
    assert code == 2 and "--gamma" in said
    code, said = run([*base, "--split-column", "fold"], capsys)
    assert code == 2 and "--split-column 'fold' is not a column (found: file, emotion, speaker, gender, split)" in said

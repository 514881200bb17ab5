"""Issue 19, "your own corpus in the first hour": the guards a first run on one's own files meets. One --threads
for every stage that computes; predict refuses to guess store mode; a 0-byte file is called empty; transcribe
pre-checks like extraction and names every failure; a closed pipe ends quietly; a full disk is an input error
that keeps the committed parts."""

from __future__ import annotations

import dataclasses
import errno
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import make_corpus, write_audio

from sercache import cli
from sercache.cache import CacheError, Store, open_store
from sercache.cache.texts import TextSet, TextSetWriter
from sercache.dataclass_cli import THREADS_HELP, apply_threads
from sercache.errors import BROKEN_PIPE_STATUS, SercacheError
from sercache.extract import ExtractConfig, run_extraction
from sercache.extract.aec import AECTrainConfig
from sercache.extract.audio import AudioError, NoSoundError, load, probe
from sercache.extract.manifest import Utterance
from sercache.extract.text_cli import CorrectOptions
from sercache.extract.transcribe import TranscribeConfig, TranscriptionError, run_transcription
from sercache.heads.errors import HeadError
from sercache.heads.fit.config import HeadConfig
from sercache.predict_audio import audio_items, expand_audio_args
from sercache.predict_cli import PredictOptions

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def torch_threads():
    """torch's thread count is process-wide: put it back after the test."""
    before = torch.get_num_threads()
    yield before + 1  # a count the test can tell from the one it found
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------------------- 1. --threads
# each stage's command line up to an input error it finds after applying --threads (nothing exists here)
STAGE_ARGV = {
    "extract": [],  # --store is required
    "transcribe": ["--input", "{tmp}/none", "--store", "{tmp}/store"],
    "train-aec": ["--store", "{tmp}/none", "--source", "asr/x", "--reference", "human", "--splits", "{tmp}/s.csv",
                  "--model", "{tmp}/m", "--out", "{tmp}/out"],
    "correct-transcripts": ["--store", "{tmp}/none", "--source", "asr/x", "--model", "{tmp}/m"],
    "predict": ["{tmp}/no-run", "--out", "{tmp}/out"],
}


def test_threads_is_one_definition_with_trains_meaning():
    for options in (ExtractConfig, TranscribeConfig, AECTrainConfig, CorrectOptions, PredictOptions, HeadConfig):
        field = next(f for f in dataclasses.fields(options) if f.name == "threads")
        assert (field.default, field.metadata["help"]) == (0, THREADS_HELP), options


@pytest.mark.parametrize("stage", [*STAGE_ARGV, "train"])
def test_every_computing_stage_parses_threads(stage, tmp_path):
    argv = [a.format(tmp=tmp_path) for a in STAGE_ARGV.get(stage, [])]
    assert cli.build_parser(stage).parse_args([*argv, "--threads", "1"]).threads == 1


@pytest.mark.parametrize("stage", STAGE_ARGV)
def test_every_computing_stage_applies_threads_before_any_work(stage, tmp_path, torch_threads, capsys):
    argv = [a.format(tmp=tmp_path) for a in STAGE_ARGV[stage]]
    assert cli.main([stage, *argv, "--threads", str(torch_threads)]) == 2, capsys.readouterr().err
    assert torch.get_num_threads() == torch_threads


def test_threads_zero_keeps_torch_default_and_negative_is_an_input_error(torch_threads):
    before = torch.get_num_threads()
    apply_threads(0)
    assert torch.get_num_threads() == before
    apply_threads(torch_threads)
    assert torch.get_num_threads() == torch_threads
    with pytest.raises(SercacheError, match="--threads -1"):
        apply_threads(-1)


# ------------------------------------------------------------------------------- 2. predict does not guess
@pytest.mark.parametrize("out", ["check.csv", "check.jsonl"])
def test_predict_without_audio_refuses_a_file_name_for_store_mode(tmp_path, capsys, out):
    assert cli.main(["predict", str(tmp_path / "run"), "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sercache predict: error:") and len(err.strip().splitlines()) == 1
    assert "store mode" in err and "writes a directory" in err and "audio files were expected" in err
    assert not (tmp_path / out).exists()


def test_audio_arguments_that_give_no_file_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HeadError, match=f"{tmp_path / 'empty'}: a directory without audio files"):
        audio_items([str(tmp_path / "empty")])
    pattern = str(tmp_path / "clips" / "*.wav")  # what the shell passes on when the glob matches nothing
    with pytest.raises(HeadError, match="clips/\\*.wav: no file matches"):
        audio_items([pattern])
    write_audio(tmp_path / "clips" / "a.wav", 0.5)
    write_audio(tmp_path / "clips" / "b.wav", 0.5)
    expected = [str(tmp_path / "clips" / n) for n in ("a.wav", "b.wav")]
    assert expand_audio_args([pattern]) == expected == expand_audio_args([str(tmp_path / "clips")])
    assert [i.id for i in audio_items([str(tmp_path / "clips")])] == ["a.wav", "b.wav"]
    missing = str(tmp_path / "gone.wav")  # a plain missing file stays an error row, as before
    assert expand_audio_args([missing]) == [missing]


# ------------------------------------------------------------------------------------ 3. a 0-byte file
def test_a_zero_byte_file_is_called_empty(tmp_path):
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    utt = Utterance("zero.wav", str(path))
    for read in (probe, load):
        with pytest.raises(AudioError) as caught:
            read(utt)
        assert "empty (0 bytes)" in str(caught.value) and str(path) in str(caught.value)
        assert "Format not recognised" not in str(caught.value)
        assert not isinstance(caught.value, NoSoundError)  # a broken copy, not silence: transcribe fails it


# -------------------------------------------------------------------------- 4. transcribe's pre-check
class FakeWhisper:
    """What run_transcription uses of a backend: a weights path and transcribe(batch)."""

    loaded = 0

    def __init__(self, cfg, path):
        FakeWhisper.loaded += 1
        self.path = path

    def transcribe(self, audios):
        return [{"text": f"{len(a)} samples", "avg_logprob": -0.1, "no_speech_prob": 0.0, "n_tokens": 2}
                for a in audios]


def transcribe_corpus(root):
    audio = root / "audio"
    write_audio(audio / "good.wav", 1.0)
    write_audio(audio / "more.wav", 0.8, seed=1)
    write_audio(audio / "short.wav", 0.01)  # 160 samples = 10 ms: under one Whisper frame
    (audio / "zero.wav").write_bytes(b"")
    sf.write(audio / "silent.wav", np.zeros(16000, np.float32), 16000)
    weights = root / "weights.pt"
    weights.write_bytes(b"not a real model")
    return audio, weights


@pytest.fixture
def fake_whisper(monkeypatch):
    import sercache.extract.transcribe as transcribe

    FakeWhisper.loaded = 0
    monkeypatch.setattr(transcribe, "load_backend", lambda cfg: FakeWhisper(cfg, cfg.model))
    return transcribe


def test_transcribe_prechecks_like_extraction_and_stops_naming_every_bad_file(tmp_path, fake_whisper):
    audio, weights = transcribe_corpus(tmp_path)
    cfg = TranscribeConfig(input=str(audio), store=str(tmp_path / "store"), model=str(weights), progress=False)
    with pytest.raises(TranscriptionError) as caught:
        run_transcription(cfg)
    message = str(caught.value)
    assert "2 utterance(s) cannot be transcribed" in message and "--on-error skip" in message
    assert "short.wav: too short (160 samples" in message and "zero.wav: file is empty (0 bytes)" in message
    assert FakeWhisper.loaded == 0  # stopped before the model loaded, nothing written
    assert not (tmp_path / "store" / "texts").exists()


def test_transcribe_skip_names_every_failure_and_goes_on(tmp_path, fake_whisper, capsys):
    audio, weights = transcribe_corpus(tmp_path)
    cfg = TranscribeConfig(input=str(audio), store=str(tmp_path / "store"), model=str(weights), progress=False,
                           on_error="skip")
    summary = run_transcription(cfg)
    assert (summary.transcribed, summary.empty) == (2, 1)
    assert sorted(f["id"] for f in summary.failures) == ["short.wav", "zero.wav"]
    err = capsys.readouterr().err
    assert "2 failed:" in err
    assert any(line.strip().startswith("short.wav: ") and "too short" in line for line in err.splitlines())
    assert any(line.strip().startswith("zero.wav: ") and "empty (0 bytes)" in line for line in err.splitlines())
    texts = TextSet(open_store(tmp_path / "store"), "asr/weights")
    assert sorted(texts.records) == ["good.wav", "more.wav", "silent.wav"] and texts.text("silent.wav") == ""


# ---------------------------------------------------------------------------------- 5. a closed pipe
def test_a_reader_that_closes_the_pipe_early_ends_the_command_quietly(tmp_path):
    Store.create(tmp_path / "store")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line (`| head -0`): deterministic
    try:
        done = subprocess.run([sys.executable, "-m", "sercache.cli", "cache", "info", str(tmp_path / "store")],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == BROKEN_PIPE_STATUS == 141
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    shell = subprocess.run(f"'{sys.executable}' -m sercache.cli cache info '{tmp_path / 'store'}' | head -c 1",
                           shell=True, capture_output=True, text=True, timeout=120)
    assert shell.stdout == str(tmp_path)[0] and "Traceback" not in shell.stderr, shell.stderr


# ---------------------------------------------------------------------------------- 6. a full disk
def fail_after(calls: int, real):
    """`real`, until it has run `calls` times; then the disk is full."""
    count = [0]

    def write(*args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise ENOSPC
        return real(*args, **kwargs)

    return write


def assert_disk_full_message(message: str, root) -> None:
    assert str(root) in message and "disk is full" in message and " free)" in message
    assert "No space left on device" in message


def test_full_disk_during_extraction_is_an_input_error_and_keeps_committed_parts(tmp_path, tiny_models,
                                                                                monkeypatch, capsys):
    import sercache.cache.writer as writer

    corpus = make_corpus(tmp_path / "c", [0.5, 0.6, 0.7, 3.0])
    cfg = ExtractConfig(input=str(corpus), store=str(tmp_path / "store"), model=tiny_models["wavlm"], workers=0,
                        progress=False, device="cpu", part_megabytes=0.002)
    monkeypatch.setattr(writer, "write_part", fail_after(1, writer.write_part))
    with pytest.raises(CacheError) as caught:
        run_extraction(cfg)
    assert_disk_full_message(str(caught.value), tmp_path / "store")
    assert "every part committed so far is kept" in str(caught.value)
    assert "run the same command again to resume" in str(caught.value)
    monkeypatch.undo()
    fs = open_store(tmp_path / "store")["tiny-wavlm/L-1"]
    assert len(fs.part_paths()) == 1 and len(fs) >= 1 and fs.verify().ok
    kept = {u: fs.get(u) for u in fs.ids}
    parts = tmp_path / "store/tiny-wavlm/L-1/parts"
    assert not [p for p in parts.iterdir() if p.name.startswith(".tmp-")]
    again = run_extraction(cfg)  # the same command resumes
    fs = open_store(tmp_path / "store")["tiny-wavlm/L-1"]
    assert again.extracted == 4 - len(kept) and len(fs) == 4 and fs.verify().ok
    assert all(np.array_equal(fs.get(u), rows) for u, rows in kept.items())
    monkeypatch.setattr(writer, "write_part", fail_after(0, writer.write_part))
    (tmp_path / "c/Audios/utt_04.wav").write_bytes((tmp_path / "c/Audios/utt_00.wav").read_bytes())
    assert cli.main(["extract", "--input", str(corpus), "--store", str(tmp_path / "store"), "--model",
                     tiny_models["wavlm"], "--workers", "0", "--no-progress", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "disk is full" in err and "Traceback" not in err


def test_full_disk_during_transcription_keeps_committed_parts(tmp_path, fake_whisper, monkeypatch):
    import sercache.cache.texts as texts

    audio, weights = transcribe_corpus(tmp_path)
    for name in ("short.wav", "zero.wav", "silent.wav"):
        (audio / name).unlink()
    cfg = TranscribeConfig(input=str(audio), store=str(tmp_path / "store"), model=str(weights), progress=False,
                           part_size=1)
    real = texts.fsync_tree
    monkeypatch.setattr(texts, "fsync_tree", fail_after(1, real))
    with pytest.raises(CacheError) as caught:
        run_transcription(cfg)
    assert_disk_full_message(str(caught.value), tmp_path / "store")
    assert "run the same command again to resume" in str(caught.value)
    parts = tmp_path / "store/texts/asr/weights/parts"
    assert sorted(p.name for p in parts.iterdir()) == ["p000000.jsonl"]  # no torn or temporary part
    assert sorted(TextSet(open_store(tmp_path / "store"), "asr/weights").records) == ["good.wav"]
    monkeypatch.setattr(texts, "fsync_tree", real)
    assert run_transcription(cfg).transcribed == 1  # the same command resumes
    assert sorted(TextSet(open_store(tmp_path / "store"), "asr/weights").records) == ["good.wav", "more.wav"]


def test_full_disk_in_the_aec_stages_is_an_input_error(tmp_path, monkeypatch):
    import sercache.cache.texts as texts
    import sercache.extract.aec as aec
    from sercache.extract.aec_fallback import Correction

    store = Store.create(tmp_path / "store")
    asr, human = TextSetWriter(store, "asr/test"), TextSetWriter(store, "human")
    asr.ensure_metadata({"kind": "asr", "model": "test-asr", "source": None})
    human.ensure_metadata({"kind": "human", "model": None, "source": "test"})
    asr.commit([{"id": "a", "text": "gonna go"}, {"id": "b", "text": "wanna eat"}])
    human.commit([{"id": "a", "text": "going to go"}, {"id": "b", "text": "want to eat"}])
    (tmp_path / "splits.csv").write_text("id,split\na,train\nb,development\n")
    (tmp_path / "model").mkdir()

    class Model(torch.nn.Linear):
        config = SimpleNamespace(model_type="bart")

        def save_pretrained(self, path, **kwargs):
            raise ENOSPC

    monkeypatch.setattr(aec, "load_seq2seq", lambda path, device: (Model(1, 1), Model(1, 1)))
    monkeypatch.setattr(aec, "correct_texts", lambda model, tokenizer, hyps, *a, **k: [
        Correction(h.upper(), h.upper(), 0.0, False) for h in hyps])
    monkeypatch.setattr(aec, "generate_scored", lambda model, tokenizer, hyps, *a, **k: (
        [h.upper() for h in hyps], [0.0] * len(hyps)))
    monkeypatch.setattr(aec, "_train_epoch", lambda *a: 0.5)
    monkeypatch.setattr(texts, "fsync_tree", fail_after(0, texts.fsync_tree))
    with pytest.raises(CacheError) as caught:
        aec.correct_text_set(store, "asr/test", str(tmp_path / "model"), progress=False)
    assert_disk_full_message(str(caught.value), store.root)
    assert sorted(TextSet(store, "asr/test").records) == ["a", "b"]  # what was there stays
    cfg = AECTrainConfig(store=str(store.root), source="asr/test", reference="human",
                         splits=str(tmp_path / "splits.csv"), model=str(tmp_path / "model"), out=str(tmp_path / "aec"),
                         epochs=1, synthetic=0, progress=False)
    with pytest.raises(CacheError) as caught:
        aec.train_aec(cfg)
    assert_disk_full_message(str(caught.value), tmp_path / "aec")
    assert "training starts over" in str(caught.value)

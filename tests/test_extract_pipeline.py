"""The extraction run end to end: parity, provenance, resume after kill -9, bad input, torchrun."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import make_corpus, write_audio

from sercache.cache import open_store
from sercache.extract import ExtractConfig, ExtractionError, run_extraction
from sercache.extract.audio import load
from sercache.extract.encoders import load_encoder
from sercache.extract.layers import parse_layers
from sercache.extract.manifest import Utterance

REPO = Path(__file__).resolve().parents[1]


def config(corpus: Path, store: Path, model: str, **overrides) -> ExtractConfig:
    defaults = dict(input=str(corpus), store=str(store), model=model, workers=0, progress=False, device="cpu")
    return ExtractConfig(**{**defaults, **overrides})


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_stored_features_equal_direct_forward(tmp_path, corpus, tiny_models, backend):
    summary = run_extraction(config(corpus, tmp_path / "store", tiny_models["wavlm"], backend=backend,
                                    batch_seconds=3.0, workers=1))
    assert summary.extracted == 8 and not summary.failures
    fs = open_store(tmp_path / "store")["tiny-wavlm/L-1"]
    encoder = load_encoder(tiny_models["wavlm"])
    for path in sorted((corpus / "Audios").glob("*.wav")):
        audio = load(Utterance(path.name, str(path)))
        direct = encoder.encode([audio.samples], parse_layers("-1"))[0].numpy()
        stored = fs.get(path.name, verify=True).astype(np.float32)
        assert stored.shape == direct.shape and stored.shape[0] == encoder.num_frames(len(audio.samples))
        np.testing.assert_allclose(stored, direct, atol=2e-3, rtol=2e-3)
    meta = fs.meta
    assert meta["model"] == tiny_models["wavlm"] and len(meta["weights_sha256"]) == 64
    assert (meta["layers"], meta["layer_indices"], meta["frame_rate"], meta["sample_rate"]) == ("-1", [3], 50.0, 16000)
    assert meta["dtype"] == "float16" and meta["toolkit_version"] and meta["created"]
    assert all(len(fs.entry(u).fingerprint) == 32 for u in fs.ids)


def test_rerun_does_nothing_and_changed_audio_is_reextracted(tmp_path, corpus, tiny_models):
    cfg = config(corpus, tmp_path / "store", tiny_models["wavlm"])
    run_extraction(cfg)
    parts = sorted(p.name for p in (tmp_path / "store/tiny-wavlm/L-1/parts").iterdir())
    assert run_extraction(cfg).extracted == 0
    assert sorted(p.name for p in (tmp_path / "store/tiny-wavlm/L-1/parts").iterdir()) == parts
    touched = corpus / "Audios/utt_01.wav"
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))  # new mtime, same samples
    assert run_extraction(cfg).extracted == 0
    before = open_store(tmp_path / "store")["tiny-wavlm/L-1"].get("utt_02.wav")
    write_audio(corpus / "Audios/utt_02.wav", 1.0, seed=42)
    assert run_extraction(cfg).extracted == 1
    after = open_store(tmp_path / "store")["tiny-wavlm/L-1"].get("utt_02.wav")
    assert after.shape[0] == 49 != before.shape[0]


def test_stacked_layers_and_bfloat16(tmp_path, corpus, tiny_models):
    run_extraction(config(corpus, tmp_path / "store", tiny_models["wavlm"], layers="all", dtype="bfloat16"))
    fs = open_store(tmp_path / "store")["tiny-wavlm/all"]
    assert fs.frame_shape == (4, 32) and fs.get("utt_00.wav").dtype == np.float32
    assert fs.load().frames.shape == (fs.total_frames(), 4, 32)


def bad_corpus(root: Path) -> Path:
    make_corpus(root, [1.0, 1.2])
    audios = root / "Audios"
    (audios / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    sf.write(audios / "empty.wav", np.zeros(0, np.float32), 16000)
    sf.write(audios / "short.wav", np.full(300, 0.1, np.float32), 16000)
    manifest = root / "manifest.csv"
    rows = [f"{p.name},{p}" for p in sorted(audios.iterdir())] + [f"gone.wav,{audios / 'gone.wav'}"]
    manifest.write_text("id,path\n" + "\n".join(rows) + "\n")
    return manifest


def test_bad_input_stops_before_writing_and_names_every_file(tmp_path, tiny_models):
    manifest = bad_corpus(tmp_path / "c")
    with pytest.raises(ExtractionError) as caught:
        run_extraction(config(manifest, tmp_path / "store", tiny_models["wavlm"]))
    message = str(caught.value)
    for expected in ["broken.wav: unreadable", "empty.wav: is empty", "short.wav: too short (300 samples",
                     "gone.wav: file not found", "--on-error skip"]:
        assert expected in message
    assert not (tmp_path / "store/tiny-wavlm/L-1/parts").exists()


def test_skip_records_failures_and_does_not_retry_unchanged(tmp_path, tiny_models):
    manifest = bad_corpus(tmp_path / "c")
    sf.write(tmp_path / "c/Audios/silent.wav", np.zeros(16000, np.float32), 16000)
    with open(manifest, "a") as handle:
        handle.write(f"silent.wav,{tmp_path / 'c/Audios/silent.wav'}\n")
    cfg = config(manifest, tmp_path / "store", tiny_models["wavlm"], on_error="skip")
    summary = run_extraction(cfg)
    assert summary.extracted == 2
    failed = {f["id"]: f["error"] for f in open_store(tmp_path / "store")["tiny-wavlm/L-1"].failures}
    assert set(failed) == {"broken.wav", "empty.wav", "short.wav", "gone.wav", "silent.wav"}
    assert "is silent" in failed["silent.wav"]
    assert run_extraction(cfg).extracted == 0
    write_audio(tmp_path / "c/Audios/silent.wav", 1.0)
    retried = run_extraction(cfg)
    assert retried.extracted == 1 and len(retried.failures) == 4


def test_decode_time_failure_keeps_committed_parts(tmp_path, tiny_models, monkeypatch):
    import sercache.extract.pipeline as pipeline
    from sercache.extract.audio import AudioError

    corpus = make_corpus(tmp_path / "c", [0.5, 0.6, 0.7, 3.0])

    def load_fails_late(utt):  # the file turns bad after the pre-check (silence is caught before: issue 9)
        if utt.id == "utt_03.wav":  # longest: last part
            raise AudioError(f"{utt.path}: unreadable audio (utterance {utt.id!r}): truncated")
        return load(utt)

    monkeypatch.setattr(pipeline, "load", load_fails_late)
    cfg = config(corpus, tmp_path / "store", tiny_models["wavlm"], part_megabytes=0.002)
    with pytest.raises(ExtractionError, match="utt_03.wav: unreadable"):
        run_extraction(cfg)
    monkeypatch.undo()
    fs = open_store(tmp_path / "store")["tiny-wavlm/L-1"]
    assert sorted(fs.ids) == ["utt_00.wav", "utt_01.wav", "utt_02.wav"] and fs.verify().ok
    write_audio(corpus / "Audios/utt_03.wav", 3.0)
    assert run_extraction(cfg).extracted == 1


def test_storage_projection_refuses_unless_forced(tmp_path, corpus, tiny_models, monkeypatch, capsys):
    import sercache.extract.pipeline as pipeline

    monkeypatch.setattr(pipeline.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10**6, 10**6 - 100, 100))
    with pytest.raises(ExtractionError, match="does not fit in 0.00 GB free"):
        run_extraction(config(corpus, tmp_path / "store", tiny_models["wavlm"]))
    assert "projected size" in capsys.readouterr().err
    assert run_extraction(config(corpus, tmp_path / "store", tiny_models["wavlm"], force=True)).extracted == 8


def _store_contents(root: Path, name: str) -> dict:
    fs = open_store(root)[name]
    parts = {}
    for number in fs.part_paths():
        parts[number] = sorted(u for u in fs.ids if fs.entry(u).part == number)
    return {"parts": parts, "frames": {u: fs.get(u, verify=True) for u in fs.ids}}


def _alive(pid: str) -> bool:
    """Running, as opposed to gone or a zombie (dead, waiting for a reaper that some sandboxes lack)."""
    try:
        return "\tZ" not in next(line for line in open(f"/proc/{pid}/status") if line.startswith("State"))
    except FileNotFoundError:
        return False


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sercache.extract.cli", *args]


@pytest.mark.slow
def test_kill_minus_nine_then_resume_equals_uninterrupted(tmp_path, tiny_models):
    durations = [0.4 + 0.13 * i for i in range(30)]
    corpus = make_corpus(tmp_path / "c", durations)
    args = ["--input", str(corpus), "--model", tiny_models["whisper"], "--part-megabytes", "0.004",
            "--workers", "1", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_cli(*args, "--store", str(tmp_path / "ref")), check=True, env=env, capture_output=True)
    parts_dir = tmp_path / "killed/tiny-whisper/L-1/parts"
    victim = subprocess.Popen(_cli(*args, "--store", str(tmp_path / "killed")), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    committed = 0
    while victim.poll() is None and committed < 2:
        committed = len(list(parts_dir.glob("p*.zarr"))) if parts_dir.exists() else 0
        time.sleep(0.002)
    workers = subprocess.run(["pgrep", "-P", str(victim.pid)], capture_output=True, text=True).stdout.split()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    time.sleep(0.5)
    assert workers and not [w for w in workers if _alive(w)], "decoding workers outlived the kill"
    reference = _store_contents(tmp_path / "ref", "tiny-whisper/L-1")
    interrupted = len(list(parts_dir.glob("p*.zarr")))
    assert 2 <= interrupted < len(reference["parts"]), "the kill must land mid-run"
    resumed = subprocess.run(_cli(*args, "--store", str(tmp_path / "killed")), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(parts_dir.glob(".tmp-*"))
    got = _store_contents(tmp_path / "killed", "tiny-whisper/L-1")
    assert got["parts"] == reference["parts"]
    for uid, frames in reference["frames"].items():
        np.testing.assert_array_equal(got["frames"][uid], frames)
    again = subprocess.run(_cli(*args, "--store", str(tmp_path / "killed")), env=env, capture_output=True, text=True)
    assert "nothing to do; 30 utterances already extracted" in again.stderr


@pytest.mark.slow
def test_torchrun_two_ranks_make_one_store_equal_to_single_process(tmp_path, tiny_models):
    corpus = make_corpus(tmp_path / "c", [0.5 + 0.21 * i for i in range(14)])
    args = ["--input", str(corpus), "--model", tiny_models["wavlm"], "--part-megabytes", "0.003",
            "--workers", "0", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_cli(*args, "--store", str(tmp_path / "single")), check=True, env=env, capture_output=True)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "sercache.extract.cli", *args, "--store", str(tmp_path / "multi")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    single = _store_contents(tmp_path / "single", "tiny-wavlm/L-1")
    multi = _store_contents(tmp_path / "multi", "tiny-wavlm/L-1")
    assert multi["parts"] == single["parts"] and len(single["parts"]) >= 4
    ranks = set()
    for path in open_store(tmp_path / "multi")["tiny-wavlm/L-1"].part_paths().values():
        import zarr

        ranks.add(zarr.open_group(str(path), mode="r").attrs["rank"])
    assert ranks == {0, 1}
    for uid, frames in single["frames"].items():
        np.testing.assert_allclose(multi["frames"][uid].astype(np.float32), frames.astype(np.float32), atol=2e-3)

"""Layer specs, manifests (CSV, JSONL, directories, MSP-Podcast layout) and audio decoding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from conftest import write_audio

from sercache.extract.audio import AudioError, load, probe
from sercache.extract.layers import LayerSpecError, parse_layers
from sercache.extract.manifest import ManifestError, Utterance, load_manifest


@pytest.mark.parametrize("spec,tag,indices,shape", [
    ("-1", "L-1", [4], (2, 5, 3)),
    ("-3", "L-3", [2], (2, 5, 3)),
    ("0", "L0", [0], (2, 5, 3)),
    ("-4..-1", "L-4..-1", [1, 2, 3, 4], (2, 5, 4, 3)),
    ("1,3", "L1,3", [1, 3], (2, 5, 2, 3)),
    ("all", "all", [0, 1, 2, 3, 4], (2, 5, 5, 3)),
    ("last4mean", "mean(L-4..-1)", [1, 2, 3, 4], (2, 5, 3)),
])
def test_layer_specs(spec, tag, indices, shape):
    layer = parse_layers(spec)
    hidden = [torch.full((2, 5, 3), float(i)) for i in range(5)]
    assert layer.tag == tag and layer.resolve(5) == indices
    out = layer.select(hidden)
    assert tuple(out.shape) == shape
    if layer.reduce == "mean":
        assert torch.all(out == float(np.mean(indices)))


@pytest.mark.parametrize("bad", ["-1..3", "5..2", "x", "mean(a)"])
def test_bad_layer_specs(bad):
    with pytest.raises(LayerSpecError):
        parse_layers(bad)


def test_layer_out_of_range_names_range():
    with pytest.raises(LayerSpecError, match="0..4"):
        parse_layers("-7").resolve(5)


def test_msp_podcast_root_gives_label_file_names(tmp_path):
    for name in ["MSP-PODCAST_0001_0008.wav", "MSP-PODCAST_0002_0001.wav"]:
        write_audio(tmp_path / "Audios" / name, 0.5)
    (tmp_path / "Labels").mkdir()
    ids = [u.id for u in load_manifest(tmp_path)]
    assert ids == ["MSP-PODCAST_0001_0008.wav", "MSP-PODCAST_0002_0001.wav"]


def test_csv_and_jsonl_manifests_with_segments(tmp_path):
    write_audio(tmp_path / "a.wav", 2.0)
    (tmp_path / "m.csv").write_text("id,path,start,end\nx,a.wav,0.5,1.0\ny,a.wav,,\n")
    utts = load_manifest(tmp_path / "m.csv")
    assert utts[0] == Utterance("x", str(tmp_path / "a.wav"), 0.5, 1.0) and utts[1].start is None
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "z", "audio": "a.wav", "start": 1.5}) + "\n")
    assert load_manifest(tmp_path / "m.jsonl")[0].start == 1.5
    assert len(load(utts[0]).samples) == 8000


@pytest.mark.parametrize("content,match", [
    ("id,path\nx,a.wav\nx,a.wav\n", "appears twice"),
    ("id,wrong\nx,a.wav\n", "no audio path"),
    ("id,path,start,end\nx,a.wav,2,1\n", "not after start"),
    ("id,path,start\nx,a.wav,abc\n", "not a number"),
])
def test_bad_manifests(tmp_path, content, match):
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(ManifestError, match=match):
        load_manifest(tmp_path / "m.csv")


@pytest.mark.parametrize("rate,channels", [(16000, 1), (44100, 2), (8000, 1), (48000, 6)])
def test_load_downmixes_and_resamples_with_soxr(tmp_path, rate, channels):
    path = write_audio(tmp_path / "x.wav", 1.37, rate, channels, seed=3)
    audio = load(Utterance("x", str(path)))
    raw, _ = sf.read(path, dtype="float32", always_2d=True)
    expected = raw.mean(axis=1)
    if rate != 16000:
        expected = soxr.resample(expected, rate, 16000, quality="HQ")
    assert audio.samples.dtype == np.float32 and len(audio.samples) == round(len(raw) * 16000 / rate)
    np.testing.assert_allclose(audio.samples, expected, atol=1e-6)
    assert probe(Utterance("x", str(path))).samples == len(audio.samples)


def test_fingerprint_tracks_audio_not_file_metadata(tmp_path):
    path = write_audio(tmp_path / "x.wav", 0.5)
    first = load(Utterance("x", str(path))).fingerprint
    assert load(Utterance("x", str(path))).fingerprint == first
    write_audio(path, 0.5, seed=9)
    assert load(Utterance("x", str(path))).fingerprint != first


def test_bad_audio_messages_name_the_file(tmp_path):
    missing = Utterance("m", str(tmp_path / "missing.wav"))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00junk")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0,), np.float32), 16000)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        probe(missing)
    with pytest.raises(AudioError, match="broken.wav: unreadable audio"):
        probe(Utterance("b", str(broken)))
    with pytest.raises(AudioError, match="empty.wav: is empty"):
        probe(Utterance("e", str(empty)))
    with pytest.raises(AudioError, match="silent.wav: is silent"):
        load(Utterance("s", str(silent)))

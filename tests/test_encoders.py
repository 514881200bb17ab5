"""Encoders: exact frame counts, parity with a direct transformers forward pass, Whisper padding modes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sercache.extract.encoders import load_encoder
from sercache.extract.layers import parse_layers


def conv_frames(n: int, kernels=(10, 3, 3, 3, 3, 2, 2), strides=(5, 2, 2, 2, 2, 2, 2)) -> int:
    for k, s in zip(kernels, strides):
        n = (n - k) // s + 1
    return max(n, 0)


def wave(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(round(seconds * 16000)))).astype(np.float32)


@pytest.mark.parametrize("model", ["wavlm", "hubert"])
@pytest.mark.parametrize("samples", [400, 401, 1000, 16000, 24321, 95999])
def test_ssl_frame_counts(tiny_models, model, samples):
    encoder = load_encoder(tiny_models[model])
    assert encoder.num_frames(samples) == conv_frames(samples)
    assert encoder.encode([wave(samples / 16000)], parse_layers("-1"))[0].shape == (conv_frames(samples), 32)
    assert encoder.min_samples == 400 and conv_frames(399) == 0


@pytest.mark.parametrize("seconds,frames", [(0.02, 1), (0.7, 35), (5.0, 250), (5.01, 251), (30.0, 1500),
                                            (31.0, 1550), (65.0, 3250)])
def test_whisper_frame_counts_cover_audio_only(tiny_models, seconds, frames):
    encoder = load_encoder(tiny_models["whisper"])
    assert encoder.num_frames(int(seconds * 16000)) == frames == math.ceil(seconds * 16000 / 320)
    assert encoder.encode([wave(seconds)], parse_layers("-1"))[0].shape == (frames, 32)


def _direct_ssl(path: str, audio: np.ndarray, extractor: bool = True) -> tuple[torch.Tensor, tuple]:
    from transformers import AutoFeatureExtractor, AutoModel

    model = AutoModel.from_pretrained(path).eval()
    values = torch.from_numpy(audio)[None]
    if extractor:
        extractor = AutoFeatureExtractor.from_pretrained(path)
        values = extractor(audio, sampling_rate=16000, return_tensors="pt").input_values
    with torch.no_grad():
        out = model(values, output_hidden_states=True)
    return out.last_hidden_state[0], out.hidden_states


def test_wavlm_matches_direct_forward_and_batching_changes_nothing(tiny_models):
    path = tiny_models["wavlm"]
    encoder = load_encoder(path)
    audios = [wave(1.3, 1), wave(0.6, 2), wave(2.1, 3)]
    batched = encoder.encode(audios, parse_layers("-1"))
    for audio, got in zip(audios, batched):
        last, hidden = _direct_ssl(path, audio)
        torch.testing.assert_close(got, last, atol=1e-4, rtol=1e-4)
    stacked = encoder.encode(audios[:1], parse_layers("-4..-1"))[0]
    last, hidden = _direct_ssl(path, audios[0])
    torch.testing.assert_close(stacked[:, 1], hidden[1][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(stacked[:, 3], last, atol=1e-4, rtol=1e-4)
    mean = encoder.encode(audios[:1], parse_layers("mean(-4..-1)"))[0]
    torch.testing.assert_close(mean, stacked.mean(dim=1), atol=1e-5, rtol=1e-5)


def test_group_norm_model_runs_unpadded(tiny_models):
    path = tiny_models["hubert"]
    encoder = load_encoder(path)
    assert not encoder.pad_safe
    audios = [wave(0.9, 4), wave(1.6, 5)]
    for audio, got in zip(audios, encoder.encode(audios, parse_layers("-1"))):
        last, _ = _direct_ssl(path, audio, extractor=False)  # no preprocessor_config.json: raw samples
        torch.testing.assert_close(got, last, atol=1e-4, rtol=1e-4)


def _direct_whisper(path: str, audio: np.ndarray) -> torch.Tensor:
    from transformers import WhisperFeatureExtractor, WhisperModel

    model = WhisperModel.from_pretrained(path).eval()
    mel = WhisperFeatureExtractor.from_pretrained(path)(audio, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        return model.encoder(mel.input_features).last_hidden_state[0]


def test_whisper_padded_equals_first_frames_of_30s_forward(tiny_models):
    encoder = load_encoder(tiny_models["whisper"], whisper_mode="padded")
    audio = wave(5.0, 6)
    got = encoder.encode([audio, wave(2.0, 7)], parse_layers("-1"))[0]
    reference = _direct_whisper(tiny_models["whisper"], audio)
    assert reference.shape[0] == 1500 and got.shape[0] == 250
    torch.testing.assert_close(got, reference[:250], atol=1e-5, rtol=1e-5)


def test_whisper_trimmed_batch_invariant_and_documented_difference(tiny_models):
    padded = load_encoder(tiny_models["whisper"], whisper_mode="padded")
    trimmed = load_encoder(tiny_models["whisper"], whisper_mode="trimmed")
    short, long = wave(1.5, 8), wave(4.0, 9)
    alone = trimmed.encode([short], parse_layers("-1"))[0]
    together = trimmed.encode([long, short], parse_layers("-1"))[1]
    torch.testing.assert_close(alone, together, atol=1e-5, rtol=1e-5)
    reference = padded.encode([short], parse_layers("-1"))[0]
    assert alone.shape == reference.shape == (75, 32)
    relative = ((alone - reference).norm() / reference.norm()).item()
    assert relative > 1e-3  # trimmed features are not the padded ones: the mode is recorded in the store
    assert trimmed.cost(len(short)) * 10 < padded.cost(len(short))


def test_whisper_long_audio_is_windowed(tiny_models):
    encoder = load_encoder(tiny_models["whisper"])
    audio = wave(47.0, 10)
    frames = encoder.encode([audio], parse_layers("-1"))[0]
    assert frames.shape[0] == 2350
    first = _direct_whisper(tiny_models["whisper"], audio[:480000])
    second = _direct_whisper(tiny_models["whisper"], audio[480000:])
    torch.testing.assert_close(frames[:1500], first, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(frames[1500:], second[:850], atol=1e-5, rtol=1e-5)

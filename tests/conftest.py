"""Shared fixtures: tiny encoders built from configs and saved to disk (loaded back through the
same from_pretrained path a user's checkpoint takes), and small audio corpora."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _save_wavlm(path: Path) -> Path:
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    torch.manual_seed(0)
    cfg = WavLMConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                      conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                      do_stable_layer_norm=True, feat_extract_norm="layer", num_buckets=32, max_bucket_distance=80)
    WavLMModel(cfg).save_pretrained(path)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(path)
    return path


def _save_hubert(path: Path) -> Path:
    """Group-norm feature extractor, like hubert-base: padding would change results."""
    import torch
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(1)
    cfg = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                       feat_extract_norm="group", do_stable_layer_norm=False)
    HubertModel(cfg).save_pretrained(path)
    return path


def _save_whisper(path: Path) -> Path:
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    torch.manual_seed(2)
    cfg = WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                        max_source_positions=1500, max_target_positions=32)
    WhisperModel(cfg).save_pretrained(path)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("models")
    return {
        "wavlm": str(_save_wavlm(root / "tiny-wavlm")),
        "hubert": str(_save_hubert(root / "tiny-hubert")),
        "whisper": str(_save_whisper(root / "tiny-whisper")),
    }


def write_audio(path: Path, seconds: float, rate: int = 16000, channels: int = 1, seed: int = 0,
                amplitude: float = 0.1) -> Path:
    """Noise plus a tone: deterministic, not silent."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    tone = np.sin(2 * np.pi * (150 + 20 * seed) * t)
    data = amplitude * (0.5 * tone[:, None] + 0.5 * rng.standard_normal((n, channels)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data.astype(np.float32), rate)
    return path


def make_corpus(root: Path, durations: list[float], rates: tuple[int, ...] = (16000, 44100, 8000)) -> Path:
    """root/Audios/utt_XX.wav in the MSP-Podcast layout, with mixed rates and channel counts."""
    for i, seconds in enumerate(durations):
        write_audio(root / "Audios" / f"utt_{i:02d}.wav", seconds, rates[i % len(rates)], 1 + i % 2, seed=i)
    return root


@pytest.fixture
def corpus(tmp_path) -> Path:
    return make_corpus(tmp_path / "corpus", [0.7, 1.3, 2.2, 0.9, 3.1, 1.7, 2.6, 1.1])

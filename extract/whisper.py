"""Whisper encoder frames without the 30-s padding.

Whisper's encoder always sees 30 s (3000 mel frames -> 1500 encoder frames, 20 ms each). An
utterance of n samples is covered by ceil(n / 320) frames; only those are stored. Two modes:

* padded (default; the paper's and transformers' way): run the full padded 30-s input, keep the
  valid frames. Features equal `WhisperEncoder(...).last_hidden_state[:, :valid]`.
* trimmed: feed only the mel frames that cover the audio and only as many positional
  embeddings (attention masked inside a batch). About 30 s / duration times less compute;
  the features differ, because in padded mode every frame also attends to the padding.

Audio longer than 30 s is cut into consecutive 30-s windows, each encoded on its own (as
Whisper itself does when transcribing); the windows' valid frames are concatenated, so the
frame count stays ceil(n / 320).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .encoder_base import AudioEncoder, EncoderError
from .layers import LayerSpec

WHISPER_MODES = ("padded", "trimmed")
SAMPLES_PER_FRAME = 320  # every Whisper model: a 30-s window of 480000 samples gives 1500 encoder frames


class WindowedWhisper(AudioEncoder):
    """Frame bookkeeping and 30-s windowing shared by the Whisper backends (transformers, CTranslate2):
    a backend encodes a batch of window mels (`_encode_windows`), this class cuts and joins."""

    def __init__(self, name: str, model, device: torch.device, dtype: torch.dtype, feature_extractor, mode: str,
                 samples_per_frame: int):
        if mode not in WHISPER_MODES:
            raise EncoderError(f"unknown Whisper mode {mode!r}; choose one of {WHISPER_MODES}")
        super().__init__(name, model, device, dtype)
        self.features = feature_extractor
        self.mode = mode
        self.window = feature_extractor.n_samples  # 480000 samples = 30 s
        self.samples_per_frame = samples_per_frame  # 320
        self.frame_rate = self.sample_rate / samples_per_frame
        self.min_samples = samples_per_frame

    def _windows(self, n_samples: int) -> list[tuple[int, int]]:
        return [(s, min(s + self.window, n_samples)) for s in range(0, n_samples, self.window)]

    def num_frames(self, n_samples: int) -> int:
        return math.ceil(n_samples / self.samples_per_frame)

    def cost(self, n_samples: int) -> int:
        if self.mode == "padded":
            return len(self._windows(n_samples)) * self.window
        return n_samples

    @torch.inference_mode()
    def encode(self, waves: list[np.ndarray], layers: LayerSpec) -> list[torch.Tensor]:
        self.check_layers(layers)
        owners, chunks = [], []
        for i, wave in enumerate(waves):
            for start, stop in self._windows(len(wave)):
                owners.append(i)
                chunks.append(wave[start:stop])
        mel = self.features(chunks, sampling_rate=self.sample_rate, return_tensors="np",
                            padding="max_length").input_features
        valid = [self.num_frames(len(c)) for c in chunks]
        outputs = self._encode_windows(mel, valid, layers)
        pieces: list[list[torch.Tensor]] = [[] for _ in waves]
        for owner, out, frames in zip(owners, outputs, valid):
            pieces[owner].append(torch.as_tensor(out[:frames]).float().cpu())
        return [torch.cat(p) for p in pieces]

    def _encode_windows(self, mel: np.ndarray, valid: list[int], layers: LayerSpec):
        """Per window, frames [>= valid[i], *frame_shape] (tensors or arrays)."""
        raise NotImplementedError

    def provenance(self):
        return {**super().provenance(), "whisper_mode": self.mode, "window_seconds": self.window / self.sample_rate}


class WhisperEncoderFrames(WindowedWhisper):
    def __init__(self, name: str, encoder, feature_extractor, device: torch.device, dtype: torch.dtype,
                 mode: str):
        self.max_frames = encoder.config.max_source_positions  # 1500
        super().__init__(name, encoder, device, dtype, feature_extractor, mode,
                         feature_extractor.n_samples // self.max_frames)
        self.n_hidden = encoder.config.encoder_layers + 1
        self.dim = encoder.config.d_model

    @classmethod
    def from_pretrained(cls, name: str, device: torch.device, dtype: torch.dtype, mode: str
                        ) -> "WhisperEncoderFrames":
        from transformers import WhisperFeatureExtractor, WhisperModel

        model = WhisperModel.from_pretrained(name, dtype=dtype)
        encoder = model.get_encoder().to(device).eval()
        del model  # the decoder is half of the weights and never used here
        try:
            extractor = WhisperFeatureExtractor.from_pretrained(name)
        except Exception:
            extractor = WhisperFeatureExtractor(feature_size=encoder.config.num_mel_bins)
        if extractor.feature_size != encoder.config.num_mel_bins:
            raise EncoderError(f"{name}: feature extractor makes {extractor.feature_size} mel bins, "
                               f"encoder expects {encoder.config.num_mel_bins}")
        return cls(name, encoder, extractor, device, dtype, mode)

    def _encode_windows(self, mel: np.ndarray, valid: list[int], layers: LayerSpec) -> torch.Tensor:
        return layers.select(self._hidden_states(torch.from_numpy(mel).to(self.device, self.dtype), valid))

    def _hidden_states(self, mel: torch.Tensor, valid: list[int]) -> list[torch.Tensor]:
        """The encoder's forward, layer by layer; trimmed mode cuts input and positions to the batch's need."""
        enc = self.model
        frames = self.max_frames if self.mode == "padded" else max(valid)
        mel = mel[..., : 2 * frames]
        if self.mode == "trimmed":  # zero past each row's end, as if it ran alone: results never depend on batching
            ends = 2 * torch.tensor(valid, device=self.device)[:, None]
            beyond = torch.arange(2 * frames, device=self.device)[None, :] >= ends
            mel = mel.masked_fill(beyond[:, None, :], 0)
        x = torch.nn.functional.gelu(enc.conv1(mel))
        if self.mode == "trimmed":
            x = x.masked_fill(beyond[:, None, :], 0)
        x = torch.nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        x = x + enc.embed_positions.weight[:frames]
        mask = self._key_mask(valid, frames, x.dtype) if self.mode == "trimmed" else None
        states = [x]
        for layer in enc.layers:
            x = layer(x, mask)
            states.append(x)
        states[-1] = enc.layer_norm(x)
        return states

    def _key_mask(self, valid: list[int], frames: int, dtype: torch.dtype) -> torch.Tensor | None:
        if all(v == frames for v in valid):
            return None
        keys = torch.arange(frames, device=self.device)[None, :] >= torch.tensor(valid, device=self.device)[:, None]
        mask = torch.zeros(len(valid), 1, frames, frames, device=self.device, dtype=dtype)
        return mask.masked_fill(keys[:, None, None, :], torch.finfo(dtype).min)

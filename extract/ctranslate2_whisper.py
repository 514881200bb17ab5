"""Whisper encoder frames from a CTranslate2 (faster-whisper format) checkpoint.

CTranslate2's `Whisper.encode` returns only the final encoder layer, so only layer -1 is
available here. Frame bookkeeping and modes follow whisper.py: padded runs the 30-s input and
keeps ceil(n / 320) frames; trimmed feeds only the needed mel frames (one utterance per call,
since CTranslate2 takes no attention mask). Windows of 30 s handle longer audio.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .encoders import AudioEncoder, EncoderError, weights_digest
from .layers import LayerSpec
from .whisper import WHISPER_MODES

WINDOW = 480000
SAMPLES_PER_FRAME = 320


def is_ctranslate2_dir(path: str) -> bool:
    folder = Path(path)
    if not (folder / "model.bin").is_file() or not (folder / "config.json").is_file():
        return False
    return "model_type" not in json.loads((folder / "config.json").read_text())


class _Config:
    model_type = "whisper-ctranslate2"


class _ModelInfo:
    """Stands in for a transformers model in AudioEncoder's provenance."""

    config = _Config()


class CTranslate2WhisperFrames(AudioEncoder):
    def __init__(self, path: str, device: torch.device, mode: str, compute_type: str):
        import ctranslate2
        from transformers import WhisperFeatureExtractor

        if mode not in WHISPER_MODES:
            raise EncoderError(f"unknown Whisper mode {mode!r}; choose one of {WHISPER_MODES}")
        self.ct2 = ctranslate2.models.Whisper(path, device=device.type, compute_type=compute_type,
                                              device_index=device.index or 0)
        super().__init__(path, _ModelInfo(), device, torch.float32)
        self.compute_type = compute_type
        self.features = WhisperFeatureExtractor(feature_size=self.ct2.n_mels)
        self.mode = mode
        self.frame_rate = self.sample_rate / SAMPLES_PER_FRAME
        self.n_hidden = 1  # CTranslate2 exposes the final layer only
        self.min_samples = SAMPLES_PER_FRAME
        self.dim = int(self._run(np.zeros((1, self.ct2.n_mels, 2 * 10), np.float32)).shape[-1])

    def _run(self, mel: np.ndarray) -> np.ndarray:
        import ctranslate2

        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel, dtype=np.float32))
        return np.array(self.ct2.encode(view, to_cpu=True))

    def num_frames(self, n_samples: int) -> int:
        return math.ceil(n_samples / SAMPLES_PER_FRAME)

    def cost(self, n_samples: int) -> int:
        windows = math.ceil(n_samples / WINDOW)
        return windows * WINDOW if self.mode == "padded" else n_samples

    def check_layers(self, layers: LayerSpec) -> None:
        if layers.indices != (-1,) or layers.stacked:
            raise EncoderError(f"{self.name}: a CTranslate2 checkpoint gives only the last encoder layer "
                               f"(asked for {layers.text!r}); use --layers -1")

    def encode(self, waves: list[np.ndarray], layers: LayerSpec) -> list[torch.Tensor]:
        self.check_layers(layers)
        owners, chunks = [], []
        for i, wave in enumerate(waves):
            for start in range(0, len(wave), WINDOW):
                owners.append(i)
                chunks.append(wave[start:start + WINDOW])
        mel = self.features(chunks, sampling_rate=self.sample_rate, return_tensors="np",
                            padding="max_length").input_features
        valid = [self.num_frames(len(c)) for c in chunks]
        if self.mode == "padded":
            outputs = list(self._run(mel))
        else:
            outputs = [self._run(mel[i:i + 1, :, :2 * v])[0] for i, v in enumerate(valid)]
        pieces: list[list[torch.Tensor]] = [[] for _ in waves]
        for owner, out, frames in zip(owners, outputs, valid):
            pieces[owner].append(torch.from_numpy(np.array(out[:frames], dtype=np.float32)))
        return [torch.cat(p) for p in pieces]

    def provenance(self) -> dict[str, Any]:
        import ctranslate2

        return {
            "model": self.name, "model_type": "whisper-ctranslate2", "model_revision": None,
            "weights_sha256": weights_digest(self.name), "frame_rate": self.frame_rate,
            "sample_rate": self.sample_rate, "n_hidden_states": None, "kind": self.kind,
            "compute_dtype": self.compute_type, "ctranslate2_version": ctranslate2.__version__,
            "torch_version": torch.__version__, "whisper_mode": self.mode, "window_seconds": WINDOW / 16000,
        }

"""Whisper encoder frames from a CTranslate2 (faster-whisper format) checkpoint.

CTranslate2's `Whisper.encode` returns only the final encoder layer, so only layer -1 is
available here. Frame bookkeeping and modes follow whisper.py: padded runs the 30-s input and
keeps ceil(n / 320) frames; trimmed feeds only the needed mel frames (one utterance per call,
since CTranslate2 takes no attention mask). Windows of 30 s handle longer audio.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .encoder_base import EncoderError, weights_digest
from .layers import LayerSpec
from .whisper import SAMPLES_PER_FRAME, WindowedWhisper


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


class CTranslate2WhisperFrames(WindowedWhisper):
    def __init__(self, path: str, device: torch.device, mode: str, compute_type: str):
        import ctranslate2
        from transformers import WhisperFeatureExtractor

        self.ct2 = ctranslate2.models.Whisper(path, device=device.type, compute_type=compute_type,
                                              device_index=device.index or 0)
        super().__init__(path, _ModelInfo(), device, torch.float32,
                         WhisperFeatureExtractor(feature_size=self.ct2.n_mels), mode, SAMPLES_PER_FRAME)
        self.compute_type = compute_type
        self.n_hidden = 1  # CTranslate2 exposes the final layer only (provenance: see layer_indices)
        self.dim = int(self._run(np.zeros((1, self.ct2.n_mels, 2 * 10), np.float32)).shape[-1])

    def _run(self, mel: np.ndarray) -> np.ndarray:
        import ctranslate2

        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel, dtype=np.float32))
        return np.array(self.ct2.encode(view, to_cpu=True))

    def check_layers(self, layers: LayerSpec) -> None:
        if layers.indices != (-1,) or layers.stacked:
            raise EncoderError(f"{self.name}: a CTranslate2 checkpoint gives only the last encoder layer "
                               f"(asked for {layers.text!r}); use --layers -1")

    def layer_indices(self, layers: LayerSpec) -> list[int]:
        """What featureset.json records: CTranslate2 does not say how many layers the encoder has, so
        no absolute index exists; -1 (counted from the end: the final layer, after the last layer
        norm) says what is stored, where resolving against `n_hidden` = 1 would claim index 0."""
        self.check_layers(layers)
        return [-1]

    def _encode_windows(self, mel: np.ndarray, valid: list[int], layers: LayerSpec) -> list[np.ndarray]:
        if self.mode == "padded":
            return list(self._run(mel))
        # trimmed: CTranslate2 takes no attention mask, so each window runs alone on its own frames
        return [self._run(mel[i:i + 1, :, :2 * v])[0] for i, v in enumerate(valid)]

    def provenance(self) -> dict[str, Any]:
        import ctranslate2

        return {
            "model": self.name, "model_type": "whisper-ctranslate2", "model_revision": None,
            "weights_sha256": weights_digest(self.name), "frame_rate": self.frame_rate,
            "sample_rate": self.sample_rate, "n_hidden_states": None, "kind": self.kind,
            "compute_dtype": self.compute_type, "ctranslate2_version": ctranslate2.__version__,
            "torch_version": torch.__version__, "whisper_mode": self.mode, "window_seconds": self.window / 16000,
        }

"""What every frozen audio encoder shares: the `AudioEncoder` interface, its error and the weights digest.

The concrete encoders (encoders.py's SSL models, whisper.py, ctranslate2_whisper.py) build on this module;
encoders.py, the loader, imports them. This module imports none of them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sercache.errors import SercacheError

from .layers import LayerSpec


class EncoderError(SercacheError):
    pass


def weights_digest(name_or_path: str) -> str | None:
    """SHA-256 over the checkpoint's weight files, so a store records exactly which weights made it."""
    folder = Path(name_or_path)
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(name_or_path, local_files_only=True))
        except Exception:
            return None
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt") and p.is_file())
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()


class AudioEncoder:
    """Common interface. `encode` returns float32 CPU tensors [frames, *frame_shape]."""

    kind = "audio"
    sample_rate = 16000
    frame_rate: float
    n_hidden: int
    dim: int
    min_samples: int

    def __init__(self, name: str, model, device: torch.device, dtype: torch.dtype):
        self.name, self.model, self.device, self.dtype = name, model, device, dtype

    def num_frames(self, n_samples: int) -> int:
        raise NotImplementedError

    def cost(self, n_samples: int) -> int:
        """Samples of compute one utterance costs in a batch (Whisper: whole 30-s windows)."""
        return n_samples

    def encode(self, waves: list[np.ndarray], layers: LayerSpec) -> list[torch.Tensor]:
        raise NotImplementedError

    def check_layers(self, layers: LayerSpec) -> None:
        """Fail before any work when the spec asks for layers this encoder does not have."""
        layers.resolve(self.n_hidden)

    def provenance(self) -> dict[str, Any]:
        import transformers

        return {
            "model": self.name,
            "model_type": self.model.config.model_type,
            "model_revision": getattr(self.model.config, "_commit_hash", None),
            "weights_sha256": weights_digest(self.name),
            "frame_rate": self.frame_rate,
            "sample_rate": self.sample_rate,
            "n_hidden_states": self.n_hidden,
            "kind": self.kind,
            "compute_dtype": str(self.dtype).replace("torch.", ""),
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
        }

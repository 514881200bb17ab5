"""Frozen audio encoders behind one interface: waveforms in, per-utterance frames out.

Loading goes through `from_pretrained(name_or_path)`, the path a user's hub name or local
checkpoint takes. Hidden-state index -1 is always the model's `last_hidden_state` (after the
final layer norm where the model has one), as transformers 4.x and s3prl return it. The interface
(`AudioEncoder`, `EncoderError`) lives in encoder_base.py; this module is the loader and imports the
concrete encoders.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .bundled import BUNDLED_NAMES, resolve_bundled
from .ctranslate2_whisper import CTranslate2WhisperFrames, is_ctranslate2_dir
from .encoder_base import AudioEncoder, EncoderError, weights_digest  # callers import these from here too
from .layers import LayerSpec
from .whisper import WhisperEncoderFrames

SHORT_NAMES = {
    "wavlm-base": "microsoft/wavlm-base",
    "wavlm-base-plus": "microsoft/wavlm-base-plus",
    "wavlm-large": "microsoft/wavlm-large",
    "hubert-base": "facebook/hubert-base-ls960",
    "hubert-large": "facebook/hubert-large-ll60k",
    "hubert-xlarge": "facebook/hubert-xlarge-ll60k",
    "wav2vec2-large-robust": "facebook/wav2vec2-large-robust",
    **{f"whisper-{size}": f"openai/whisper-{size}" for size in (
        "tiny", "base", "small", "medium", "large", "large-v2", "large-v3", "large-v3-turbo")},
}
SSL_TYPES = ("wavlm", "hubert", "wav2vec2")
# WavLM's attention mixes a bool padding mask with a float bias; torch warns on every batch.
warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask", category=UserWarning)
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def resolve_name(model: str) -> str:
    return SHORT_NAMES.get(model, model)


def default_set_name(model: str) -> str:
    """'whisper-large-v3' for short names and hub ids, the directory name for local paths."""
    if model in SHORT_NAMES or model in BUNDLED_NAMES:
        return model
    return Path(model.rstrip("/")).name.replace("_", "-")


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def model_digest(path: str) -> str | None:
    """weights_digest of a checkpoint directory (or hub id), or SHA-256 over a single checkpoint file
    (an openai-whisper .pt): what `predict` compares before it trusts a model for a head."""
    file = Path(path)
    if not file.is_file():
        return weights_digest(path)
    digest = hashlib.sha256()
    digest.update(file.name.encode())
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


class SSLEncoder(AudioEncoder):
    """WavLM, HuBERT, wav2vec 2.0: a strided CNN then a transformer, ~50 frames/s."""

    def __init__(self, name: str, model, device: torch.device, dtype: torch.dtype, normalize: bool):
        super().__init__(name, model, device, dtype)
        cfg = model.config
        self.normalize = normalize
        # Group-norm feature extractors normalise over time: padding would change every frame,
        # so such models see one utterance per forward pass.
        self.pad_safe = cfg.feat_extract_norm == "layer"
        self.n_hidden = cfg.num_hidden_layers + 1
        self.dim = cfg.hidden_size
        self.frame_rate = self.sample_rate / math.prod(cfg.conv_stride)
        self.min_samples = self._receptive_field(cfg.conv_kernel, cfg.conv_stride)

    @staticmethod
    def _receptive_field(kernels, strides) -> int:
        samples = 1
        for kernel, stride in reversed(list(zip(kernels, strides))):
            samples = (samples - 1) * stride + kernel
        return samples

    def num_frames(self, n_samples: int) -> int:
        return int(self.model._get_feat_extract_output_lengths(torch.tensor(n_samples)))

    def _prepare(self, wave: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(wave)
        if self.normalize:  # transformers' Wav2Vec2FeatureExtractor zero-mean unit-var, per utterance
            x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
        return x

    @torch.inference_mode()
    def encode(self, waves: list[np.ndarray], layers: LayerSpec) -> list[torch.Tensor]:
        if not self.pad_safe and len(waves) > 1:
            return [out for wave in waves for out in self.encode([wave], layers)]
        lengths = [len(w) for w in waves]
        batch = torch.zeros(len(waves), max(lengths))
        mask = torch.zeros(len(waves), max(lengths), dtype=torch.long)
        for i, wave in enumerate(waves):
            batch[i, :lengths[i]] = self._prepare(wave)
            mask[i, :lengths[i]] = 1
        kwargs = {"attention_mask": mask.to(self.device)} if self.pad_safe else {}
        out = self.model(batch.to(self.device, self.dtype), output_hidden_states=True, **kwargs)
        hidden = (*out.hidden_states[:-1], out.last_hidden_state)
        selected = layers.select(hidden)
        return [selected[i, :self.num_frames(n)].float().cpu() for i, n in enumerate(lengths)]


def load_encoder(model: str, device: str | torch.device = "cpu", precision: str = "auto",
                 whisper_mode: str = "padded") -> AudioEncoder:
    """Load any supported checkpoint (short name, hub id or local directory) for extraction."""
    from transformers import AutoConfig

    name = resolve_bundled(model) or resolve_name(model)
    device = torch.device(device)
    dtype = pick_dtype(precision, device)
    if is_ctranslate2_dir(name):
        compute = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}[dtype]
        return CTranslate2WhisperFrames(name, device, whisper_mode, compute)
    try:
        config = AutoConfig.from_pretrained(name)
    except Exception as err:
        local = "" if os.path.isdir(name) else " (not a local directory, and the model hub could not provide it)"
        raise EncoderError(f"cannot load model config for {model!r}{local}: {err}") from None
    if config.model_type == "whisper":
        return WhisperEncoderFrames.from_pretrained(name, device, dtype, whisper_mode)
    if config.model_type in SSL_TYPES:
        return _load_ssl(name, device, dtype)
    raise EncoderError(f"{model!r}: model type {config.model_type!r} is not an audio encoder sercache knows "
                       f"(supported: {', '.join(SSL_TYPES)}, whisper)")


def _load_ssl(name: str, device: torch.device, dtype: torch.dtype) -> SSLEncoder:
    from transformers import AutoFeatureExtractor, AutoModel

    model = AutoModel.from_pretrained(name, dtype=dtype).to(device).eval()
    try:
        normalize = bool(AutoFeatureExtractor.from_pretrained(name).do_normalize)
    except Exception:  # checkpoints without preprocessor_config.json: transformers' defaults
        normalize = model.config.feat_extract_norm == "layer"
    return SSLEncoder(name, model, device, dtype, normalize)

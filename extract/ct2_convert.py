"""Read a CTranslate2 Whisper checkpoint and rebuild it as an openai-whisper one.

The only real Whisper weights installable offline are whisper-base in CTranslate2 format
(bundled.py). Rebuilding the same weights for openai-whisper gives a real-weights test of the
`whisper.load_model` path and a like-for-like speed comparison of the two backends. The
CTranslate2 binary layout (version 6: header, named variables with shape and dtype, aliases) is
the one `ctranslate2.specs.ModelSpec` writes; fused attention projections are split back.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import torch

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ctranslate2(path: str | Path) -> dict[str, np.ndarray]:
    data = Path(path).read_bytes()
    pos = 0

    def unpack(fmt: str):
        nonlocal pos
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        size = unpack("H")
        text = data[pos:pos + size - 1].decode()
        pos += size
        return text

    version = unpack("I")
    if version != 6:
        raise ValueError(f"{path}: CTranslate2 binary version {version}, this reader knows version 6")
    spec = string()
    if spec != "WhisperSpec":
        raise ValueError(f"{path}: a {spec}, not a Whisper model")
    unpack("I")  # spec revision
    variables = {}
    for _ in range(unpack("I")):
        name = string()
        shape = [unpack("I") for _ in range(unpack("B"))]
        dtype = _DTYPES[unpack("B")]
        size = unpack("I")
        variables[name] = np.frombuffer(data[pos:pos + size], dtype=dtype).reshape(shape)
        pos += size
    for _ in range(unpack("I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return variables


def _linear(state: dict, prefix: str, weight: np.ndarray, bias: np.ndarray | None) -> None:
    state[f"{prefix}.weight"] = torch.from_numpy(np.array(weight))
    if bias is not None:
        state[f"{prefix}.bias"] = torch.from_numpy(np.array(bias))


def _norm(state: dict, prefix: str, v: dict, source: str) -> None:
    _linear(state, prefix, v[f"{source}/gamma"], v[f"{source}/beta"])


def _attention(state: dict, prefix: str, v: dict, source: str, cross: bool) -> None:
    d = v[f"{source}/linear_0/weight"].shape[1]
    if cross:
        q_w, q_b = v[f"{source}/linear_0/weight"], v[f"{source}/linear_0/bias"]
        kv_w, kv_b = v[f"{source}/linear_1/weight"], v[f"{source}/linear_1/bias"]
        k_w, v_w, v_b = kv_w[:d], kv_w[d:], kv_b[d:]
        out = "linear_2"
    else:
        qkv_w, qkv_b = v[f"{source}/linear_0/weight"], v[f"{source}/linear_0/bias"]
        q_w, k_w, v_w = qkv_w[:d], qkv_w[d:2 * d], qkv_w[2 * d:]
        q_b, v_b = qkv_b[:d], qkv_b[2 * d:]
        out = "linear_1"
    _linear(state, f"{prefix}.query", q_w, q_b)
    _linear(state, f"{prefix}.key", k_w, None)  # Whisper's key projection has no bias
    _linear(state, f"{prefix}.value", v_w, v_b)
    _linear(state, f"{prefix}.out", v[f"{source}/{out}/weight"], v[f"{source}/{out}/bias"])


def _block(state: dict, prefix: str, v: dict, source: str, cross: bool) -> None:
    _attention(state, f"{prefix}.attn", v, f"{source}/self_attention", False)
    _norm(state, f"{prefix}.attn_ln", v, f"{source}/self_attention/layer_norm")
    if cross:
        _attention(state, f"{prefix}.cross_attn", v, f"{source}/attention", True)
        _norm(state, f"{prefix}.cross_attn_ln", v, f"{source}/attention/layer_norm")
    _linear(state, f"{prefix}.mlp.0", v[f"{source}/ffn/linear_0/weight"], v[f"{source}/ffn/linear_0/bias"])
    _linear(state, f"{prefix}.mlp.2", v[f"{source}/ffn/linear_1/weight"], v[f"{source}/ffn/linear_1/bias"])
    _norm(state, f"{prefix}.mlp_ln", v, f"{source}/ffn/layer_norm")


def ctranslate2_to_openai_whisper(model_dir: str | Path, checkpoint: str | Path) -> Path:
    """Write an openai-whisper checkpoint (`{"dims", "model_state_dict"}`) with the same weights."""
    v = read_ctranslate2(Path(model_dir) / "model.bin")
    count = lambda side: len({k.split("/")[1] for k in v if re.match(rf"{side}/layer_\d+/", k)})  # noqa: E731
    dims = {"n_mels": int(v["encoder/conv1/weight"].shape[1]),
            "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
            "n_audio_state": int(v["encoder/conv1/weight"].shape[0]), "n_audio_head": int(v["encoder/num_heads"]),
            "n_audio_layer": count("encoder"), "n_vocab": int(v["decoder/embeddings/weight"].shape[0]),
            "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
            "n_text_state": int(v["decoder/embeddings/weight"].shape[1]), "n_text_head": int(v["decoder/num_heads"]),
            "n_text_layer": count("decoder")}
    state: dict[str, torch.Tensor] = {}
    for name in ("conv1", "conv2"):
        _linear(state, f"encoder.{name}", v[f"encoder/{name}/weight"], v[f"encoder/{name}/bias"])
    state["encoder.positional_embedding"] = torch.from_numpy(np.array(v["encoder/position_encodings/encodings"]))
    for i in range(dims["n_audio_layer"]):
        _block(state, f"encoder.blocks.{i}", v, f"encoder/layer_{i}", cross=False)
    _norm(state, "encoder.ln_post", v, "encoder/layer_norm")
    state["decoder.token_embedding.weight"] = torch.from_numpy(np.array(v["decoder/embeddings/weight"]))
    state["decoder.positional_embedding"] = torch.from_numpy(np.array(v["decoder/position_encodings/encodings"]))
    for i in range(dims["n_text_layer"]):
        _block(state, f"decoder.blocks.{i}", v, f"decoder/layer_{i}", cross=True)
    _norm(state, "decoder.ln", v, "decoder/layer_norm")
    state = {k: t.float() for k, t in state.items()}
    checkpoint = Path(checkpoint)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    partial = checkpoint.with_suffix(".partial")
    torch.save({"dims": dims, "model_state_dict": state}, partial)
    partial.replace(checkpoint)
    return checkpoint


_HF_NAMES = [  # openai-whisper name fragment -> transformers name fragment, applied in order
    ("encoder.positional_embedding", "encoder.embed_positions.weight"),
    ("decoder.positional_embedding", "decoder.embed_positions.weight"),
    ("decoder.token_embedding", "decoder.embed_tokens"),
    ("encoder.ln_post", "encoder.layer_norm"), ("decoder.ln.", "decoder.layer_norm."),
    (".blocks.", ".layers."), (".cross_attn_ln.", ".encoder_attn_layer_norm."), (".cross_attn.", ".encoder_attn."),
    (".attn_ln.", ".self_attn_layer_norm."), (".attn.", ".self_attn."), (".mlp_ln.", ".final_layer_norm."),
    (".mlp.0.", ".fc1."), (".mlp.2.", ".fc2."), (".query.", ".q_proj."), (".key.", ".k_proj."),
    (".value.", ".v_proj."), (".out.", ".out_proj."),
]


def openai_whisper_to_transformers(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Save an openai-whisper checkpoint as a transformers WhisperModel directory (same weights)."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    dims, state = payload["dims"], payload["model_state_dict"]
    config = WhisperConfig(vocab_size=dims["n_vocab"], num_mel_bins=dims["n_mels"], d_model=dims["n_audio_state"],
                           encoder_layers=dims["n_audio_layer"], encoder_attention_heads=dims["n_audio_head"],
                           decoder_layers=dims["n_text_layer"], decoder_attention_heads=dims["n_text_head"],
                           encoder_ffn_dim=4 * dims["n_audio_state"], decoder_ffn_dim=4 * dims["n_text_state"],
                           max_source_positions=dims["n_audio_ctx"], max_target_positions=dims["n_text_ctx"])
    renamed = {}
    for name, tensor in state.items():
        for old, new in _HF_NAMES:
            name = name.replace(old, new)
        renamed[name] = tensor
    model = WhisperModel(config)
    missing, unexpected = model.load_state_dict(renamed, strict=False)
    if [m for m in missing if "embed_positions" not in m or "encoder" in m] or unexpected:
        raise ValueError(f"weights do not map onto WhisperModel: missing {missing}, unexpected {unexpected}")
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    WhisperFeatureExtractor(feature_size=dims["n_mels"]).save_pretrained(out_dir)
    return out_dir

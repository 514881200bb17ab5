"""Text branch: transcription (both backends), AEC training/correction/metrics, RoBERTa-style features."""

from __future__ import annotations

import csv
import random
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from sercache.cache import open_store
from sercache.cache.texts import TextSet, TextSetWriter
from sercache.extract import ExtractConfig, run_extraction
from sercache.extract.aec import AECError, AECTrainConfig, correct_text_set, evaluate_text_sets, train_aec
from sercache.extract.text_metrics import normalize, score
from sercache.extract.transcribe import TranscribeConfig, run_transcription

WORDS = ("i am going to see the doctor because my knee hurts we want to find a new place to live near "
         "the river she is going to call you tomorrow about the party they want to buy some bread and milk").split()
ERRORS = {"going to": "gonna", "want to": "wanna", "because": "cuz", "tomorrow": "tomorow"}


def byte_bpe_tokenizer(path: Path, texts: list[str], kind: str) -> Path:
    """A real byte-level BPE tokenizer trained offline on the given texts, saved like a hub checkpoint."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartTokenizerFast, RobertaTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(path))
    cls = RobertaTokenizerFast if kind == "roberta" else BartTokenizerFast
    cls(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt")).save_pretrained(path)
    return path


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    base = " ".join(WORDS).split(" the ")
    return [rng.choice(base).strip() + " " + rng.choice(base).strip() for _ in range(n)]


def corrupt(text: str) -> str:
    for right, wrong in ERRORS.items():
        text = text.replace(right, wrong)
    return text


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory) -> Path:
    from transformers import RobertaConfig, RobertaModel

    path = byte_bpe_tokenizer(tmp_path_factory.mktemp("roberta") / "tiny-roberta", sentences(200, 0), "roberta")
    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=400, hidden_size=32, num_hidden_layers=5, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=26, pad_token_id=1)
    RobertaModel(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_bart(tmp_path_factory) -> Path:
    from transformers import BartConfig, BartForConditionalGeneration

    texts = sentences(300, 1)
    path = byte_bpe_tokenizer(tmp_path_factory.mktemp("bart") / "tiny-bart", texts + [corrupt(t) for t in texts],
                              "bart")
    torch.manual_seed(0)
    cfg = BartConfig(vocab_size=400, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                     decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=64,
                     pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                     forced_bos_token_id=0, dropout=0.0)
    BartForConditionalGeneration(cfg).save_pretrained(path)
    return path


def text_store(root: Path, pairs: dict[str, tuple[str, str]], splits: dict[str, str]) -> Path:
    from sercache.cache import Store

    store = Store.create(root)
    asr, human = TextSetWriter(store, "asr/test"), TextSetWriter(store, "human")
    asr.ensure_metadata({"kind": "asr", "model": "test-asr", "source": None})
    human.ensure_metadata({"kind": "human", "model": None, "source": "test"})
    asr.commit([{"id": u, "text": h} for u, (h, _) in pairs.items()])
    human.commit([{"id": u, "text": r} for u, (_, r) in pairs.items()])
    with open(root / "labels_consensus.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["FileName", "EmoClass", "Split_Set"])
        writer.writerows([u, "N", s] for u, s in splits.items())
    return root


def test_metrics_on_fixed_strings():
    s = score(["a x c", "Hello, World!"], ["a b c d", "hello world"])
    assert s.wer == pytest.approx(100 * 2 / 6)  # one substitution, one deletion over 6 reference words
    assert normalize("It's  FINE, ok?") == "it's fine ok"
    perfect = score(["the cat sat on the mat"], ["The cat sat on the mat."])
    assert perfect.wer == 0 and perfect.bleu == pytest.approx(100) and perfect.gleu == pytest.approx(100)
    # GLEU = min(precision, recall) over all 1-4-grams: hyp "the cat" vs ref "the cat sat":
    # hyp n-grams 3, matches 3; ref n-grams 6 -> min(3/3, 3/6) = 0.5
    assert score(["the cat"], ["the cat sat"]).gleu == pytest.approx(50)
    with pytest.raises(ValueError, match="non-empty reference"):
        score(["x"], [""])


def test_empty_references_are_an_input_error(tmp_path):
    pairs = {"t.wav": ("hello there", "hello there"), "a.wav": ("good morning", ""), "b.wav": ("see you", " ?! ")}
    splits = {"t.wav": "Train", "a.wav": "Development", "b.wav": "Development"}
    root = text_store(tmp_path / "s", pairs, splits)
    with pytest.raises(AECError, match="every development text of 'human' is empty"):
        evaluate_text_sets(open_store(root), ["asr/test"], "human", {u: s.lower() for u, s in splits.items()})
    cfg = AECTrainConfig(store=str(root), source="asr/test", reference="human", model="not-loaded",
                         splits=str(root / "labels_consensus.csv"), out=str(tmp_path / "aec"))
    with pytest.raises(AECError, match="every development text of 'human' is empty"):
        train_aec(cfg)  # refused before the model is loaded


def test_text_set_round_trip_and_export(tmp_path):
    root = text_store(tmp_path / "s", {"u1": ("hi there", "hi there"), "u2": ("yes", "yes!")}, {"u1": "Train"})
    ts = TextSet(open_store(root), "asr/test")
    assert ts.kind == "asr" and ts.text("u2") == "yes"
    ts.export(tmp_path / "t.csv")
    rows = list(csv.DictReader(open(tmp_path / "t.csv")))
    assert [r["id"] for r in rows] == ["u1", "u2"] and rows[0]["text"] == "hi there"


def test_aec_training_learns_systematic_errors(tmp_path, tiny_bart):
    texts = sentences(240, 2)
    pairs = {f"u{i:03d}": (corrupt(t), t) for i, t in enumerate(texts)}
    splits = {u: ("Train" if i < 200 else "Development") for i, u in enumerate(pairs)}
    root = text_store(tmp_path / "s", pairs, splits)
    cfg = AECTrainConfig(store=str(root), source="asr/test", reference="human",
                         splits=str(root / "labels_consensus.csv"),
                         model=str(tiny_bart), out=str(tmp_path / "aec"), epochs=12, batch_size=16, lr=3e-3,
                         max_length=40, beam_size=1, synthetic=0, device="cpu", progress=False)
    result = train_aec(cfg)
    losses = [e["train_loss"] for e in result["epochs"]]
    assert losses[-1] < 0.5 * losses[0]
    first_wer = result["epochs"][0]["WER"]
    assert result["dev_corrected"]["WER"] < first_wer
    assert result["dev_corrected"]["WER"] < result["dev_original"]["WER"]  # corrections beat the raw hypotheses
    name = correct_text_set(open_store(root), "asr/test", str(tmp_path / "aec/best"), batch_size=32, beam_size=1,
                            max_length=40, device="cpu", progress=False)
    corrected = TextSet(open_store(root), name)
    assert corrected.kind == "corrected" and corrected.meta["source"] == "asr/test"
    assert len(TextSet(open_store(root), "asr/test")) == 240  # the raw transcripts are kept
    import shutil as _shutil

    retrained = tmp_path / "retrained"
    _shutil.copytree(tmp_path / "aec/best", retrained)
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(retrained)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    model.save_pretrained(tmp_path / "aec/best")  # same path, other weights
    with pytest.raises(Exception, match="aec_weights_sha256"):
        correct_text_set(open_store(root), "asr/test", str(tmp_path / "aec/best"), name=name, device="cpu",
                         progress=False)
    scores = evaluate_text_sets(open_store(root), ["asr/test", name], "human",
                                {u: s.lower() for u, s in splits.items()})
    assert scores[name].wer < scores["asr/test"].wer


def test_text_features_equal_direct_forward_with_windowing(tmp_path, tiny_roberta):
    from transformers import AutoModel, AutoTokenizer

    long_text = " ".join(sentences(6, 3))
    texts = {"a.wav": "i am going to see the doctor", "b.wav": "", "c.wav": long_text}
    root = text_store(tmp_path / "s", {u: (t, t) for u, t in texts.items()}, {})
    cfg = ExtractConfig(store=str(root), model=str(tiny_roberta), text="asr/test", device="cpu", progress=False)
    summary = run_extraction(cfg)
    assert summary.extracted == 3 and summary.windowed == 1
    name = "tiny-roberta/asr/test/mean(L-4..-1)"
    fs = open_store(root)[name]
    tokenizer = AutoTokenizer.from_pretrained(tiny_roberta)
    model = AutoModel.from_pretrained(tiny_roberta).eval()
    for uid, text in texts.items():
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert fs.lengths([uid])[0] == len(ids) + 2
        assert fs.token_ids(uid)[1:-1].tolist() == ids
    ids = tokenizer(texts["a.wav"], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**ids, output_hidden_states=True).hidden_states
    direct = torch.stack(hidden[-4:]).mean(0)[0].numpy()
    np.testing.assert_allclose(fs.get("a.wav").astype(np.float32), direct, atol=2e-3, rtol=2e-3)
    assert fs.meta["text_source"]["kind"] == "asr" and fs.meta["kind"] == "text"
    assert run_extraction(cfg).extracted == 0
    TextSetWriter(open_store(root), "asr/test").commit([{"id": "a.wav", "text": "we want to live near the river"}])
    assert run_extraction(cfg).extracted == 1


def _tiny_openai_whisper(path: Path) -> Path:
    import whisper
    from whisper.model import ModelDimensions

    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2, n_audio_layer=1,
                           n_vocab=51865, n_text_ctx=16, n_text_state=32, n_text_head=2, n_text_layer=1)
    torch.manual_seed(0)
    model = whisper.model.Whisper(dims)
    with torch.no_grad():  # openai-whisper leaves this torch.empty (real checkpoints overwrite it)
        model.decoder.positional_embedding.normal_(0, 0.02)
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


def test_openai_whisper_backend_stores_and_resumes(tmp_path):
    from conftest import write_audio

    for i in range(4):
        write_audio(tmp_path / "audio" / f"u{i}.wav", 1.0 + i * 0.5, seed=i)
    checkpoint = _tiny_openai_whisper(tmp_path / "tiny-whisper.pt")
    first = tmp_path / "first.csv"
    first.write_text("id,path\n" + "".join(f"u{i}.wav,audio/u{i}.wav\n" for i in range(2)))
    cfg = TranscribeConfig(input=str(first), store=str(tmp_path / "store"), model=str(checkpoint),
                           backend="openai-whisper", beam_size=1, device="cpu", progress=False)
    assert run_transcription(cfg).transcribed == 2
    cfg.input = str(tmp_path / "audio")
    again = run_transcription(cfg)
    assert (again.transcribed, again.already_done) == (2, 2)
    ts = TextSet(open_store(tmp_path / "store"), "asr/tiny-whisper")
    assert sorted(ts.records) == ["u0.wav", "u1.wav", "u2.wav", "u3.wav"]
    records = list(ts.records.values())
    assert all(isinstance(r["avg_logprob"], float) and 0 <= r["no_speech_prob"] <= 1 for r in records), records
    assert ts.meta["backend"] == "openai-whisper"
    assert run_transcription(cfg).transcribed == 0


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (bin/setup-env)")
@pytest.mark.parametrize("mode", ["padded", "trimmed"])
def test_real_whisper_base_transcribes_synthesized_speech(tmp_path, mode):
    import soundfile as sf

    spoken = {"s0.wav": "please close the door behind you", "s1.wav": "i am so happy to see you again",
              "s2.wav": "the train to the city leaves from platform four", "s3.wav": "turn left at the next corner"}
    (tmp_path / "audio").mkdir()
    for name, text in spoken.items():
        subprocess.run(["espeak-ng", "-w", str(tmp_path / "audio" / name), text], check=True)
    sf.write(tmp_path / "audio" / "silent.wav", np.zeros(16000, np.float32), 16000)
    cfg = TranscribeConfig(input=str(tmp_path / "audio"), store=str(tmp_path / "store"), model="whisper-base-ct2",
                           device="cpu", whisper_mode=mode, progress=False)
    summary = run_transcription(cfg)
    assert summary.transcribed == 4 and summary.empty == 1
    ts = TextSet(open_store(tmp_path / "store"), "asr/whisper-base-ct2")
    assert ts.text("silent.wav") == ""
    assert ts.meta["decoding"]["whisper_mode"] == mode and ts.meta["decoding"]["trim_margin"] == 3.0
    records = [ts.records[u] for u in spoken]
    assert all(r["avg_logprob"] < 0 and 0 <= r["no_speech_prob"] < 0.5 and r["n_tokens"] > 3 for r in records)
    result = score([ts.text(u) for u in spoken], list(spoken.values()))
    assert result.wer < 35, [ts.text(u) for u in spoken]


def test_trimmed_transcription_needs_faster_whisper():
    from sercache.extract.transcribe import load_backend

    cfg = TranscribeConfig(input="", store="", model="tiny", backend="openai-whisper", whisper_mode="trimmed")
    with pytest.raises(ValueError, match="trimmed needs --backend faster-whisper"):
        load_backend(cfg)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (bin/setup-env)")
def test_converted_real_weights_agree_across_backends(tmp_path):
    """whisper-base rebuilt for openai-whisper from the CTranslate2 weights transcribes like faster-whisper."""
    spoken = {"s0.wav": "please close the door behind you", "s1.wav": "the train to the city leaves from platform four"}
    (tmp_path / "audio").mkdir()
    for name, text in spoken.items():
        subprocess.run(["espeak-ng", "-w", str(tmp_path / "audio" / name), text], check=True)
    texts = {}
    for backend, model in [("faster-whisper", "whisper-base-ct2"), ("openai-whisper", "whisper-base-openai")]:
        cfg = TranscribeConfig(input=str(tmp_path / "audio"), store=str(tmp_path / "store"), model=model,
                               backend=backend, device="cpu", progress=False)
        run_transcription(cfg)
        ts = TextSet(open_store(tmp_path / "store"), f"asr/{model}")
        texts[backend] = [ts.text(u) for u in spoken]
    for backend, hyps in texts.items():
        assert score(hyps, list(spoken.values())).wer < 25, (backend, hyps)

"""Issue 21, item 2: ASR errors measured on the train pairs (jiwer alignments) and simulated on clean text for
pre-training the corrector; train-aec pre-trains on them before the real pairs."""

from __future__ import annotations

import json
import random

import jiwer
import pytest

from sercache.extract.aec_synthetic import SMOOTHING, Corrupter, error_profile, synthetic_pairs
from sercache.extract.text_metrics import normalize


def test_profile_counts_each_kind_of_error():
    refs = ["I will call you tomorrow.", "the cat sat on the mat", "hello world", "see you soon"]
    hyps = ["I will call you tomorow", "the cat sad on mat", "hello hello world", "see you very soon"]
    profile = error_profile(hyps, refs)
    truth = jiwer.process_words([normalize(r) for r in refs], [normalize(h) for h in hyps])
    assert profile.reference_words == 16
    assert profile.substitution_rate == truth.substitutions / 16 == 2 / 16
    assert profile.deletion_rate == truth.deletions / 16 == 1 / 16
    assert profile.insertion_rate == truth.insertions / 16 == 2 / 16
    assert profile.substituted == {"tomorrow": {"tomorow": 1}, "sat": {"sad": 1}}
    assert profile.deleted == {"the": 1} and profile.seen["the"] == 2
    assert profile.repeat_share == 0.5 and profile.inserted == {"very": 1}  # "hello hello" repeats, "very" does not
    sub, dele = profile.rates("tomorrow")
    assert sub == pytest.approx((1 + SMOOTHING * 2 / 16) / (1 + SMOOTHING))
    assert profile.rates("never-seen") == (2 / 16, 1 / 16)
    assert profile.summary()["top_substitutions"][0][2] == 1
    with pytest.raises(ValueError, match="non-empty reference"):
        error_profile(["a"], ["..."])


def _words(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("bcdfghklmnprst") + rng.choice("aeiou") for _ in range(3)) for _ in range(n)]


def _recognised(sentences: list[str], rng: random.Random) -> list[str]:
    """A recogniser with known habits: 'today' -> 'to day' is never made, 'there' -> 'their' always, every
    other word lost at 4 %, mistaken at 6 %, and a repeat of the word before at 3 %."""
    out = []
    for s in sentences:
        words = []
        for w in s.split():
            if rng.random() < 0.03 and words:
                words.append(words[-1])
            roll = rng.random()
            if w == "there":
                words.append("their")
            elif roll < 0.04:
                continue
            else:
                words.append(w[::-1] if roll < 0.10 else w)
        out.append(" ".join(words))
    return out


def test_simulated_errors_reproduce_the_measured_statistics():
    """Errors measured on real-like pairs, simulated on the same clean text and measured again: the rates come
    back within 15 % (repeats' share within 0.15), and the recogniser's systematic habit nearly always."""
    rng, vocab = random.Random(0), _words(400, 0) + ["there"] * 40
    clean = [" ".join(rng.choice(vocab) for _ in range(10)) for _ in range(600)]
    measured = error_profile(_recognised(clean, rng), clean)
    pairs = synthetic_pairs(clean, measured, 3, 10_000, vocab, seed=1)
    again = error_profile([s for s, _ in pairs], [c for _, c in pairs])
    for rate in ("substitution_rate", "deletion_rate", "insertion_rate"):
        assert getattr(again, rate) == pytest.approx(getattr(measured, rate), rel=0.15), rate
    assert again.repeat_share == pytest.approx(measured.repeat_share, abs=0.15)  # ambiguous alignments blur it
    assert again.substituted["there"].get("their", 0) > 0.95 * sum(again.substituted["there"].values())
    assert again.substituted["there"]["their"] > 0.85 * again.seen["there"]  # the global rate is 0.15


def test_unseen_words_become_lookalikes_or_misspellings():
    profile = error_profile(["a b c"], ["a b d"])
    corrupter = Corrupter(profile, ["tomorow", "table", "because"], seed=0)
    assert corrupter._substitute("tomorrow") == "tomorow"  # the vocabulary's look-alike
    for _ in range(20):
        edited = corrupter._substitute("xylophone")  # nothing like it: one letter dropped, doubled or changed
        assert edited != "xylophone" and jiwer.cer("xylophone", edited) <= 1 / 9 + 1e-9


def test_pairs_per_sentence_and_cap():
    clean = [f"sentence number {i}" for i in range(10)] + ["  "]
    profile = error_profile(["a b c"], ["a b c"])  # no errors at all: the pairs are copies
    pairs = synthetic_pairs(clean, profile, 3, 1000, [], seed=0)
    assert len(pairs) == 30 and all(s == c for s, c in pairs)
    assert sorted(c for _, c in pairs) == sorted(c for c in clean if c.strip() for _ in range(3))
    capped = synthetic_pairs(clean, profile, 3, 7, [], seed=0)
    assert len(capped) == 7 and capped == synthetic_pairs(clean, profile, 3, 7, [], seed=0)


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    from test_text_branch import text_store

    root = tmp_path_factory.mktemp("aec-synthetic")
    rng = random.Random(0)
    words = _words(60, 1)
    refs = [" ".join(rng.choice(words) for _ in range(6)) for _ in range(40)]
    hyps = _recognised(refs, rng)
    pairs = {f"u{i:02d}": (h, r) for i, (h, r) in enumerate(zip(hyps, refs))}
    splits = {u: ("Train" if i < 30 else "Development") for i, u in enumerate(pairs)}
    return root, text_store(root / "store", pairs, splits), pairs


def _config(root, store, **kw):
    from sercache.extract.aec import AECTrainConfig
    from sercache.testing.small_seq2seq import build_small_seq2seq

    init = root / "bart"
    if not init.exists():
        build_small_seq2seq(init, _texts(store), 0)
    return AECTrainConfig(store=str(store), source="asr/test", reference="human", model=str(init),
                          splits=str(store / "labels_consensus.csv"), epochs=1, batch_size=8, max_length=24,
                          beam_size=1, device="cpu", threads=1, progress=False, **kw)


def _texts(store) -> list[str]:
    from sercache.cache import open_store
    from sercache.cache.texts import TextSet

    texts = [TextSet(open_store(store), name) for name in ("asr/test", "human")]
    return [t.text(u) for t in texts for u in t.records]


def test_train_aec_pretrains_on_synthetic_pairs_first(tiny_store):
    from sercache.extract.aec import train_aec

    root, store, pairs = tiny_store
    extra = root / "more.txt"
    extra.write_text("a clean sentence of my own\n\nand another one\n")
    result = train_aec(_config(root, store, out=str(root / "run"), synthetic=4, pretrain_text=[str(extra)]))
    assert result["synthetic_pairs"] == 4 * (30 + 2)
    assert [(e["epoch"], e["stage"]) for e in result["epochs"]] == [(0, "pretrain"), (1, "train")]
    train = [pairs[f"u{i:02d}"] for i in range(30)]
    recorded = json.loads((root / "run" / "error_profile.json").read_text())
    assert recorded == error_profile([h for h, _ in train], [r for _, r in train]).to_json()
    capped = train_aec(_config(root, store, out=str(root / "capped"), synthetic=4, synthetic_cap=50))
    assert capped["synthetic_pairs"] == 50


def test_pretrain_text_is_checked_before_training(tiny_store, capsys):
    from sercache.cli import main

    root, store, _ = tiny_store
    argv = ["train-aec", "--store", str(store), "--source", "asr/test", "--reference", "human", "--splits",
            str(store / "labels_consensus.csv"), "--out", str(root / "bad"), "--device", "cpu", "--no-progress"]
    assert main(argv + ["--pretrain-text", str(root / "missing.txt"), "--synthetic", "5"]) == 2
    assert "missing.txt" in capsys.readouterr().err
    (root / "empty.txt").write_text("\n \n")
    assert main(argv + ["--pretrain-text", str(root / "empty.txt"), "--synthetic", "5"]) == 2
    assert "no sentence" in capsys.readouterr().err
    assert main(argv + ["--pretrain-text", str(root / "empty.txt"), "--synthetic", "0"]) == 2
    assert "needs --synthetic" in capsys.readouterr().err

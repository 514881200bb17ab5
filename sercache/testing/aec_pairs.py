"""(ASR, reference) pairs over an open vocabulary for tests and benchmarks of the AEC stage: the simulated
recogniser's errors are systematic, and nearly every development sentence holds words no training sentence has."""

from __future__ import annotations

import random
import re
from pathlib import Path

from sercache.extract.bundled import resolve_bundled

SUBJECTS = ["i", "we", "they", "she", "he", "you", "my brother", "our team", "the doctor", "my friend"]
MODALS = ["am going to", "want to", "will", "need to", "are going to", "want to"]
VERBS = ["see", "call", "visit", "paint", "clean", "sell", "buy", "cook", "read", "move", "fix", "find", "watch",
         "write", "open", "build", "see", "buy"]
TIMES = ["tomorrow", "today", "tonight", "on monday", "next week", "tomorrow", "this morning", "later",
         "because it rains", "because we can"]


def open_words() -> list[str]:
    """Thousands of real English words (from the bundled BERT's vocabulary: no word list ships offline)."""
    vocab = (Path(resolve_bundled("all-minilm-l6-v2")) / "vocab.txt").read_text().split()
    return [w for w in vocab if re.fullmatch("[a-z]{4,9}", w)][:6000]


def sentences(n: int, seed: int) -> list[str]:
    """Short sentences around two content words drawn from an open vocabulary: nearly every development sentence
    holds words no training sentence has, as on real speech, so a corrector must copy words it has not seen
    rather than memorise a closed vocabulary (which even a small model trained from scratch does)."""
    rng, words = random.Random(seed), open_words()
    return [" ".join([rng.choice(SUBJECTS), rng.choice(MODALS), rng.choice(VERBS), "the", rng.choice(words),
                      rng.choice(words), rng.choice(TIMES)]) for _ in range(n)]


# What the simulated ASR gets wrong, always the same way (contractions, misspellings, homophones): learnable from
# the context, and never a correction to make elsewhere (a reference never holds the wrong form after a modal).
ERRORS = {"going to": "gonna", "want to": "wanna", "tomorrow": "tomorow", "because": "cuz", "buy": "by",
          "see": "sea", "write": "right"}


def corrupt(text: str) -> str:
    for right, wrong in ERRORS.items():
        text = re.sub(rf"\b{right}\b", wrong, text)
    return text



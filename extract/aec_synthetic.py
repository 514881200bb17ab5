"""Synthetic ASR errors for pre-training the corrector: paper 000's first stage, without its corpora.

The paper pre-trains its corrector on ASR/human pairs of Common Voice and TED before fine-tuning on
MSP-Podcast's; neither is reachable offline, and a corrector fine-tuned on a few thousand real pairs sees each
kind of error only a few times. So the errors are simulated from the real pairs themselves: the train pairs are
aligned word by word (jiwer), which gives how often each word is substituted or deleted and what it becomes,
and how often, how many and which words the recogniser inserts (repeating what it just wrote, as
Whisper's hallucinated repeats do, or not); clean text (the train references, plus any text a user gives) is then
corrupted with those statistics into many more pairs than there are real ones.

A word's own rates are its counts smoothed towards the corpus-wide rate (`SMOOTHING` pseudo-counts), so a word
the recogniser always gets wrong is corrupted almost always, and a word never seen at the global rate. A word
without substitutions of its own becomes a similar-looking word of the vocabulary (difflib), else a one-letter
edit: both stand for the acoustically close confusions that the table has not seen.
"""

from __future__ import annotations

import difflib
import random
from collections import Counter
from dataclasses import asdict, dataclass

from .text_metrics import normalize

SMOOTHING = 5.0  # pseudo-counts of the corpus-wide rate in each word's own substitution and deletion rates
VOWELS = "aeiou"


@dataclass
class ErrorProfile:
    """Word-level error statistics of (hypothesis, reference) pairs; rates are per reference word."""

    reference_words: int
    substitution_rate: float
    deletion_rate: float
    insertion_rate: float  # insertion runs per reference word
    seen: dict[str, int]  # reference word -> times aligned
    deleted: dict[str, int]  # reference word -> times deleted
    substituted: dict[str, dict[str, int]]  # reference word -> {hypothesis word: times}
    inserted: dict[str, int]  # hypothesis word -> times inserted, outside repeats
    run_lengths: dict[str, int]  # insertion run length (as text, a JSON key) -> runs
    repeat_share: float  # of insertion runs, those repeating the hypothesis words beside them

    def rates(self, word: str) -> tuple[float, float]:
        """(substitution, deletion) probability of one reference word."""
        seen = self.seen.get(word, 0) + SMOOTHING
        substituted = sum(self.substituted.get(word, {}).values())
        return ((substituted + SMOOTHING * self.substitution_rate) / seen,
                (self.deleted.get(word, 0) + SMOOTHING * self.deletion_rate) / seen)

    def summary(self, top: int = 20) -> dict:
        """The rates and the most frequent substitutions, for metrics.json and the console."""
        pairs = Counter({(r, h): n for r, hs in self.substituted.items() for h, n in hs.items()})
        return {"reference_words": self.reference_words, "substitution_rate": round(self.substitution_rate, 4),
                "deletion_rate": round(self.deletion_rate, 4), "insertion_rate": round(self.insertion_rate, 4),
                "repeat_share": round(self.repeat_share, 4),
                "top_substitutions": [[r, h, n] for (r, h), n in pairs.most_common(top)]}

    def to_json(self) -> dict:
        return asdict(self)


def error_profile(hypotheses: list[str], references: list[str]) -> ErrorProfile:
    """Align each pair (normalised as WER is: lower case, no punctuation) and count what happened to each word.
    Pairs with an empty reference are left out, as they are from WER; at least one must remain."""
    import jiwer

    pairs = [(normalize(h), normalize(r)) for h, r in zip(hypotheses, references, strict=True)]
    pairs = [(h, r) for h, r in pairs if r]
    if not pairs:
        raise ValueError("no pair with a non-empty reference to learn ASR errors from")
    out = jiwer.process_words([r for _, r in pairs], [h for h, _ in pairs])
    seen, deleted, inserted, runs = Counter(), Counter(), Counter(), Counter()
    substituted: dict[str, Counter] = {}
    repeats = 0
    for ref, hyp, chunks in zip(out.references, out.hypotheses, out.alignments):
        seen.update(ref)
        for c in chunks:
            if c.type == "delete":
                deleted.update(ref[c.ref_start_idx:c.ref_end_idx])
            elif c.type == "substitute":
                for r, h in zip(ref[c.ref_start_idx:c.ref_end_idx], hyp[c.hyp_start_idx:c.hyp_end_idx]):
                    substituted.setdefault(r, Counter())[h] += 1
            elif c.type == "insert":
                words = hyp[c.hyp_start_idx:c.hyp_end_idx]
                runs[str(len(words))] += 1
                start, end = c.hyp_start_idx, c.hyp_end_idx  # "a a b" may align the repeat first or second
                if words in (hyp[max(start - len(words), 0):start], hyp[end:end + len(words)]):
                    repeats += 1
                else:
                    inserted.update(words)
    total = sum(seen.values())
    return ErrorProfile(
        reference_words=total, substitution_rate=out.substitutions / total, deletion_rate=out.deletions / total,
        insertion_rate=sum(runs.values()) / total, seen=dict(seen), deleted=dict(deleted),
        substituted={r: dict(hs) for r, hs in substituted.items()}, inserted=dict(inserted), run_lengths=dict(runs),
        repeat_share=repeats / max(sum(runs.values()), 1))


class Corrupter:
    """Draws ASR-like hypotheses of clean sentences from an ErrorProfile; `vocabulary` supplies look-alike
    substitutes for words the profile never saw substituted."""

    def __init__(self, profile: ErrorProfile, vocabulary: list[str], seed: int = 0):
        self.profile = profile
        self.vocabulary = sorted(set(vocabulary))
        self.rng = random.Random(seed)
        self._lookalikes: dict[str, list[str]] = {}
        self._substitutes = {word: _weighted(table) for word, table in profile.substituted.items()}
        self._inserted = _weighted(profile.inserted)
        self._run_lengths = _weighted({int(k): n for k, n in profile.run_lengths.items()})

    def corrupt(self, text: str) -> str:
        """The sentence with errors drawn word by word: the word deleted, substituted or kept at its own rates,
        then an insertion run at the profile's rate. Kept words keep their case and punctuation; written ones
        are lower case, as the alignment saw them."""
        out: list[str] = []
        for token in text.split():
            word = normalize(token)
            substitution, deletion = self.profile.rates(word)
            roll = self.rng.random()
            if not word or roll >= deletion:
                out.append(self._substitute(word) if word and roll < deletion + substitution else token)
            if self.rng.random() < self.profile.insertion_rate:
                out += self._insertion(out)
        return " ".join(out)

    def _insertion(self, before: list[str]) -> list[str]:
        """A run of inserted words: a repeat of the words just written (at the profile's share), else words the
        recogniser inserted."""
        length = _draw(self._run_lengths, self.rng) if self._run_lengths[0] else 1
        if self.rng.random() < self.profile.repeat_share:
            return [normalize(t) for t in before[-length:]]
        if not self._inserted[0]:
            return []
        return [_draw(self._inserted, self.rng) for _ in range(length)]

    def _substitute(self, word: str) -> str:
        table = self._substitutes.get(word)
        if table:
            return _draw(table, self.rng)
        if word not in self._lookalikes:
            self._lookalikes[word] = [w for w in difflib.get_close_matches(word, self.vocabulary, n=6, cutoff=0.75)
                                      if w != word]
        return self.rng.choice(self._lookalikes[word]) if self._lookalikes[word] else self._edit(word)

    def _edit(self, word: str) -> str:
        """One letter dropped, doubled or changed for another vowel: a misspelling as ASR writes new words."""
        i = self.rng.randrange(len(word))
        kind = self.rng.choice(("drop", "double", "vowel")) if len(word) > 2 else "double"
        if kind == "drop":
            return word[:i] + word[i + 1:]
        if kind == "double" or word[i] not in VOWELS:
            return word[:i + 1] + word[i:]
        return word[:i] + self.rng.choice(VOWELS.replace(word[i], "")) + word[i + 1:]


def _weighted(counts: dict) -> tuple[list, list[int]]:
    keys = sorted(counts, key=str)
    return keys, [counts[k] for k in keys]


def _draw(weighted: tuple[list, list[int]], rng: random.Random):
    keys, weights = weighted
    return rng.choices(keys, weights=weights)[0]


def synthetic_pairs(clean: list[str], profile: ErrorProfile, per_sentence: int, cap: int,
                    vocabulary: list[str], seed: int = 0) -> list[tuple[str, str]]:
    """(corrupted, clean) pairs: each clean sentence `per_sentence` times, at most `cap` pairs in all (a seeded
    draw of the sentences when the cap binds), shuffled."""
    rng = random.Random(seed)
    order = [i for i, text in enumerate(clean) if text.strip() for _ in range(per_sentence)]
    rng.shuffle(order)
    corrupter = Corrupter(profile, vocabulary, seed)
    return [(corrupter.corrupt(clean[i]), clean[i]) for i in order[:cap]]

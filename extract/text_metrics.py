"""Transcript quality: WER (jiwer), BLEU (sacrebleu, corpus, 13a tokenisation) and GLEU (NLTK's
corpus_gleu: the Google-BLEU of Wu et al. 2016, min of n-gram precision and recall, n = 1..4).

All three are computed on normalised text: lower case, punctuation other than apostrophes
removed, whitespace collapsed. Pairs whose reference is empty are left out (WER is undefined
there) and counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PUNCT = re.compile(r"[^\w\s']")


def normalize(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


@dataclass
class TextScores:
    wer: float  # percent
    bleu: float  # 0-100
    gleu: float  # 0-100
    pairs: int
    skipped_empty_reference: int

    def row(self) -> dict[str, float]:
        return {"WER": round(self.wer, 2), "BLEU": round(self.bleu, 2), "GLEU": round(self.gleu, 2)}


def score(hypotheses: list[str], references: list[str]) -> TextScores:
    """Scores over the pairs with a non-empty reference. Lists of different lengths, or no non-empty
    reference, are the caller's mistake (ValueError); the AEC commands refuse user text sets whose
    references are all empty beforehand, with an AECError (aec.check_references)."""
    import jiwer
    import sacrebleu
    from nltk.translate.gleu_score import corpus_gleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    pairs = [(normalize(h), normalize(r)) for h, r in zip(hypotheses, references)]
    kept = [(h, r) for h, r in pairs if r]
    if not kept:
        raise ValueError("no pair with a non-empty reference to score")
    hyps, refs = [h for h, _ in kept], [r for _, r in kept]
    return TextScores(
        wer=100 * jiwer.wer(refs, hyps),
        bleu=sacrebleu.corpus_bleu(hyps, [refs]).score,
        gleu=100 * corpus_gleu([[r.split()] for r in refs], [h.split() for h in hyps]),
        pairs=len(kept),
        skipped_empty_reference=len(pairs) - len(kept),
    )

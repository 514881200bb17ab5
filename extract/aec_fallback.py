"""Never worse than the raw ASR text: a per-utterance fallback and a dev-WER check of the whole model.

Per utterance, the corrector's confidence is the mean log-probability of the tokens it wrote (teacher-forced
on its own output: one forward pass, the same for greedy and beam search). Below a threshold the ASR
hypothesis is kept. `train-aec` chooses the threshold that minimises Development WER and records it, with
the dev WERs, in `sercache-aec.json` beside the weights; `correct-transcripts` and `predict` apply it through
the one function `correct_texts`, and the corrected text set records it (part of the set's identity).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from sercache.errors import SercacheError

from .text_metrics import normalize

RECORD_FILE = "sercache-aec.json"
SCORE_NAME = "mean token log-probability of the correction"


@dataclass
class Correction:
    text: str  # what the text set keeps: the correction, or the ASR text when the fallback fired
    aec_text: str  # the corrector's own output
    logprob: float  # its mean token log-probability
    fell_back: bool


@torch.inference_mode()
def generate_scored(model, tokenizer, texts: list[str], batch_size: int = 32, beam_size: int = 4,
                    max_length: int = 128, progress: bool = False) -> tuple[list[str], list[float]]:
    """Batched beam-search rewriting, longest first (less padding), with each output's mean token
    log-probability; both returned in input order."""
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out, scores = [""] * len(texts), [0.0] * len(texts)
    for start in tqdm(range(0, len(order), batch_size), desc="correcting", unit="batch", disable=not progress):
        index = order[start:start + batch_size]
        enc = tokenizer([texts[i] for i in index], return_tensors="pt", padding=True, truncation=True,
                        max_length=max_length, return_token_type_ids=False).to(model.device)
        ids = model.generate(**enc, num_beams=beam_size, max_length=max_length, do_sample=False)
        logprobs = mean_logprobs(model, enc, ids, model.generation_config.pad_token_id)
        for i, text, lp in zip(index, tokenizer.batch_decode(ids, skip_special_tokens=True), logprobs):
            out[i], scores[i] = text.strip(), lp
    return out, scores


def mean_logprobs(model, enc, ids: torch.Tensor, pad_id: int | None) -> list[float]:
    """Mean log-probability per written token (the decoder start token excluded, padding after the end left
    out), from the model's raw distribution: the logits processors of generation play no part."""
    decoder_in, target = ids[:, :-1], ids[:, 1:]
    if target.shape[1] == 0:
        return [0.0] * len(ids)
    logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                   decoder_input_ids=decoder_in).logits
    token = torch.log_softmax(logits.float(), -1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    mask = (target != pad_id) if pad_id is not None else torch.ones_like(target, dtype=torch.bool)
    return ((token * mask).sum(1) / mask.sum(1).clamp(min=1)).tolist()


def correct_texts(model, tokenizer, texts: list[str], threshold: float | None, batch_size: int = 32,
                  beam_size: int = 4, max_length: int = 128, progress: bool = False) -> list[Correction]:
    """The corrections of `texts`, each falling back to its ASR text when the corrector's confidence is below
    `threshold` (None: never). The one place the fallback is decided: correct-transcripts and predict both
    call it, so a head sees the same text at training and at prediction time."""
    corrected, scores = generate_scored(model, tokenizer, texts, batch_size, beam_size, max_length, progress)
    out = []
    for source, aec, lp in zip(texts, corrected, scores):
        back = keeps_source(lp, threshold)
        out.append(Correction(source if back else aec, aec, lp, back))
    return out


def keeps_source(logprob: float, threshold: float | None) -> bool:
    """True when the ASR text is kept: the corrector's confidence is below the threshold."""
    return threshold is not None and logprob < threshold


def word_errors(hypothesis: str, reference: str) -> int:
    """Word-level edit distance on normalised text: summed over utterances and divided by the reference
    words it is the corpus WER that `text_metrics.score` (jiwer) reports."""
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.distance(normalize(hypothesis).split(), normalize(reference).split())


def tune_threshold(sources: list[str], corrected: list[str], scores: list[float], references: list[str]
                   ) -> dict[str, Any]:
    """The threshold with the lowest dev WER when utterances scoring below it keep their ASR text.

    Candidates lie between consecutive distinct dev scores, plus one below all (never fall back) and one above
    all (always fall back: the dev WER is then the raw text's, so the tuned one is never above it); the
    lowest of equally good thresholds wins (the most corrections kept). Empty references are left out, as
    WER leaves them out."""
    rows = sorted((s, word_errors(h, r), word_errors(c, r), len(normalize(r).split()))
                  for h, c, s, r in zip(sources, corrected, scores, references) if normalize(r))
    words = sum(r[3] for r in rows)
    raw_before, kept_after = 0, sum(r[2] for r in rows)
    best = (kept_after, 0)  # (errors, number of utterances falling back)
    for m in range(1, len(rows) + 1):
        raw_before += rows[m - 1][1]
        kept_after -= rows[m - 1][2]
        if (m == len(rows) or rows[m][0] > rows[m - 1][0]) and raw_before + kept_after < best[0]:
            best = (raw_before + kept_after, m)
    errors, m = best
    return {"threshold": _cut(rows, m), "score": SCORE_NAME, "dev_wer": round(100 * errors / max(words, 1), 2),
            "dev_fallbacks": m, "dev_pairs": len(rows)}


def _cut(rows: list[tuple], m: int) -> float:
    """A threshold that sends exactly the m lowest-scoring dev utterances back to their ASR text."""
    if m == 0:
        return rows[0][0] - 1.0 if rows else -1e9
    if m == len(rows):
        return max(rows[-1][0], 0.0) + 1.0  # above any log-probability: always the ASR text
    return (rows[m - 1][0] + rows[m][0]) / 2


# ---------------------------------------------------------------------------------- what train-aec records
def write_record(model_dir: Path, record: dict[str, Any]) -> None:
    (model_dir / RECORD_FILE).write_text(json.dumps(record, indent=2))


def read_record(model_path: str) -> dict[str, Any] | None:
    """What train-aec recorded about the model at `model_path`: its `sercache-aec.json`, or for a model trained
    before that file existed, the dev WERs of `metrics.json` in the directory above `best/`."""
    folder = Path(model_path)
    if (folder / RECORD_FILE).is_file():
        return json.loads((folder / RECORD_FILE).read_text())
    metrics = folder.parent / "metrics.json"
    if folder.name == "best" and metrics.is_file():
        m = json.loads(metrics.read_text())
        return {"dev_wer_original": m["dev_original"]["WER"], "dev_wer_corrected": m["dev_corrected"]["WER"],
                "fallback": None}
    return None


def recorded_threshold(model_path: str) -> float | None:
    record = read_record(model_path) or {}
    return (record.get("fallback") or {}).get("threshold")


def fallback_meta(threshold: float | None) -> dict[str, Any] | None:
    """The corrected text set's record of its fallback (part of its identity); None: no fallback."""
    return None if threshold is None else {"threshold": threshold, "score": SCORE_NAME}


def text_set_threshold(meta: dict[str, Any]) -> float | None:
    """The threshold a corrected text set was made with (None: none), for predict to apply it again."""
    return (meta.get("fallback") or {}).get("threshold")


class WorseThanRawError(SercacheError):
    """The AEC model's recorded dev WER is above the uncorrected text's."""


def check_dev_wer(model_path: str, force: bool = False) -> None:
    """Refuse (unless `force`) a model whose recorded dev WER is above the raw ASR text's. The model's own WER
    is compared, not the fallback's: the threshold was tuned on the same dev set, so the fallback's dev WER is
    never above raw by construction and says nothing about new text."""
    record = read_record(model_path)
    if record is None:
        print(f"note: {model_path} has no dev WER recorded by train-aec ({RECORD_FILE}); not checked against the "
              "uncorrected text", file=sys.stderr)
        return
    raw, model = record["dev_wer_original"], record["dev_wer_corrected"]
    if model > raw and not force:
        raise WorseThanRawError(f"{model_path}: dev WER {model:.2f} with this AEC model, {raw:.2f} without it; "
                                "correcting would make the text worse. Keep the raw ASR text set, train a better "
                                "model (train-aec --init, more epochs), or pass --force to correct anyway")
    if model > raw:
        print(f"warning: --force: correcting with a model whose dev WER ({model:.2f}) is above the uncorrected "
              f"text's ({raw:.2f})", file=sys.stderr)

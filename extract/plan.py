"""Deciding what to extract and in which parts, before any encoder runs.

The plan is a pure function of the pending utterances (sorted by length, cut into parts of
about `part_megabytes`). It is saved in the feature set, so that a killed run resumes with the
same parts and the finished store equals an uninterrupted run's, whatever the number of ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from sercache.cache.store import FeatureSet

from .audio import AudioError, AudioInfo, load, probe, stat_signature
from .manifest import Utterance


@dataclass
class Pending:
    utt: Utterance
    samples: int
    frames: int


@dataclass
class Triage:
    """The manifest split by what the store already holds."""

    todo: list[Utterance] = field(default_factory=list)
    done: int = 0
    stale: list[str] = field(default_factory=list)
    failed_before: list[str] = field(default_factory=list)


def triage(utterances: Sequence[Utterance], existing: FeatureSet | None, retry_failed: bool) -> Triage:
    """Skip what is extracted and unchanged; a changed stat costs one re-hash, a changed hash a re-extraction."""
    result = Triage()
    failed = {f["id"]: f.get("stat") for f in existing.failures} if existing else {}
    for utt in utterances:
        if existing is not None and utt.id in existing:
            if _unchanged(utt, existing):
                result.done += 1
                continue
            result.stale.append(utt.id)
        elif utt.id in failed and not retry_failed and _same_stat(utt.path, failed[utt.id]):
            result.failed_before.append(utt.id)
            continue
        result.todo.append(utt)
    return result


def _same_stat(path: str, stat: str | None) -> bool:
    try:
        return stat is not None and stat_signature(path) == stat
    except OSError:
        return stat == "missing"


def _unchanged(utt: Utterance, existing: FeatureSet) -> bool:
    entry = existing.entry(utt.id)
    if _same_stat(utt.path, entry.source_stat):
        return True
    try:
        return load(utt).fingerprint == entry.fingerprint
    except AudioError:
        return False  # it will fail again, visibly, in the run


def probe_all(utterances: Sequence[Utterance], num_frames: Callable[[int], int], min_samples: int,
              progress: bool) -> tuple[list[Pending], list[dict[str, Any]]]:
    """Check every file (`probe`): missing, unreadable, empty, silent and too-short files are found before
    any work, in both --on-error modes."""
    pending, failures = [], []
    for utt in tqdm(utterances, desc="checking audio", unit="file", disable=not progress, leave=False):
        try:
            info = precheck(utt, min_samples)
            pending.append(Pending(utt, info.samples, num_frames(info.samples)))
        except AudioError as err:
            failures.append(failure_record(utt, err))
    return pending, failures


def precheck(utt: Utterance, min_samples: int) -> AudioInfo:
    """One file's pre-check, shared by extraction and transcription: `probe` (missing, 0-byte, unreadable,
    empty, silent), then the model's minimum length."""
    info = probe(utt)
    if info.samples < min_samples:
        raise AudioError(
            f"{utt.path}: too short ({info.samples} samples = {info.samples / 16:.1f} ms at 16 kHz; "
            f"the encoder needs at least {min_samples} samples) (utterance {utt.id!r})")
    return info


def bad_input_message(failures: list[dict[str, Any]], done: str = "extracted") -> str:
    """What --on-error stop says when the pre-check found unusable files: every one of them (20 at most)."""
    shown = "\n  ".join(f["error"] for f in failures[:20])
    more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
    return (f"{len(failures)} utterance(s) cannot be {done}; nothing was written for them:\n  {shown}{more}\n"
            "Fix or remove them, or pass --on-error skip to record them as failures and go on.")


def failure_record(utt: Utterance, err: Exception) -> dict[str, Any]:
    try:
        stat = stat_signature(utt.path)
    except OSError:
        stat = "missing"
    return {"id": utt.id, "source": utt.source, "error": str(err), "stat": stat}


def make_parts(pending: Sequence[Pending], row_bytes: int, part_megabytes: float, first_number: int,
               max_utterances: int = 20000) -> list[dict[str, Any]]:
    """Cut length-sorted utterances into parts of about part_megabytes of features each."""
    budget = max(1, int(part_megabytes * (1 << 20)) // max(row_bytes, 1))
    parts: list[dict[str, Any]] = []
    current: list[str] = []
    frames = 0
    for item in sorted(pending, key=lambda p: (p.samples, p.utt.id)):
        if current and (frames + item.frames > budget or len(current) >= max_utterances):
            parts.append({"part": first_number + len(parts), "ids": current, "failures": []})
            current, frames = [], 0
        current.append(item.utt.id)
        frames += item.frames
    if current:
        parts.append({"part": first_number + len(parts), "ids": current, "failures": []})
    return parts


def merge_plan(previous: dict[str, Any] | None, committed: set[int], todo_ids: set[str]
               ) -> tuple[list[dict[str, Any]], int]:
    """Keep the unfinished parts of an earlier plan that are still wanted unchanged; return them and
    the next free part number."""
    kept, covered = [], set()
    numbers = set(committed)
    for part in (previous or {}).get("parts", []):
        numbers.add(part["part"])
        ids = set(part["ids"])
        if part["part"] in committed or not ids <= todo_ids or ids & covered:
            continue
        kept.append(part)
        covered |= ids
    return kept, max(numbers, default=-1) + 1


def batches(pending: Sequence[Pending], cost: Callable[[int], int], batch_samples: int, max_batch: int
            ) -> list[list[Pending]]:
    """Group length-sorted utterances so that a batch's padded compute stays under batch_samples."""
    out: list[list[Pending]] = []
    current: list[Pending] = []
    for item in sorted(pending, key=lambda p: (p.samples, p.utt.id)):
        widest = max([cost(p.samples) for p in current] + [cost(item.samples)])
        if current and (widest * (len(current) + 1) > batch_samples or len(current) >= max_batch):
            out.append(current)
            current = []
        current.append(item)
    if current:
        out.append(current)
    return out

"""Audio in: read once, fingerprint, downmix to mono, resample to 16 kHz with soxr.

The fingerprint hashes the decoded samples of the utterance's segment (not the file bytes), so
a retagged file is not re-extracted while any change to the audio itself is. A cheap stat
signature (size, mtime) lets a resumed run skip hashing files that were not touched.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass

import numpy as np

from sercache.errors import SercacheError

from .manifest import Utterance

SAMPLE_RATE = 16000
SILENCE_PEAK = 1e-4  # -80 dBFS: below this a whole utterance counts as silent


class AudioError(SercacheError):
    """An utterance's audio cannot be used; the message names the file and what is wrong."""


class NoSoundError(AudioError):
    """The audio decodes but there is nothing to hear: no samples in the segment, or silence. Extraction
    refuses it like any bad audio; transcription gives it an empty transcript."""


@dataclass
class AudioInfo:
    """What the header says, enough to plan an extraction before decoding anything."""

    samples: int  # at 16 kHz, of the segment
    native_rate: int
    channels: int
    stat: str


@dataclass
class Audio:
    samples: np.ndarray  # float32 mono 16 kHz
    fingerprint: str
    stat: str


def stat_signature(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def check_file(utt: Utterance) -> None:
    """A missing or 0-byte file is named as such, before a decoder calls it unreadable."""
    try:
        size = os.path.getsize(utt.path)
    except FileNotFoundError:
        raise AudioError(f"{utt.path}: file not found (utterance {utt.id!r})") from None
    except OSError:
        return  # unreadable: the decoder says why
    if size == 0:
        raise AudioError(f"{utt.path}: file is empty (0 bytes) (utterance {utt.id!r})")


def probe(utt: Utterance) -> AudioInfo:
    """The pre-check before any work starts: missing, 0-byte, unreadable and empty files fail on the header,
    then the segment's samples go through `check_content`, the very check decoding applies, so that
    silent audio is named here too and both --on-error modes find the same files."""
    import soundfile as sf

    check_file(utt)
    try:
        with sf.SoundFile(utt.path) as f:
            first, last = _segment_bounds(utt, f.samplerate, f.frames)
            if last - first <= 0:
                what = "is empty (0 samples)" if f.frames == 0 else "segment is empty"
                raise NoSoundError(f"{utt.path}: {what} (utterance {utt.id!r})")
            f.seek(first)
            data = f.read(last - first, dtype="float32", always_2d=True)
            rate, channels = f.samplerate, f.channels
    except AudioError:
        raise
    except Exception as err:
        raise AudioError(f"{utt.path}: unreadable audio (utterance {utt.id!r}): {err}") from None
    check_content(utt, data.mean(axis=1))
    samples = int(round((last - first) * SAMPLE_RATE / rate))
    return AudioInfo(samples, rate, channels, stat_signature(utt.path))


def check_content(utt: Utterance, mono: np.ndarray) -> None:
    """Finite and not silent, on the native-rate mono samples: the one content check, shared by the
    pre-check (`probe`) and decoding (`load`) so they always agree."""
    if not np.isfinite(mono).all():
        raise AudioError(f"{utt.path}: contains NaN or inf samples (utterance {utt.id!r})")
    peak = float(np.abs(mono).max()) if len(mono) else 0.0
    if peak < SILENCE_PEAK:
        raise NoSoundError(f"{utt.path}: is silent (peak {peak:.2e} < {SILENCE_PEAK:g}) (utterance {utt.id!r})")


def _segment_bounds(utt: Utterance, rate: int, frames: int) -> tuple[int, int]:
    first = 0 if utt.start is None else int(round(utt.start * rate))
    last = frames if utt.end is None else min(frames, int(round(utt.end * rate)))
    if utt.start is not None and first >= frames:
        raise AudioError(f"{utt.path}: segment start {utt.start}s is past the end of the file "
                         f"({frames / rate:.2f}s) (utterance {utt.id!r})")
    return first, last


def load(utt: Utterance) -> Audio:
    """Decode the utterance's segment as 16-kHz mono float32, checking it is usable audio."""
    import soundfile as sf
    import soxr

    check_file(utt)
    stat = stat_signature(utt.path)
    try:
        with open(utt.path, "rb") as handle:
            raw = handle.read()
        with sf.SoundFile(io.BytesIO(raw)) as f:
            first, last = _segment_bounds(utt, f.samplerate, f.frames)
            f.seek(first)
            data = f.read(last - first, dtype="float32", always_2d=True)
            rate = f.samplerate
    except AudioError:
        raise
    except Exception as err:
        raise AudioError(f"{utt.path}: unreadable audio (utterance {utt.id!r}): {err}") from None
    if data.shape[0] == 0:
        raise NoSoundError(f"{utt.path}: is empty (0 samples) (utterance {utt.id!r})")
    fingerprint = hashlib.blake2b(np.ascontiguousarray(data).tobytes() + str(rate).encode(),
                                  digest_size=16).hexdigest()
    mono = data.mean(axis=1)
    check_content(utt, mono)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return Audio(np.ascontiguousarray(mono, dtype=np.float32), fingerprint, stat)

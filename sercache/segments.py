"""Where `predict --segment` cuts a recording: fixed windows, or the speech segments a voice-activity detector
finds, so that emotion over a long recording follows what is said rather than an arbitrary clock.

The detector is Silero VAD (the `silero-vad` wheel ships its weights and needs only torch; its `[audio]` extra,
which pins an older torchaudio, is not installed): it marks speech at 16 kHz in 32-ms windows; pauses under
MIN_PAUSE_MS stay inside a segment. Segments
shorter than `min_seconds` are dropped (a cough, a click), longer than `max_seconds` cut into equal pieces (a
head was trained on utterances of a few seconds).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from silero_vad import get_speech_timestamps, load_silero_vad

from sercache.extract.audio import SAMPLE_RATE
from sercache.heads.after.report import pyplot
from sercache.heads.errors import HeadError

SPEECH = "speech"  # --segment speech
MIN_PAUSE_MS = 300  # a pause shorter than this stays inside a segment (a breath, a comma), longer ones end it


@dataclass(frozen=True)
class Segmenting:
    """How recordings are cut: not at all (`window` 0, not speech), every `window` seconds, or at speech."""

    window: float = 0.0
    speech: bool = False
    min_seconds: float = 1.0
    max_seconds: float = 10.0

    @classmethod
    def parse(cls, segment: str | float, min_seconds: float = 1.0, max_seconds: float = 10.0) -> "Segmenting":
        """--segment: '' or 0 (whole files), a number of seconds, or 'speech'."""
        text = str(segment).strip().lower()
        if text == SPEECH:
            if not 0 < min_seconds < max_seconds:
                raise HeadError(f"--min-segment {min_seconds} / --max-segment {max_seconds}: need 0 < min < max")
            return cls(speech=True, min_seconds=min_seconds, max_seconds=max_seconds)
        try:
            window = float(text or 0)
        except ValueError:
            raise HeadError(f"--segment {segment!r}: seconds (e.g. 5) or {SPEECH}") from None
        if window < 0 or not math.isfinite(window):
            raise HeadError(f"--segment {segment}: must be >= 0 seconds (0: whole files) or {SPEECH}")
        return cls(window=window)

    @property
    def active(self) -> bool:
        return self.speech or self.window > 0

    def windows(self, seconds: float) -> list[tuple[float, float]]:
        """Fixed pieces of a recording `seconds` long; the tail (< one window) joins the last piece."""
        starts = [k * self.window for k in range(max(1, int(seconds // self.window)))]
        return list(zip(starts, starts[1:] + [seconds]))

    def speech_segments(self, wave: np.ndarray) -> list[tuple[float, float]]:
        """Speech regions of a 16-kHz recording (seconds from its start), kept and cut to the length limits."""
        found = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), _vad(),
                                      sampling_rate=SAMPLE_RATE, min_silence_duration_ms=MIN_PAUSE_MS,
                                      return_seconds=True)
        out: list[tuple[float, float]] = []
        for region in found:
            start, end = float(region["start"]), float(region["end"])
            if end - start < self.min_seconds:
                continue
            pieces = math.ceil((end - start) / self.max_seconds)
            step = (end - start) / pieces
            out += [(start + k * step, start + (k + 1) * step) for k in range(pieces)]
        return out


@lru_cache(maxsize=1)
def _vad() -> torch.nn.Module:
    return load_silero_vad()


def plots_dir(out: str) -> Path:
    """Where --plot writes: beside --out (preds.csv -> preds_plots/), or ./predict_plots for stdout."""
    return Path(out).with_name(Path(out).stem + "_plots") if out else Path("predict_plots")


def plot_series(rows: Sequence[dict[str, Any]], out: str) -> list[Path]:
    """A PNG per recording: each class's probability over its segments (a step per segment, gaps where no
    speech was found or a segment failed), the predicted class written on each segment."""
    by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("status") == "ok" and row.get("start") is not None:
            by_file[row["path"]].append(row)
    folder = plots_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    return [_plot_one(path, segs, folder) for path, segs in by_file.items()]


def _plot_one(path: str, segments: list[dict[str, Any]], folder: Path) -> Path:
    plt = pyplot()
    classes = [k[5:] for k in segments[0] if k.startswith("prob_")]
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=110, constrained_layout=True)
    colors = plt.get_cmap("tab10")
    for j, c in enumerate(classes):
        for k, seg in enumerate(segments):
            ax.hlines(seg[f"prob_{c}"], seg["start"], seg["end"], color=colors(j % 10), lw=2.5,
                      label=c if k == 0 else None)
    for seg in segments:
        ax.axvspan(seg["start"], seg["end"], color="0.93", zorder=0)
        ax.text((seg["start"] + seg["end"]) / 2, 1.02, seg["Prediction"], ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_xlabel("time in the recording (s)")
    ax.set_ylabel("probability")
    ax.set_title(f"{Path(path).name}: emotion per speech segment", fontsize=10)
    ax.legend(loc="upper right", fontsize=8, ncol=len(classes))
    target = folder / (re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem) + ".png")
    fig.savefig(target)
    plt.close(fig)
    return target

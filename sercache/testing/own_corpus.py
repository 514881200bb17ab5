"""A corpus in a user's own layout, as the README's quick tour expects one: a folder of clips named
clip_NNNN.wav, a label table `file,emotion,speaker,gender,split` with word labels and split names
train/dev/test, new recordings to predict, and the three kinds of file a real folder holds by mistake."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sercache.benchcorpus import BenchSizes, BenchUtterance, plan_bench_corpus, speak

WORDS = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad", "F": "fear"}
TOUR_SPLITS = {"Train": ("train", 10), "Development": ("dev", 4), "Test1": ("test", 4)}  # name, files per class
EXTRA_LABEL = ("F", 2)  # two training clips with a label outside the four classes the tour keeps
BAD_FILES = ("empty.wav", "notes.wav", "blip.wav")  # 0 bytes, a text file, a 10-ms clip


@dataclass(frozen=True)
class OwnCorpus:
    clips: Path
    labels: Path
    new: list[Path]
    bad: list[Path]


def _pick(plan: list[BenchUtterance]) -> list[tuple[BenchUtterance, str]]:
    """Per split, the first files of each of the four classes (and two fear clips in train)."""
    chosen = []
    for split, (name, per_class) in TOUR_SPLITS.items():
        wanted = {c: per_class for c in "AHNS"} | ({EXTRA_LABEL[0]: EXTRA_LABEL[1]} if name == "train" else {})
        for u in plan:
            if u.split == split and wanted.get(u.emotion, 0) > 0:
                wanted[u.emotion] -= 1
                chosen.append((u, name))
    return chosen


def write_own_corpus(root: str | Path, seed: int = 0) -> OwnCorpus:
    """`root/clips/` (74 espeak clips and the three bad files), `root/labels.csv` (every clip, bad ones
    included, as a user's table would list them) and `root/new/call1.wav`, `call2.wav`."""
    root = Path(root)
    clips, new = root / "clips", root / "new"
    clips.mkdir(parents=True, exist_ok=True)
    new.mkdir(exist_ok=True)
    plan = plan_bench_corpus(BenchSizes(train=400, dev=120, test1=64, test2=8, test3=0), seed)
    rows = []
    for k, (u, split) in enumerate(_pick(plan), start=1):
        name = f"clip_{k:04d}.wav"
        speak(u, clips / name)
        rows.append((name, WORDS[u.emotion], f"spk{u.speaker.number:03d}", u.speaker.gender.lower(), split))
    calls = [u for u in plan if u.split == "Test2"][:2]
    for i, u in enumerate(calls, start=1):
        speak(u, new / f"call{i}.wav")
    bad = [clips / name for name in BAD_FILES]
    bad[0].write_bytes(b"")
    bad[1].write_text("meeting notes, not audio\n")
    sf.write(bad[2], (0.1 * np.random.default_rng(seed).standard_normal(160)).astype(np.float32), 16000)
    rows += [(p.name, "neutral", "spk999", "unknown", "train") for p in bad]
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "emotion", "speaker", "gender", "split"])
        writer.writerows(rows)
    return OwnCorpus(clips, labels, [new / f"call{i}.wav" for i in (1, 2)], bad)

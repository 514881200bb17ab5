"""A small emotional-speech corpus synthesised on the spot with espeak-ng, in MSP-Podcast's layout.

Wording carries the emotion (for the text branch) and prosody is varied per class (for the
audio branch); espeak voices act as speakers, split speaker-disjointly into Train /
Development / Test1 (imbalanced train, balanced dev and test). Five simulated annotators label
each file, with confusions, "Other" answers and secondary emotions; the consensus is their
plurality vote (O when Other wins, X on a tie), as MSP-Podcast builds it. Deterministic for a
seed. Real audio, real file formats: `Audios/*.wav`, `Labels/labels_consensus.csv`,
`Labels/labels_detailed.csv` (v1.11 EmoDetail layout) and `Transcripts/*.txt`, so the corpus
goes through exactly the ingestion path MSP-Podcast does.
"""

from __future__ import annotations

import csv
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

SENTENCES = {
    "A": ["I am absolutely furious with you right now", "Get out of my way this is outrageous",
          "How dare you lie to me again", "This is the worst service I have ever had",
          "Stop shouting and give me back my money", "I told you a hundred times not to touch it"],
    "H": ["This is the best day of my whole life", "I am so happy to see you again",
          "We won the match and everyone is celebrating", "What a wonderful surprise thank you so much",
          "I love this song it makes me want to dance", "Our baby finally said her first word"],
    "S": ["I miss her every single day", "Nobody came to my birthday party",
          "The old dog passed away last night", "I lost my job and I do not know what to do",
          "Everything feels empty since you left", "I tried so hard and still failed again"],
    "N": ["The meeting starts at ten in the morning", "Please put the files on the second shelf",
          "The train to the city leaves from platform four", "Water boils at one hundred degrees",
          "The report has twelve pages and three tables", "Turn left at the next corner"],
}
# pitch (0-99), words per minute, amplitude (0-200) per class
PROSODY = {"A": (38, 205, 190), "H": (78, 185, 150), "S": (22, 115, 70), "N": (50, 160, 110)}
VOICES = {"en+m1": "Male", "en+f2": "Female", "en+m3": "Male", "en+f4": "Female",
          "en-us+m2": "Male", "en-us+f3": "Female", "en+m7": "Male", "en+f1": "Female"}
SPLITS = {"Train": ["en+m1", "en+f2", "en+m3", "en+f4"], "Development": ["en-us+m2", "en-us+f3"],
          "Test1": ["en+m7", "en+f1"]}
# Train is imbalanced like MSP-Podcast (neutral and happy dominate); dev and test are balanced.
TRAIN_SHARE = {"N": 0.4, "H": 0.3, "A": 0.15, "S": 0.15}


@dataclass
class DemoUtterance:
    file_name: str
    text: str
    emotion: str
    speaker: int
    voice: str
    split: str


def plan_corpus(n_utterances: int, seed: int) -> list[DemoUtterance]:
    rng = random.Random(seed)
    counts = {"Train": int(n_utterances * 0.6), "Development": int(n_utterances * 0.2)}
    counts["Test1"] = n_utterances - counts["Train"] - counts["Development"]
    plan, number = [], 0
    for split, total in counts.items():
        for i in range(total):
            emotion = (_weighted(rng, TRAIN_SHARE) if split == "Train" else "AHSN"[i % 4])
            voice = SPLITS[split][i % len(SPLITS[split])]
            number += 1
            speaker = list(VOICES).index(voice) + 1
            plan.append(DemoUtterance(f"MSP-PODCAST_{speaker:04d}_{number:04d}.wav",
                                      rng.choice(SENTENCES[emotion]), emotion, speaker, voice, split))
    return plan


def _weighted(rng: random.Random, shares: dict[str, float]) -> str:
    return rng.choices(list(shares), weights=list(shares.values()))[0]


def _speak(utt: DemoUtterance, path: Path, seed: int) -> None:
    rng = random.Random(f"{seed}-{utt.file_name}")
    pitch, speed, amp = PROSODY[utt.emotion]
    args = ["espeak-ng", "-v", utt.voice, "-p", str(pitch + rng.randint(-6, 6)),
            "-s", str(speed + rng.randint(-12, 12)), "-a", str(amp + rng.randint(-10, 10)), "-w", str(path), utt.text]
    subprocess.run(args, check=True, capture_output=True)


def synthesize_corpus(root: str | Path, n_utterances: int = 240, seed: int = 0, jobs: int = 4) -> Path:
    """Write root/Audios/*.wav and root/Labels/labels_consensus.csv; reuse what is already there."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install espeak-ng (bin/setup-env does it)")
    root = Path(root)
    (root / "Audios").mkdir(parents=True, exist_ok=True)
    plan = plan_corpus(n_utterances, seed)
    todo = [u for u in plan if not (root / "Audios" / u.file_name).exists()]
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda u: _speak(u, root / "Audios" / u.file_name, seed), todo))
    _write_labels(root, plan, seed)
    return root


NAMES = {"A": "Angry", "S": "Sad", "H": "Happy", "U": "Surprise", "F": "Fear", "D": "Disgust",
         "C": "Contempt", "N": "Neutral"}
CONFUSIONS = {"A": "CD", "H": "UN", "S": "NF", "N": "SH"}
SECONDARY = ("Annoyed", "Frustrated", "Amused", "Excited", "Concerned", "Disappointed", "Confused")
AVD_MEANS = {"A": (6.0, 2.0, 5.5), "H": (5.5, 6.0, 4.5), "S": (2.5, 2.0, 3.0), "N": (4.0, 4.0, 4.0)}


def annotate(u: DemoUtterance, rng: random.Random, annotators: int = 5) -> list[tuple[str, str, list[str], tuple]]:
    """(worker, primary, secondaries, (A, V, D)) per annotator: mostly right, sometimes confused."""
    votes = []
    ambiguous = rng.random() < 0.05  # some files most annotators call "Other": consensus O
    for _ in range(annotators):
        roll = rng.random()
        if ambiguous and roll < 0.6:
            primary = "Other-" + rng.choice(["bored", "tired", "sarcastic"])
        elif roll < 0.72:
            primary = NAMES[u.emotion]
        elif roll < 0.87:
            primary = NAMES[rng.choice(CONFUSIONS[u.emotion])]
        elif roll < 0.93:
            primary = "Other-" + rng.choice(["bored", "tired", "sarcastic"])
        else:
            primary = NAMES[rng.choice("ASHUFDCN")]
        secondary = [primary] if not primary.startswith("Other") else ["Other"]
        secondary += rng.sample(SECONDARY, rng.randint(0, 2))
        act, val, dom = (round(min(7.0, max(1.0, x + rng.gauss(0, 0.7))), 1) for x in AVD_MEANS[u.emotion])
        votes.append((f"WORKER{rng.randint(100, 999):05d}", primary, secondary, (act, val, dom)))
    return votes


def consensus(votes) -> str:
    """Plurality of the primary emotions: O when Other wins, X when the top count is tied."""
    counts: dict[str, int] = {}
    for _, primary, _, _ in votes:
        letter = "O" if primary.startswith("Other") else next(k for k, v in NAMES.items() if v == primary)
        counts[letter] = counts.get(letter, 0) + 1
    top = max(counts.values())
    winners = [k for k, c in counts.items() if c == top]
    return winners[0] if len(winners) == 1 else "X"


def _write_labels(root: Path, plan: list[DemoUtterance], seed: int) -> None:
    labels = root / "Labels"
    labels.mkdir(exist_ok=True)
    rng = random.Random(f"labels-{seed}")
    with open(labels / "labels_consensus.csv", "w", newline="") as cons, \
            open(labels / "labels_detailed.csv", "w", newline="") as det:
        consensus_csv, detailed_csv = csv.writer(cons), csv.writer(det)
        consensus_csv.writerow(["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"])
        detailed_csv.writerow(["FileName", "EmoDetail"])
        for u in plan:
            votes = annotate(u, rng)
            for worker, primary, secondary, (act, val, dom) in votes:
                detailed_csv.writerow([u.file_name, f"{worker}; {primary}; {','.join(secondary)}; "
                                                    f"A:{act}; V:{val}; D:{dom};"])
            mean = [round(sum(v[3][i] for v in votes) / len(votes), 1) for i in range(3)]
            consensus_csv.writerow([u.file_name, consensus(votes), *mean, u.speaker, VOICES[u.voice], u.split])
    transcripts = root / "Transcripts"
    transcripts.mkdir(exist_ok=True)
    for u in plan:
        (transcripts / (Path(u.file_name).stem + ".txt")).write_text(u.text + "\n")

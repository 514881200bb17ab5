"""A deliberately hard MSP-Podcast-format corpus for judging whether heads learn (the benchmark yardstick).

The demo corpus is easy on purpose; this one is not. All eight MSP classes, imbalanced like
MSP-Podcast's train split, noisy crowd labels with the confusions real annotators make, many speakers,
and an emotion that is carried only partly by the words and only partly by the voice:

* wording: a file's sentence opens with a cue phrase of its own emotion (`TEXT_OWN`), of a confusable
  emotion (`TEXT_MISLEADING`, e.g. sarcasm), or with none (the rest): text alone cannot be sure;
* prosody: pitch, rate, loudness and pauses are drawn around per-class means with wide, overlapping
  spreads, on top of each speaker's own offsets: audio alone cannot be sure either;
* labels: 5 to 8 simulated annotators per file perceive the intended emotion with probability
  `ANNOTATOR_ACCURACY`, otherwise a related emotion (contempt/disgust/anger, sad/neutral, happy/surprise,
  fear/surprise), "Other" or neutral; the consensus is their plurality (O if Other wins, X on a tie).

The consensus, not the intended emotion, is what models are scored against, so the intended emotion
itself is the natural ceiling: `corpus_ceiling` reports its Macro-F1 / accuracy against the consensus
on each split (the generating settings' score; no model that sees only the signal should beat it by much).

Splits are speaker-disjoint: Train (MSP-Podcast's class shares), Development (same shares), Test1
(balanced over the intended emotion), Test2 (natural shares) and Test3 (no labels). Deterministic for a
seed; files already written are reused. The speaker count and the class shares are parameters of
`BenchSizes`; at their defaults (192 speakers, MSP-Podcast's shares) the draw is the one it always was.

The same voices, wording and prosody also come in two other corpora's shapes, so that the readers, folds
and protocols of those corpora are exercised on audio whose generating truth is known:

* `IemocapSizes` / `synthesize_iemocap_corpus`: IEMOCAP's release layout (Session1..5, one woman and one
  man each, improvised and scripted dialogs, `dialog/EmoEvaluation/<dialog>.txt` with three simulated
  evaluators per turn and a summary code by majority or xxx, `sentences/wav/<dialog>/<utterance>.wav`);
* `EmoboxSizes` / `synthesize_emobox_corpus`: EmoBox's metadata layout (`data/<name>/<name>.jsonl`,
  `label_map.json`, leave-speakers-out `fold_<k>/` train/test files, wav paths relative to the root, audio
  under `downloads/<name>/`), labelled with the intended emotion as an acted corpus is.

Both also write `manifest.csv` (id, path: what `extract-features --input` reads) and
`intended_emotions.csv` (what the generator meant, what the label became, and how it was rendered).
"""

from __future__ import annotations

import csv
import json
import math
import random
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from sercache.heads.inputs.corpora.msp import MSP_TRAIN_COUNTS  # the train shares (Sheffield paper, table 4)

CLASSES = "ASHUFDCN"
# MSP-Podcast's names of the class letters (labels_detailed.csv writes names, the consensus letters)
NAMES = {"A": "Angry", "S": "Sad", "H": "Happy", "U": "Surprise", "F": "Fear", "D": "Disgust",
         "C": "Contempt", "N": "Neutral"}
SECONDARY = ("Annoyed", "Frustrated", "Amused", "Excited", "Concerned", "Disappointed", "Confused")

# Emotion cue phrases that open a sentence; the carrier clause after them is emotion-free.
CUES = {
    "A": ["this is completely unacceptable", "I am so angry right now", "how dare they do this to us",
          "I have had enough of this nonsense", "stop lying to me", "that makes me furious"],
    "S": ["I feel so lonely these days", "it breaks my heart", "I really miss the old times",
          "nothing seems to matter anymore", "I could not stop crying", "it is all so hopeless"],
    "H": ["this is wonderful news", "I am so glad", "what a lovely day", "I could not be happier",
          "that made my whole week", "we had such a great time"],
    "U": ["wow I did not expect that", "no way really", "I can hardly believe it", "what a shock",
          "that came out of nowhere", "you will never guess what happened"],
    "F": ["I am really scared", "something terrible might happen", "I am afraid to go back",
          "please do not leave me alone", "my hands are still shaking", "I have a very bad feeling"],
    "D": ["that is absolutely disgusting", "it made me feel sick", "gross I cannot look at it",
          "the smell was revolting", "I wanted to throw up", "that is just vile"],
    "C": ["oh please spare me", "as if they know anything", "what a pathetic excuse",
          "that is beneath me", "they are such amateurs", "how typical of them"],
    "N": ["just so you know", "for the record", "as I said before", "to be honest",
          "by the way", "in any case"],
}
CARRIERS = [
    "the meeting was moved to thursday afternoon", "she sent the report to the whole team",
    "we drove to the coast over the weekend", "the new office is next to the station",
    "he finally fixed the kitchen window", "they changed the schedule for the bus",
    "my brother called me after dinner", "the package arrived this morning",
    "our neighbours painted their fence green", "the results came in yesterday",
    "I read the letter twice", "the shop on the corner closed early",
    "we talked about it for an hour", "the teacher announced the grades",
    "my phone stopped working again", "the doctor looked at the test",
    "the team played the last game of the season", "they sold the old house",
    "the manager read the email out loud", "the landlord raised the rent",
    "the flight was delayed by two hours", "the kids found the box in the garden",
    "the interview is on monday", "the price went up last month",
    "she opened the door slowly", "we got the answer from the office",
    "he told me about the accident", "the dog ran across the street",
    "the party is at their place", "the car is still at the garage",
]
# Who gets mistaken for whom, in the wording (misleading cues) and by annotators.
CONFUSIONS = {"A": "CDF", "S": "NF", "H": "UN", "U": "HF", "F": "SU", "D": "CA", "C": "DA", "N": "SH"}
TEXT_OWN, TEXT_MISLEADING = 0.42, 0.18  # the rest: no cue phrase at all
# espeak-ng prosody per intended emotion: pitch (0-99), words per minute, amplitude, extra word gap (10 ms)
PROSODY_MEAN = {"A": (46, 186, 160, 0), "S": (32, 128, 86, 5), "H": (66, 178, 138, 1), "U": (74, 168, 146, 3),
                "F": (62, 196, 96, 2), "D": (38, 142, 124, 4), "C": (42, 136, 104, 6), "N": (50, 158, 112, 2)}
PROSODY_SD = (11, 22, 24, 3)
ANNOTATOR_ACCURACY = 0.55
ATTRIBUTES = {"A": (6.0, 2.0, 5.5), "S": (2.5, 2.0, 3.0), "H": (5.5, 6.0, 4.5), "U": (5.5, 4.8, 4.0),
              "F": (5.2, 2.2, 2.5), "D": (4.5, 2.2, 4.5), "C": (4.0, 2.8, 5.0), "N": (4.0, 4.0, 4.0)}
ACCENTS = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029", "en-gb-x-gbcwmd", "en-us-nyc"]
VARIANTS = {"m1": "Male", "m2": "Male", "m3": "Male", "m4": "Male", "m5": "Male", "m6": "Male", "m7": "Male",
            "f1": "Female", "f2": "Female", "f3": "Female", "f4": "Female", "f5": "Female"}
SPLIT_SHARES = {"Train": 0.6, "Development": 0.15, "Test1": 0.15, "Test2": 0.05, "Test3": 0.05}  # of speakers


@dataclass(frozen=True)
class Speaker:
    number: int
    voice: str  # espeak-ng "accent+variant"
    gender: str
    pitch: int  # offsets added to every utterance of this speaker
    rate: int
    loudness: int


@dataclass(frozen=True)
class BenchUtterance:
    file_name: str
    text: str
    emotion: str  # intended emotion (what the generator rendered)
    speaker: Speaker
    split: str
    prosody: tuple[int, int, int, int]  # espeak -p -s -a -g


@dataclass(frozen=True)
class BenchSizes:
    """Files per split (Test1 is balanced over the intended emotion), the number of speakers (split
    speaker-disjointly by `speakers`) and the intended emotions' shares in the other splits, by class
    letter (None: MSP-Podcast's train shares; a class left out never occurs there)."""

    train: int = 2000
    dev: int = 500
    test1: int = 480
    test2: int = 160
    test3: int = 80
    speakers: int = 192
    class_shares: Mapping[str, float] | None = None

    def of(self, split: str) -> int:
        return {"Train": self.train, "Development": self.dev, "Test1": self.test1, "Test2": self.test2,
                "Test3": self.test3}[split]


def _voice_groups(rng: random.Random, copies: int) -> dict[str, list[list[tuple]]]:
    """Per gender, per accent: every variant of that gender `copies` times with personal offsets, shuffled."""
    by_gender: dict[str, list[list[tuple]]] = {}
    for accent in ACCENTS:
        for gender in ("Male", "Female"):
            voices = [(f"{accent}+{variant}", g, rng.randint(-12, 12), rng.randint(-20, 20), rng.randint(-15, 15))
                      for variant, g in VARIANTS.items() if g == gender for _ in range(copies)]
            rng.shuffle(voices)
            by_gender.setdefault(gender, []).append(voices)
    return by_gender


def speakers(seed: int, count: int = 192) -> dict[str, list[Speaker]]:
    """`count` speakers (default: accents x voice variants x two personal offsets = 192), split
    speaker-disjointly and stratified by gender and accent: every split has the pool's gender ratio (the
    variants', 7 male to 5 female) and its accents spread evenly.

    Left to chance, 29 test speakers drawn from 192 can differ from training in ways no method should be
    judged on (an unstratified draw gave a Test1 with 62 % female files against 42 % in Train, and a
    Development split without two of the eight accents), which made audio scores depend on the draw.
    Another count draws as many copies of each variant as it needs and deals the first ones round robin
    over the accents, so the default draw is unchanged.
    """
    if count < 1:
        raise ValueError(f"speakers must be at least 1, got {count}")
    male = round(count * 7 / 12)
    quota = {"Male": male, "Female": count - male}
    copies = max(1, *(math.ceil(quota[g] / (len(ACCENTS) * list(VARIANTS.values()).count(g))) for g in quota))
    rng = random.Random(f"speakers-{seed}")
    by_gender = _voice_groups(rng, copies)
    out: dict[str, list[Speaker]] = {split: [] for split in SPLIT_SHARES}
    number = 0
    per_accent = {split: dict.fromkeys(ACCENTS, 0) for split in SPLIT_SHARES}
    seen = dict.fromkeys(ACCENTS, 0)
    for gender, groups in by_gender.items():
        rng.shuffle(groups)
        dealt = [v for row in zip(*groups) for v in row][:quota[gender]]  # round robin over the accents
        counts = dict.fromkeys(SPLIT_SHARES, 0)
        for k, voice in enumerate(dealt, 1):  # to the split furthest below its share, of this gender and accent
            accent = voice[0].split("+")[0]
            seen[accent] += 1
            deficit = {name: share * (k + seen[accent]) - counts[name] - per_accent[name][accent]
                       for name, share in SPLIT_SHARES.items()}
            split = max(SPLIT_SHARES, key=deficit.__getitem__)
            counts[split] += 1
            per_accent[split][accent] += 1
            number += 1
            out[split].append(Speaker(number, *voice))
    return out


def _shares(given: Mapping[str, float], known: str | tuple[str, ...]) -> tuple[list[str], list[float]]:
    """The classes with a positive share and their weights, in `known`'s order; unknown or negative
    classes are refused (a typo would otherwise silently drop a class)."""
    unknown = sorted(set(given) - set(known))
    if unknown or any(v < 0 for v in given.values()) or sum(given.values()) <= 0:
        raise ValueError(f"class_shares {dict(given)}: need non-negative shares of {' '.join(known)} summing "
                         f"above 0{f' (unknown: {unknown})' if unknown else ''}")
    classes = [c for c in known if given.get(c, 0) > 0]
    return classes, [float(given[c]) for c in classes]


def _emotions(split: str, n: int, rng: random.Random, class_shares: Mapping[str, float] | None = None) -> list[str]:
    """Intended emotions of one split: Test1 balanced, the others drawn by the shares (None: MSP-Podcast's,
    drawn exactly as before the shares were a parameter, so default plans do not change)."""
    if split == "Test1":  # balanced
        return [CLASSES[i % len(CLASSES)] for i in range(n)]
    if class_shares is not None:
        classes, weights = _shares(class_shares, CLASSES)
        return rng.choices(classes, weights=weights, k=n)
    total = sum(MSP_TRAIN_COUNTS.values())
    shares = [MSP_TRAIN_COUNTS[c] / total for c in CLASSES]
    return rng.choices(CLASSES, weights=shares, k=n)


def _sentence(emotion: str, rng: random.Random) -> str:
    roll = rng.random()
    carrier = rng.choice(CARRIERS)
    if roll < TEXT_OWN:
        return f"{rng.choice(CUES[emotion])} {carrier}"
    if roll < TEXT_OWN + TEXT_MISLEADING:
        return f"{rng.choice(CUES[rng.choice(CONFUSIONS[emotion])])} {carrier}"
    return carrier


def _prosody(emotion: str, spk: Speaker, rng: random.Random) -> tuple[int, int, int, int]:
    mean = PROSODY_MEAN[emotion]
    pitch = mean[0] + spk.pitch + rng.gauss(0, PROSODY_SD[0])
    rate = mean[1] + spk.rate + rng.gauss(0, PROSODY_SD[1])
    amp = mean[2] + spk.loudness + rng.gauss(0, PROSODY_SD[2])
    gap = mean[3] + rng.gauss(0, PROSODY_SD[3])
    return (int(np.clip(pitch, 5, 95)), int(np.clip(rate, 90, 260)), int(np.clip(amp, 40, 200)),
            int(np.clip(gap, 0, 15)))


def plan_bench_corpus(sizes: BenchSizes = BenchSizes(), seed: int = 0) -> list[BenchUtterance]:
    """Every file's text, intended emotion, speaker and prosody; a pure function of sizes and seed."""
    rng = random.Random(f"plan-{seed}")
    spk = speakers(seed, sizes.speakers)
    empty = [split for split in SPLIT_SHARES if sizes.of(split) and not spk[split]]
    if empty:
        raise ValueError(f"{sizes.speakers} speakers leave {', '.join(empty)} without a speaker: use more speakers")
    plan, number = [], 0
    for split in SPLIT_SHARES:
        for emotion in _emotions(split, sizes.of(split), rng, sizes.class_shares):
            speaker = rng.choice(spk[split])
            number += 1
            plan.append(BenchUtterance(f"MSP-PODCAST_{speaker.number:04d}_{number:05d}.wav",
                                       _sentence(emotion, rng), emotion, speaker, split,
                                       _prosody(emotion, speaker, rng)))
    return plan


def annotate(emotion: str, rng: random.Random) -> list[tuple[str, str, list[str], tuple]]:
    """5-8 annotators: (worker, primary, secondaries, (A, V, D)) each."""
    votes = []
    for _ in range(rng.randint(5, 8)):
        roll = rng.random()
        if roll < ANNOTATOR_ACCURACY:
            letter = emotion
        elif roll < ANNOTATOR_ACCURACY + 0.25:
            letter = rng.choice(CONFUSIONS[emotion])
        elif roll < ANNOTATOR_ACCURACY + 0.31:
            letter = "O"
        elif roll < ANNOTATOR_ACCURACY + 0.38:
            letter = "N"
        else:
            letter = rng.choice(CLASSES)
        primary = "Other-" + rng.choice(["bored", "tired", "sarcastic", "confused"]) if letter == "O" \
            else NAMES[letter]
        secondary = ["Other"] if letter == "O" else [primary]
        secondary += rng.sample(SECONDARY, rng.randint(0, 2))
        base = ATTRIBUTES[emotion if letter == "O" else letter]
        act, val, dom = (round(min(7.0, max(1.0, x + rng.gauss(0, 0.9))), 1) for x in base)
        votes.append((f"WORKER{rng.randint(100, 99999):05d}", primary, secondary, (act, val, dom)))
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


def speak(u: BenchUtterance, path: Path) -> None:
    pitch, rate, amp, gap = u.prosody
    tmp = path.with_name(".tmp-" + path.name)
    subprocess.run(["espeak-ng", "-v", u.speaker.voice, "-p", str(pitch), "-s", str(rate), "-a", str(amp),
                    "-g", str(gap), "-w", str(tmp), u.text], check=True, capture_output=True)
    tmp.rename(path)  # a killed run never leaves a truncated wav under the final name


def _claim(root: Path, settings: dict, audio: Path) -> None:
    """Record what a root was generated with; refuse other settings, whose plan names some files alike
    with other content (existing files are reused, so mixing two plans would mislabel them)."""
    marker = root / "corpus.json"
    if marker.is_file():
        made = json.loads(marker.read_text())
        if made != settings:
            raise ValueError(f"{root} holds a benchmark corpus made with {made.get('layout', 'msp')} "
                             f"{made['sizes']} seed {made['seed']}, not {settings.get('layout', 'msp')} "
                             f"{settings['sizes']} seed {settings['seed']}: use another directory")
    elif any(audio.iterdir()):
        raise ValueError(f"{audio} already holds files not made by this generator: use another directory")
    else:
        marker.write_text(json.dumps(settings, indent=1) + "\n")


def _settings(sizes: BenchSizes | IemocapSizes | EmoboxSizes, seed: int) -> dict:
    """The marker's content. MSP draws record only the sizes fields that are not at their default beyond the
    five split sizes, so corpora made before the speaker count and shares were parameters stay valid."""
    if isinstance(sizes, BenchSizes):
        kept = {f.name: getattr(sizes, f.name) for f in fields(sizes)
                if f.name in ("train", "dev", "test1", "test2", "test3") or getattr(sizes, f.name) != f.default}
        return {"generator": "sercache.benchcorpus", "sizes": kept, "seed": seed}
    layout = "iemocap" if isinstance(sizes, IemocapSizes) else "emobox"
    return {"generator": "sercache.benchcorpus", "layout": layout, "sizes": asdict(sizes), "seed": seed}


def _start(root: str | Path, sizes: BenchSizes | IemocapSizes | EmoboxSizes, seed: int, audio: str) -> Path:
    """Check espeak-ng and claim the root (its `audio` folder must be new or ours)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install espeak-ng (bin/setup-env does it)")
    root = Path(root)
    (root / audio).mkdir(parents=True, exist_ok=True)
    _claim(root, json.loads(json.dumps(_settings(sizes, seed))), root / audio)  # as read back from disk
    return root


def _speak_all(plan: list[BenchUtterance], paths: Mapping[str, Path], jobs: int) -> None:
    """Synthesise every file not there yet (a rerun after an interruption resumes), `jobs` at a time."""
    todo = [u for u in plan if not paths[u.file_name].exists()]
    for folder in {paths[u.file_name].parent for u in todo}:
        folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda u: speak(u, paths[u.file_name]), todo))


def synthesize_bench_corpus(root: str | Path, sizes: BenchSizes | IemocapSizes | EmoboxSizes = BenchSizes(),
                            seed: int = 0, jobs: int = 4) -> Path:
    """Write root/Audios, root/Labels (consensus, detailed, intended emotions) and root/Transcripts; an
    IemocapSizes or EmoboxSizes writes that corpus' layout instead (synthesize_iemocap_corpus,
    synthesize_emobox_corpus)."""
    if isinstance(sizes, IemocapSizes):
        return synthesize_iemocap_corpus(root, sizes, seed, jobs)
    if isinstance(sizes, EmoboxSizes):
        return synthesize_emobox_corpus(root, sizes, seed, jobs)
    root = _start(root, sizes, seed, "Audios")
    plan = plan_bench_corpus(sizes, seed)
    _speak_all(plan, {u.file_name: root / "Audios" / u.file_name for u in plan}, jobs)
    _write_labels(root, plan, seed)
    return root


def _write_labels(root: Path, plan: list[BenchUtterance], seed: int) -> None:
    labels = root / "Labels"
    labels.mkdir(exist_ok=True)
    rng = random.Random(f"labels-{seed}")
    with open(labels / "labels_consensus.csv", "w", newline="") as cons, \
            open(labels / "labels_detailed.csv", "w", newline="") as det, \
            open(labels / "intended_emotions.csv", "w", newline="") as intended:
        consensus_csv, detailed_csv, intended_csv = csv.writer(cons), csv.writer(det), csv.writer(intended)
        consensus_csv.writerow(["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"])
        detailed_csv.writerow(["FileName", "EmoDetail"])
        intended_csv.writerow(["FileName", "Intended", "Split_Set", "Text", "Voice", "Pitch", "Rate", "Amplitude",
                               "Gap"])
        for u in plan:
            votes = annotate(u.emotion, rng)
            intended_csv.writerow([u.file_name, u.emotion, u.split, u.text, u.speaker.voice, *u.prosody])
            if u.split == "Test3":  # unlabelled, as published
                consensus_csv.writerow([u.file_name, "", "", "", "", u.speaker.number, u.speaker.gender, u.split])
                continue
            for worker, primary, secondary, (act, val, dom) in votes:
                detailed_csv.writerow([u.file_name, f"{worker}; {primary}; {','.join(secondary)}; "
                                                    f"A:{act}; V:{val}; D:{dom};"])
            mean = [round(sum(v[3][i] for v in votes) / len(votes), 1) for i in range(3)]
            consensus_csv.writerow([u.file_name, consensus(votes), *mean, u.speaker.number, u.speaker.gender,
                                    u.split])
    transcripts = root / "Transcripts"
    transcripts.mkdir(exist_ok=True)
    for u in plan:
        if u.split not in ("Test1", "Test2", "Test3"):  # MSP-Podcast ships human transcripts for train/dev
            (transcripts / (Path(u.file_name).stem + ".txt")).write_text(u.text + "\n")


def corpus_ceiling(root: str | Path) -> dict[str, dict[str, float]]:
    """Per labelled split: Macro-F1, accuracy and balanced accuracy of the intended emotion against the
    8-class consensus (O/X files left out, as in training and scoring)."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    root = Path(root)
    consensus_rows = {r["FileName"]: r for r in csv.DictReader(open(root / "Labels" / "labels_consensus.csv"))}
    by_split: dict[str, tuple[list[str], list[str]]] = {}
    for r in csv.DictReader(open(root / "Labels" / "intended_emotions.csv")):
        label = consensus_rows[r["FileName"]]["EmoClass"]
        if label not in tuple(CLASSES):  # O, X and unlabelled (Test3) files are not scored
            continue
        truth, guess = by_split.setdefault(r["Split_Set"], ([], []))
        truth.append(label)
        guess.append(r["Intended"])
    out = {}
    for split, (truth, guess) in by_split.items():
        out[split] = {"macro_f1": float(f1_score(truth, guess, labels=list(CLASSES), average="macro")),
                      "accuracy": float(accuracy_score(truth, guess)),
                      "balanced_accuracy": float(balanced_accuracy_score(truth, guess)), "n": len(truth)}
    return out


def generating_parameters(row: dict[str, str], voices: list[str]) -> np.ndarray:
    """What a perfect feature extractor would recover of one file: which cue phrase opens it (one-hot, or none),
    its pitch, rate, loudness and pause settings (and their squares) and its voice (one-hot)."""
    cues = [c for e in CLASSES for c in CUES[e]]
    cue = np.zeros(len(cues) + 1)
    hit = [i for i, c in enumerate(cues) if row["Text"].startswith(c + " ")]
    cue[hit[0] if hit else -1] = 1.0
    prosody = np.array([float(row[k]) for k in ("Pitch", "Rate", "Amplitude", "Gap")])
    voice = np.zeros(len(voices))
    voice[voices.index(row["Voice"])] = 1.0
    return np.concatenate([cue, prosody, prosody ** 2 / 100.0, voice])


def signal_ceiling(root: str | Path, train_labels: str | Path | None = None) -> dict[str, float]:
    """Test1 Macro-F1 of a logistic regression on the generating parameters (generating_parameters): the
    score of a linear model handed exactly what the audio and the words carry, trained on the Train files of
    `train_labels` (default: the corpus' own), regularisation chosen on Development. Far below the ceiling,
    because one file's wording and prosody do not determine its intended emotion; a head on encoder features
    that approaches it has extracted nearly all the signal a linear read-out can use."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    root = Path(root)
    labels = Path(train_labels) if train_labels else root / "Labels" / "labels_consensus.csv"
    consensus = {r["FileName"]: r for r in csv.DictReader(open(labels))}
    rows = [r for r in csv.DictReader(open(root / "Labels" / "intended_emotions.csv"))
            if r["FileName"] in consensus and consensus[r["FileName"]]["EmoClass"] in tuple(CLASSES)]
    voices = sorted({r["Voice"] for r in rows})

    def data(split: str) -> tuple[np.ndarray, list[str]]:
        chosen = [r for r in rows if r["Split_Set"] == split]
        return (np.array([generating_parameters(r, voices) for r in chosen]),
                [consensus[r["FileName"]]["EmoClass"] for r in chosen])

    (X, y), (Xd, yd), (Xt, yt) = data("Train"), data("Development"), data("Test1")
    mean, std = X.mean(0), X.std(0) + 1e-9

    def fit(C: float) -> LogisticRegression:
        return LogisticRegression(C=C, max_iter=5000, class_weight="balanced").fit((X - mean) / std, y)

    def macro_f1(model: LogisticRegression, A: np.ndarray, truth: list[str]) -> float:
        return float(f1_score(truth, model.predict((A - mean) / std), labels=list(CLASSES), average="macro",
                              zero_division=0))

    models = {C: fit(C) for C in (0.01, 0.1, 1.0, 10.0)}
    best = max(models, key=lambda C: macro_f1(models[C], Xd, yd))
    return {"Development": macro_f1(models[best], Xd, yd), "Test1": macro_f1(models[best], Xt, yt), "C": best,
            "n_train": len(y)}


def train_subset_labels(root: str | Path, n_train: int, out: str | Path, seed: int = 0) -> Path:
    """A consensus file whose Train split keeps `n_train` files (a fixed random subset; nested for growing
    n), every other split unchanged: one extraction serves several training-set sizes."""
    root = Path(root)
    rows = list(csv.DictReader(open(root / "Labels" / "labels_consensus.csv")))
    train = [r["FileName"] for r in rows if r["Split_Set"] == "Train"]
    if n_train > len(train):
        raise ValueError(f"{root}: only {len(train)} Train files, cannot keep {n_train}")
    order = random.Random(f"subset-{seed}").sample(train, len(train))
    keep = set(order[:n_train])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["Split_Set"] != "Train" or r["FileName"] in keep)
    return out


# --- shared by the IEMOCAP and EmoBox layouts ---------------------------------------------------------------


def _durations(paths: list[Path]) -> list[tuple[int, int]]:
    """(frames, sample rate) of each wav, read from its header: label files state real lengths and times."""
    import soundfile as sf

    return [(info.frames, info.samplerate) for info in (sf.info(str(p)) for p in paths)]


def _write_manifest(root: Path, rows: list[tuple[str, Path]]) -> None:
    """root/manifest.csv (id, path relative to root): the ids the labels use, for extract-features --input."""
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "path"])
        writer.writerows((uid, path.relative_to(root).as_posix()) for uid, path in rows)


def _write_intended(root: Path, plan: list[BenchUtterance], ids: list[str], labels: Mapping[str, str],
                    speaker: Callable[[BenchUtterance], str]) -> None:
    """root/intended_emotions.csv: per file the intended emotion, the label it ended with, its split and
    speaker and how it was rendered (the columns `generating_parameters` reads)."""
    with open(root / "intended_emotions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Id", "Intended", "Label", "Split_Set", "Speaker", "Gender", "Text", "Voice", "Pitch", "Rate",
                         "Amplitude", "Gap"])
        for uid, u in zip(ids, plan):
            writer.writerow([uid, u.emotion, labels[uid], u.split, speaker(u), u.speaker.gender, u.text,
                             u.speaker.voice, *u.prosody])


# --- IEMOCAP's release layout -----------------------------------------------------------------------------

# Summary codes of the release (10,039 turns; xxx 2,507 and oth 3 left out): the intended emotions' shares.
IEMOCAP_RELEASE_COUNTS = {"neu": 1708, "fru": 1849, "ang": 1103, "sad": 1084, "exc": 1041, "hap": 595, "sur": 107,
                          "fea": 40, "dis": 2}
IEMOCAP_RENDER = {"ang": "A", "hap": "H", "exc": "H", "sad": "S", "neu": "N", "fru": "C", "sur": "U", "fea": "F",
                  "dis": "D"}  # whose cue phrases and prosody render each code
IEMOCAP_NAMES = {"ang": "Anger", "hap": "Happiness", "exc": "Excited", "sad": "Sadness", "neu": "Neutral",
                 "fru": "Frustration", "sur": "Surprise", "fea": "Fear", "dis": "Disgust", "oth": "Other"}
IEMOCAP_CONFUSIONS = {"ang": "fru dis", "hap": "exc neu", "exc": "hap sur", "sad": "neu fru", "neu": "fru sad",
                      "fru": "ang neu", "sur": "exc fea", "fea": "sad sur", "dis": "ang fru"}
IEMOCAP_VAD = {"ang": (1.9, 3.9, 3.8), "hap": (3.9, 3.0, 3.0), "exc": (4.0, 3.6, 3.3), "sad": (2.0, 2.3, 2.3),
               "neu": (3.0, 2.6, 2.8), "fru": (2.1, 3.1, 3.2), "sur": (3.4, 3.6, 2.9), "fea": (2.2, 3.4, 2.2),
               "dis": (1.9, 3.2, 3.4), "oth": (3.0, 3.0, 3.0)}
EVALUATOR_ACCURACY = 0.65  # 3 evaluators: about 15 % of the turns end as xxx (the release: 25 %)
DIALOG_THEME = 0.5  # share of a dialog's turns in its theme emotion (the rest drawn afresh, same shares)
EMO_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


@dataclass(frozen=True)
class IemocapSizes:
    """An IEMOCAP-shaped draw: `utterances` turns over 5 sessions of one woman and one man each, in dialogs of
    `per_dialog` turns; intended emotions by IEMOCAP code (None: the release's label counts)."""

    utterances: int = 1000
    per_dialog: int = 24
    class_shares: Mapping[str, float] | None = None


def iemocap_speakers(seed: int) -> dict[int, dict[str, Speaker]]:
    """Session -> {"F": Ses0kF, "M": Ses0kM}: ten actors, each a voice variant of their own gender used by
    no other actor, on a random accent, with personal offsets drawn as in `speakers`."""
    rng = random.Random(f"iemocap-speakers-{seed}")
    variants = {g: rng.sample([v for v, vg in VARIANTS.items() if vg == g], 5) for g in ("Female", "Male")}
    cast: dict[int, dict[str, Speaker]] = {}
    for s in range(1, 6):
        cast[s] = {g[0]: Speaker(2 * s - (g == "Female"), f"{rng.choice(ACCENTS)}+{variants[g][s - 1]}", g,
                                 rng.randint(-12, 12), rng.randint(-20, 20), rng.randint(-15, 15))
                   for g in ("Female", "Male")}
    return cast


def iemocap_dialog_names(session: int, count: int) -> list[str]:
    """Improvised and scripted dialogs in turn, each led once by the woman and once by the man, as the
    release names them: Ses01F_impro01, Ses01M_impro01, Ses01F_script01_1, Ses01M_script01_1, ..._impro02."""
    names = []
    for k in range(count):
        pair = k // 2
        number = pair // 2 + 1
        kind = f"impro{number:02d}" if pair % 2 == 0 else f"script{(number - 1) // 2 + 1:02d}_{(number - 1) % 2 + 1}"
        names.append(f"Ses0{session}{'FM'[k % 2]}_{kind}")
    return names


def _plan_dialog(session: int, name: str, n: int, cast: dict[str, Speaker], shares: tuple[list[str], list[float]],
                 rng: random.Random) -> list[BenchUtterance]:
    """`n` turns of one dialog: the two actors mostly alternate, turns numbered per actor (F000, M000, F001),
    half of them in the dialog's theme emotion (a dialog has a mood, as IEMOCAP's do)."""
    theme = rng.choices(*shares)[0]
    turns, who, out = {"F": 0, "M": 0}, rng.choice("FM"), []
    for _ in range(n):
        code = theme if rng.random() < DIALOG_THEME else rng.choices(*shares)[0]
        letter, actor = IEMOCAP_RENDER[code], cast[who]
        out.append(BenchUtterance(f"{name}_{who}{turns[who]:03d}.wav", _sentence(letter, rng), code, actor,
                                  f"Session{session}", _prosody(letter, actor, rng)))
        turns[who] += 1
        who = who if rng.random() < 0.2 else {"F": "M", "M": "F"}[who]
    return out


def plan_iemocap_corpus(sizes: IemocapSizes = IemocapSizes(), seed: int = 0) -> list[BenchUtterance]:
    """Every turn's id (file_name without .wav), text, intended IEMOCAP code, actor, session (split) and
    prosody; sessions get equal shares of the turns. A pure function of sizes and seed."""
    if sizes.utterances < 5 or sizes.per_dialog < 1:
        raise ValueError(f"IEMOCAP draw needs at least 5 utterances and 1 per dialog, got {sizes}")
    shares = _shares(sizes.class_shares or IEMOCAP_RELEASE_COUNTS, tuple(IEMOCAP_RENDER))
    rng = random.Random(f"iemocap-plan-{seed}")
    cast = iemocap_speakers(seed)
    plan: list[BenchUtterance] = []
    for session in range(1, 6):
        n = sizes.utterances // 5 + (session <= sizes.utterances % 5)
        for d, name in enumerate(iemocap_dialog_names(session, -(-n // sizes.per_dialog))):
            plan += _plan_dialog(session, name, min(sizes.per_dialog, n - d * sizes.per_dialog), cast[session],
                                 shares, rng)
    return plan


def iemocap_evaluate(code: str, rng: random.Random) -> tuple[str, tuple[float, float, float], list[str]]:
    """Three evaluators: each names what they heard first (the intended code with EVALUATOR_ACCURACY, else a
    related one, or neutral, frustration, other), now and then a second category, and rates valence,
    activation and dominance 1-5. Summary code: the first choice of at least two, else xxx; [V, A, D]: the
    mean rating. Returns it with the evaluators' C-E and A-E lines as the release writes them."""
    firsts, lines, ratings = [], [], []
    for e in (1, 2, 3):
        roll = rng.random()
        heard = code if roll < EVALUATOR_ACCURACY else rng.choice(IEMOCAP_CONFUSIONS[code].split()) \
            if roll < 0.88 else rng.choice(("neu", "fru", "oth"))
        chosen = [heard] + ([rng.choice(IEMOCAP_CONFUSIONS[heard].split())] if heard != "oth" and rng.random() < 0.2
                            else [])
        firsts.append(heard)
        lines.append(f"C-E{e}:\t{'; '.join(IEMOCAP_NAMES[c] for c in chosen)};\t()\n")
        ratings.append([int(min(5, max(1, round(m + rng.gauss(0, 0.7))))) for m in IEMOCAP_VAD[heard]])
    lines += [f"A-E{e}:\tval {v}; act {a}; dom  {d};\t()\n" for e, (v, a, d) in enumerate(ratings, 1)]
    top, count = Counter(firsts).most_common(1)[0]
    vad = tuple(sum(r[i] for r in ratings) / 3 for i in range(3))
    return (top if count >= 2 else "xxx"), vad, lines  # type: ignore[return-value]


def _write_iemocap_dialog(session: Path, dialog: str, turns: list[BenchUtterance], lengths: list[tuple[int, int]],
                          rng: random.Random) -> dict[str, str]:
    """One dialog's EmoEvaluation and transcription files, turns one after another with short pauses; returns
    every turn's summary code."""
    t, blocks, lines, codes = rng.uniform(1.0, 5.0), [], [], {}
    for u, (frames, rate) in zip(turns, lengths):
        uid, start = Path(u.file_name).stem, t
        t += frames / rate
        code, (v, a, d), evaluations = iemocap_evaluate(u.emotion, rng)
        codes[uid] = code
        blocks.append(f"[{start:.4f} - {t:.4f}]\t{uid}\t{code}\t[{v:.4f}, {a:.4f}, {d:.4f}]\n" + "".join(evaluations))
        lines.append(f"{uid} [{start:08.4f}-{t:08.4f}]: {u.text}\n")
        t += rng.uniform(0.2, 1.5)
    for folder, text in (("EmoEvaluation", EMO_HEADER + "\n".join(blocks)), ("transcriptions", "".join(lines))):
        (session / "dialog" / folder).mkdir(parents=True, exist_ok=True)
        (session / "dialog" / folder / f"{dialog}.txt").write_text(text)
    return codes


def iemocap_wav(root: Path, u: BenchUtterance) -> Path:
    """Where the release keeps a turn: SessionN/sentences/wav/<dialog>/<turn>.wav."""
    return root / u.split / "sentences" / "wav" / u.file_name.rsplit("_", 1)[0] / u.file_name


def synthesize_iemocap_corpus(root: str | Path, sizes: IemocapSizes = IemocapSizes(), seed: int = 0,
                              jobs: int = 4) -> Path:
    """Write IEMOCAP's release layout under root (Session1..5 with dialog/EmoEvaluation, dialog/transcriptions
    and sentences/wav), plus manifest.csv and intended_emotions.csv. Read it with
    `read_labels("iemocap", root)`; extract from root/manifest.csv (ids = turn ids) or from root itself
    (ids = relative paths, joined to the labels by file stem)."""
    root = _start(root, sizes, seed, ".")
    plan = plan_iemocap_corpus(sizes, seed)
    paths = {u.file_name: iemocap_wav(root, u) for u in plan}
    _speak_all(plan, paths, jobs)
    lengths = dict(zip(paths, _durations(list(paths.values()))))
    rng, codes = random.Random(f"iemocap-labels-{seed}"), {}
    dialogs: dict[str, list[BenchUtterance]] = {}
    for u in plan:
        dialogs.setdefault(u.file_name.rsplit("_", 1)[0], []).append(u)
    for dialog, turns in dialogs.items():
        codes |= _write_iemocap_dialog(root / turns[0].split, dialog, turns, [lengths[u.file_name] for u in turns], rng)
    ids = [Path(u.file_name).stem for u in plan]
    _write_manifest(root, [(uid, paths[u.file_name]) for uid, u in zip(ids, plan)])
    _write_intended(root, plan, ids, codes, lambda u: u.split.replace("Session", "Ses0") + u.speaker.gender[0])
    return root


# --- EmoBox's metadata layout ---------------------------------------------------------------------------

EMOBOX_CODES = {"A": "ANG", "S": "SAD", "H": "HAP", "U": "SUR", "F": "FEA", "D": "DIS", "C": "CON", "N": "NEU"}


@dataclass(frozen=True)
class EmoboxSizes:
    """An EmoBox-shaped draw of an acted corpus called `name`: `utterances` files dealt evenly over `speakers`
    speakers (at least 4, as EmoBox's speaker folds need), intended emotions by class letter (None: balanced
    over all eight, as acted corpora are)."""

    utterances: int = 600
    speakers: int = 24
    name: str = "benchsyn"
    class_shares: Mapping[str, float] | None = None


def emobox_folds(numbers: list[int], seed: int) -> list[list[int]]:
    """Test speakers of each fold, by EmoBox's rule for speaker folds: 4-6 speakers, one fold each; more,
    len // 4 folds of speakers dealt round robin after a shuffle."""
    if len(numbers) < 4:
        raise ValueError(f"EmoBox speaker folds need at least 4 speakers, got {len(numbers)}")
    if len(numbers) <= 6:
        return [[n] for n in numbers]
    order = random.Random(f"emobox-folds-{seed}").sample(numbers, len(numbers))
    count = len(numbers) // 4
    return [sorted(order[k::count]) for k in range(count)]


def plan_emobox_corpus(sizes: EmoboxSizes = EmoboxSizes(), seed: int = 0) -> list[BenchUtterance]:
    """Every file's name (spkNNN_NNNNN.wav), text, intended emotion, speaker and prosody; split is
    the fold (fold_<k>) whose test set holds it. A pure function of sizes and seed."""
    pool = sorted((s for group in speakers(seed, sizes.speakers).values() for s in group), key=lambda s: s.number)
    fold_of = {n: k for k, test in enumerate(emobox_folds([s.number for s in pool], seed), 1) for n in test}
    classes, weights = _shares(sizes.class_shares or dict.fromkeys(CLASSES, 1.0), CLASSES)
    rng = random.Random(f"emobox-plan-{seed}")
    plan = []
    for i in range(sizes.utterances):
        spk = pool[i % len(pool)]
        emotion = rng.choices(classes, weights=weights)[0]
        plan.append(BenchUtterance(f"spk{spk.number:03d}_{i + 1:05d}.wav", _sentence(emotion, rng), emotion, spk,
                                   f"fold_{fold_of[spk.number]}", _prosody(emotion, spk, rng)))
    return plan


def _emobox_entry(name: str, u: BenchUtterance, wav: str, length: tuple[int, int]) -> dict:
    """One metadata line, with EmoBox's fields in its order (key = <name>-<file stem>)."""
    frames, rate = length
    return {"key": f"{name}-{Path(u.file_name).stem}", "dataset": name, "wav": wav, "type": "raw",
            "sample_rate": rate, "num_frame": float(frames), "task": "category", "length": frames / rate,
            "emo": EMOBOX_CODES[u.emotion], "channel": 1}


def _write_jsonl(path: Path, entries: list[dict]) -> None:
    """One JSON object a line, as EmoBox's metadata files are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


def write_emobox_metadata(folder: Path, name: str, entries: list[dict], speaker: list[str], fold: list[int]) -> None:
    """EmoBox's files for one corpus: <name>.jsonl, label_map.json (the codes used), fold_<k>/<name>_train_fold_<k>
    and _test_fold_<k>.jsonl (test: the entries whose `fold` is k; train: all others) and data.seg.wrd.stm,
    where EmoBox records each key's speaker."""
    _write_jsonl(folder / f"{name}.jsonl", entries)
    used = {e["emo"] for e in entries}
    label_map = {code: NAMES[letter] for letter, code in EMOBOX_CODES.items() if code in used}
    (folder / "label_map.json").write_text(json.dumps(label_map, indent=4) + "\n")
    for k in sorted(set(fold)):
        for part, test in (("train", False), ("test", True)):
            chosen = [e for e, f in zip(entries, fold) if (f == k) == test]
            _write_jsonl(folder / f"fold_{k}" / f"{name}_{part}_fold_{k}.jsonl", chosen)
    (folder / "data.seg.wrd.stm").write_text("".join(
        f"{e['key']} 1 {spk} 0 {e['length']} <id={e['key']},lang=en,spk={spk},emotion={e['emo']}> {e['emo']}\n"
        for e, spk in zip(entries, speaker)))


def synthesize_emobox_corpus(root: str | Path, sizes: EmoboxSizes = EmoboxSizes(), seed: int = 0,
                             jobs: int = 4) -> Path:
    """Write EmoBox's layout under root: audio in downloads/<name>/spkNNN/, metadata in data/<name>/ with wav
    paths relative to root (EmoBox's data root), plus manifest.csv (ids = EmoBox keys) and
    intended_emotions.csv."""
    root = _start(root, sizes, seed, "downloads")
    plan = plan_emobox_corpus(sizes, seed)
    wavs = {u.file_name: f"downloads/{sizes.name}/spk{u.speaker.number:03d}/{u.file_name}" for u in plan}
    _speak_all(plan, {f: root / w for f, w in wavs.items()}, jobs)
    lengths = _durations([root / wavs[u.file_name] for u in plan])
    entries = [_emobox_entry(sizes.name, u, wavs[u.file_name], n) for u, n in zip(plan, lengths)]
    write_emobox_metadata(root / "data" / sizes.name, sizes.name, entries,
                          [f"spk{u.speaker.number:03d}" for u in plan], [int(u.split[5:]) for u in plan])
    ids = [e["key"] for e in entries]
    _write_manifest(root, [(key, root / wavs[u.file_name]) for key, u in zip(ids, plan)])
    _write_intended(root, plan, ids, {e["key"]: e["emo"] for e in entries}, lambda u: f"spk{u.speaker.number:03d}")
    return root


def _parse_shares(text: str) -> dict[str, float] | None:
    """--shares "N=5,H=2.5,A=1" (class letters, or IEMOCAP codes for --layout iemocap) into a dict."""
    if not text:
        return None
    try:
        return {k.strip(): float(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise SystemExit(f"--shares {text!r}: expected CLASS=SHARE,CLASS=SHARE,...") from None


def _layout_sizes(args) -> BenchSizes | IemocapSizes | EmoboxSizes:
    """The sizes of the layout asked for; options another layout uses are ignored."""
    shares = _parse_shares(args.shares)
    if args.layout == "iemocap":
        return IemocapSizes(args.utterances or IemocapSizes.utterances, args.per_dialog, shares)
    if args.layout == "emobox":
        return EmoboxSizes(args.utterances or EmoboxSizes.utterances, args.speakers or EmoboxSizes.speakers,
                           args.name, shares)
    return BenchSizes(args.train, args.dev, args.test1, args.test2, args.test3, args.speakers or 192, shares)


def _summary(root: Path, sizes: BenchSizes | IemocapSizes | EmoboxSizes) -> dict:
    """What to print when done: the ceiling of an MSP draw; the label counts per split of the others."""
    if isinstance(sizes, BenchSizes):
        return corpus_ceiling(root)
    counts: dict[str, Counter] = {}
    for row in csv.DictReader(open(root / "intended_emotions.csv")):
        counts.setdefault(row["Split_Set"], Counter())[row["Label"]] += 1
    return {split: dict(sorted(c.items())) for split, c in counts.items()}


def main(argv: list[str] | None = None) -> int:
    """python -m sercache.benchcorpus --out DIR [--layout msp|iemocap|emobox]: write a corpus, print its summary."""
    import argparse

    p = argparse.ArgumentParser(prog="sercache-benchcorpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="corpus root to write")
    p.add_argument("--layout", choices=("msp", "iemocap", "emobox"), default="msp",
                   help="MSP-Podcast's layout (default), IEMOCAP's release layout or EmoBox's metadata layout")
    for name in ("train", "dev", "test1", "test2", "test3"):
        p.add_argument(f"--{name}", type=int, default=getattr(BenchSizes, name), help=f"msp: files in {name}")
    p.add_argument("--speakers", type=int, default=0, help="msp, emobox: speakers (default 192, 24)")
    p.add_argument("--utterances", type=int, default=0, help="iemocap, emobox: files (default 1000, 600)")
    p.add_argument("--per-dialog", type=int, default=IemocapSizes.per_dialog, help="iemocap: turns per dialog")
    p.add_argument("--name", default=EmoboxSizes.name, help="emobox: the corpus name")
    p.add_argument("--shares", default="", help="intended emotions' shares, e.g. N=5,H=2.5,A=1 (iemocap: codes, "
                                                "e.g. neu=5,ang=2); default: the layout's own")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=4, help="espeak-ng processes at a time")
    args = p.parse_args(argv)
    sizes = _layout_sizes(args)
    root = synthesize_bench_corpus(args.out, sizes, args.seed, args.jobs)
    print(json.dumps(_summary(root, sizes), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

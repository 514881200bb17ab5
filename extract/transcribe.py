"""`transcribe`: Whisper transcripts into a store's text set, resumable, with per-utterance confidence.

Two backends over the same manifests as audio extraction:
* openai-whisper (`whisper.load_model(name_or_path)`): clips up to 30 s go through `whisper.decode`
  on 30-s mel inputs, batched for greedy decoding (its beam search breaks on batches); longer ones
  go through `whisper.transcribe`.
* faster-whisper (CTranslate2): `WhisperModel.transcribe` per utterance (its batched pipeline
  batches the chunks of one long recording, not separate short clips).
Whisper modes (faster-whisper): `padded` (default) encodes the 30-s window every Whisper model was
trained on; `trimmed` encodes only the clip plus `trim_margin` seconds of silence, about 30 s / (duration
+ margin) times less encoder compute for short clips, at a cost in accuracy that depends on the clips
(BENCHMARKS.md, "Transcription"): whisper-base on 40 espeak clips, beam 1, gave 25 % WER trimmed against
29 % padded, but on 24 others, beam 5, 17 % against 9 %, with some sentences decoded twice; without the
margin decoding breaks down (143 %). A speed option, not a free one: the default stays padded. Clips longer
than 30 s minus the margin are decoded padded.
Decoding is deterministic: temperature 0 without fallback, beam search, no conditioning on
previous text. Whisper's own no-speech rule applies (no_speech_prob > 0.6 and avg_logprob < -1
gives an empty transcript), and empty or silent audio gives "" without running the model.
Every file first goes through extraction's pre-check (`plan.precheck`: missing, 0-byte, unreadable, shorter
than one Whisper frame); with --on-error stop a bad file stops the run before the model loads, with skip it
is named in the summary and the others are transcribed.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from sercache.cache import Store
from sercache.cache.layout import disk_full_is_input_error
from sercache.cache.texts import TextSetWriter
from sercache.dataclass_cli import apply_threads, threads_field
from sercache.errors import SercacheError

from .audio import SAMPLE_RATE, AudioError, NoSoundError, load
from .bundled import resolve_bundled
from .config import ON_ERROR
from .encoders import model_digest
from .manifest import DATA_ROOT_HELP, Utterance, load_manifest
from .plan import bad_input_message, failure_record, precheck
from .whisper import SAMPLES_PER_FRAME, WHISPER_MODES

BACKENDS = ("faster-whisper", "openai-whisper")
NO_SPEECH_PROB, LOGPROB_FLOOR = 0.6, -1.0
WINDOW_SAMPLES = 480000
MIN_SAMPLES = SAMPLES_PER_FRAME  # one Whisper encoder frame (20 ms): what extraction's Whisper encoders need


class TranscriptionError(SercacheError):
    """Audio given to `transcribe` cannot be used; the message names every such file."""


@dataclass
class TranscribeConfig:
    input: str = field(metadata={"help": "manifest or audio directory (as for extract-features)"})
    store: str = field(metadata={"help": "store directory"})
    data_root: str = field(default="", metadata={"help": DATA_ROOT_HELP})
    model: str = field(default="whisper-large-v2", metadata={
        "help": "faster-whisper: CTranslate2 directory or size name; openai-whisper: name or .pt checkpoint; "
                "whisper-base-ct2 = the bundled real whisper-base"})
    backend: str = field(default="faster-whisper", metadata={"help": "decoder implementation", "choices": BACKENDS})
    name: str = field(default="", metadata={"help": "text-set name (default: asr/<model name>)"})
    language: str = field(default="en", metadata={"help": "language code"})
    beam_size: int = field(default=5, metadata={"help": "beam width (deterministic decoding)"})
    batch_size: int = field(default=16, metadata={"help": "clips per decoding batch (openai-whisper)"})
    part_size: int = field(default=256, metadata={"help": "transcripts per committed part (unit of resume)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto"})
    compute_type: str = field(default="default", metadata={"help": "faster-whisper compute type (int8, float16, ...)"})
    whisper_mode: str = field(default="padded", metadata={
        "help": "padded: encode the 30-s window (as Whisper was trained); trimmed (faster-whisper only): encode the "
                "clip plus --trim-margin seconds of silence, several times faster on short clips",
        "choices": WHISPER_MODES})
    trim_margin: float = field(default=3.0, metadata={"help": "seconds of silence after each clip in trimmed mode"})
    on_error: str = field(default="stop", metadata={
        "help": "unusable audio (missing, unreadable, too short): stop before transcribing anything, or skip it "
                "and name it in the summary", "choices": ON_ERROR})
    threads: int = threads_field()
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


def _device(name: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


class FasterWhisperBackend:
    def __init__(self, cfg: TranscribeConfig):
        from faster_whisper import WhisperModel

        self.path = resolve_bundled(cfg.model) or cfg.model
        self.model = WhisperModel(self.path, device=_device(cfg.device), compute_type=cfg.compute_type,
                                  cpu_threads=cfg.threads)
        self.cfg = cfg
        self.margin = int(round(cfg.trim_margin * SAMPLE_RATE))

    def transcribe(self, audios: list[np.ndarray]) -> list[dict[str, Any]]:
        trimmed = self.cfg.whisper_mode == "trimmed"
        return [self._trimmed(a) if trimmed and len(a) + self.margin <= WINDOW_SAMPLES else self._one(a)
                for a in audios]

    def _trimmed(self, audio: np.ndarray) -> dict[str, Any]:
        """One clip decoded from the encoder frames of clip + margin; faster-whisper's own decoding settings
        (temperature 0, suppress blank and the model's suppress tokens, length penalty 1)."""
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer

        mel = self.model.feature_extractor(np.pad(audio.astype(np.float32), (0, self.margin)), padding=0)
        mel = np.ascontiguousarray(mel[None, :, : mel.shape[1] // 2 * 2], dtype=np.float32)  # the conv halves it
        ct2 = self.model.model
        tokenizer = Tokenizer(self.model.hf_tokenizer, ct2.is_multilingual, task="transcribe",
                              language=self.cfg.language)
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        encoded = ct2.encode(ctranslate2.StorageView.from_array(mel), to_cpu=False)
        result = ct2.generate(encoded, [prompt], beam_size=self.cfg.beam_size, length_penalty=1.0,
                              max_length=self.model.max_length, return_scores=True, return_no_speech_prob=True,
                              suppress_blank=True, suppress_tokens=[-1])[0]
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)  # faster-whisper's, length penalty 1
        return _combine([(tokenizer.decode(tokens), avg_logprob, result.no_speech_prob, len(tokens))])

    def _one(self, audio: np.ndarray) -> dict[str, Any]:
        segments, _ = self.model.transcribe(audio, language=self.cfg.language, beam_size=self.cfg.beam_size,
                                            temperature=0.0, condition_on_previous_text=False, vad_filter=False,
                                            without_timestamps=True)
        segments = list(segments)
        return _combine([(s.text, s.avg_logprob, s.no_speech_prob, len(s.tokens)) for s in segments])


class OpenAIWhisperBackend:
    def __init__(self, cfg: TranscribeConfig):
        import whisper

        self.device = _device(cfg.device)
        self.path = resolve_bundled(cfg.model) or cfg.model
        self.model = whisper.load_model(self.path, device=self.device)
        self.cfg = cfg

    def transcribe(self, audios: list[np.ndarray]) -> list[dict[str, Any]]:
        import torch
        import whisper

        results: list[dict[str, Any] | None] = [None] * len(audios)
        short = [i for i, a in enumerate(audios) if len(a) <= WINDOW_SAMPLES]
        if short:
            mel = torch.stack([whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(audios[i])),
                                                           n_mels=self.model.dims.n_mels) for i in short])
            options = whisper.DecodingOptions(language=self.cfg.language, beam_size=self.cfg.beam_size,
                                              temperature=0.0, without_timestamps=True, fp16=self.device != "cpu")
            mel = mel.to(self.device)
            # openai-whisper 20250625 fails on beam search over a batch (audio features are not
            # repeated per beam), so only greedy decoding is batched.
            step = len(short) if self.cfg.beam_size <= 1 else 1
            decoded = [d for s in range(0, len(short), step)
                       for d in whisper.decode(self.model, mel[s:s + step], options)]
            for i, d in zip(short, decoded):
                results[i] = _combine([(d.text, d.avg_logprob, d.no_speech_prob, len(d.tokens))])
        for i, audio in enumerate(audios):
            if results[i] is None:
                out = whisper.transcribe(self.model, audio, language=self.cfg.language, temperature=0.0,
                                         beam_size=self.cfg.beam_size, condition_on_previous_text=False,
                                         fp16=self.device != "cpu")
                results[i] = _combine([(s["text"], s["avg_logprob"], s["no_speech_prob"], len(s["tokens"]))
                                       for s in out["segments"]])
        return results  # type: ignore[return-value]


def _combine(segments: list[tuple[str, float, float, int]]) -> dict[str, Any]:
    """One record per utterance: mean log-probability over all decoded tokens (each segment's
    average is over its tokens + EOT, as Whisper computes it, so it is defined even for an empty
    segment), the first window's no-speech probability, Whisper's no-speech rule per segment."""
    kept = [s for s in segments if not (s[2] > NO_SPEECH_PROB and s[1] < LOGPROB_FLOOR)]
    tokens = sum(s[3] for s in segments)
    weight = sum(s[3] + 1 for s in segments)
    avg = sum(s[1] * (s[3] + 1) for s in segments) / weight if segments else None
    return {"text": " ".join(s[0].strip() for s in kept).strip(), "avg_logprob": avg,
            "no_speech_prob": segments[0][2] if segments else None, "n_tokens": tokens}


def load_backend(cfg: TranscribeConfig):
    if cfg.backend not in BACKENDS:
        raise ValueError(f"unknown backend {cfg.backend!r}; choose one of {BACKENDS}")
    if cfg.whisper_mode not in WHISPER_MODES:
        raise ValueError(f"unknown --whisper-mode {cfg.whisper_mode!r}; choose one of {WHISPER_MODES}")
    if cfg.whisper_mode == "trimmed" and cfg.backend != "faster-whisper":
        raise ValueError("--whisper-mode trimmed needs --backend faster-whisper (openai-whisper's encoder takes the "
                         "30-s window only)")
    return FasterWhisperBackend(cfg) if cfg.backend == "faster-whisper" else OpenAIWhisperBackend(cfg)


def default_text_name(cfg: TranscribeConfig) -> str:
    from pathlib import Path

    model = Path(cfg.model.rstrip("/")).name.removesuffix(".pt")
    return cfg.name or f"asr/{model}"


def config_from_metadata(meta: dict[str, Any], model: str, device: str, **paths: str) -> TranscribeConfig:
    """The TranscribeConfig that decodes new audio as a text set's recorded settings did (`predict`); text sets
    written before a setting was recorded get that setting's old default."""
    decoding = meta.get("decoding") or {}
    return TranscribeConfig(input=paths.get("input", ""), store=paths.get("store", ""), model=model,
                            backend=meta.get("backend") or "faster-whisper", language=meta.get("language") or "en",
                            beam_size=int(decoding.get("beam_size", 5)), batch_size=int(decoding.get("batch_size", 16)),
                            device=device, compute_type=meta.get("compute_type") or "default",
                            whisper_mode=decoding.get("whisper_mode", "padded"),
                            trim_margin=float(decoding.get("trim_margin", 3.0)), progress=False)


@dataclass
class TranscriptionSummary:
    name: str
    transcribed: int = 0
    already_done: int = 0
    empty: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    audio_seconds: float = 0.0


def run_transcription(cfg: TranscribeConfig) -> TranscriptionSummary:
    apply_threads(cfg.threads)
    started = time.perf_counter()
    name = default_text_name(cfg)
    utterances = load_manifest(cfg.input, cfg.data_root)
    writer = TextSetWriter(Store.create(cfg.store), name)
    done = writer.done()
    todo = [u for u in utterances if u.id not in done]
    summary = TranscriptionSummary(name, already_done=len(utterances) - len(todo))
    if not todo:
        print(f"{name}: nothing to do; {summary.already_done} utterances already transcribed", file=sys.stderr)
        return summary
    todo = _precheck(cfg, todo, summary)
    backend = load_backend(cfg)
    # everything `predict` needs to transcribe new audio the same way: weights hash, compute type, decoding
    with disk_full_is_input_error(writer.store.root):
        writer.ensure_metadata({"kind": "asr", "model": cfg.model, "model_path": str(backend.path),
                                "weights_sha256": model_digest(str(backend.path)), "compute_type": cfg.compute_type,
                                "backend": cfg.backend, "source": None, "language": cfg.language,
                                "decoding": {"beam_size": cfg.beam_size, "temperature": 0.0,
                                             "condition_on_previous_text": False, "batch_size": cfg.batch_size,
                                             "whisper_mode": cfg.whisper_mode, "trim_margin": cfg.trim_margin}})
    bar = tqdm(total=len(todo), unit="utt", desc=name, disable=not cfg.progress)
    for start in range(0, len(todo), cfg.part_size):
        chunk = todo[start:start + cfg.part_size]
        records = _transcribe_part(cfg, backend, chunk, summary, bar)
        with disk_full_is_input_error(writer.store.root):
            writer.commit(records)
    bar.close()
    summary.seconds = time.perf_counter() - started
    _report(summary)
    return summary


def _precheck(cfg: TranscribeConfig, todo: list[Utterance], summary: TranscriptionSummary) -> list[Utterance]:
    """Extraction's pre-check of every file before the model loads. Silent and sample-less audio goes on (it gets
    an empty transcript); any other problem stops the run naming every bad file (--on-error stop), or is recorded
    in the summary and the file skipped (--on-error skip)."""
    usable, failures = [], []
    for utt in tqdm(todo, desc="checking audio", unit="file", disable=not cfg.progress, leave=False):
        try:
            precheck(utt, MIN_SAMPLES)
        except NoSoundError:
            pass
        except AudioError as err:
            failures.append(failure_record(utt, err))
            continue
        usable.append(utt)
    if failures and cfg.on_error == "stop":
        raise TranscriptionError(bad_input_message(failures, "transcribed"))
    summary.failures += failures
    return usable


def _report(summary: TranscriptionSummary) -> None:
    lines = [f"{summary.name}: transcribed {summary.transcribed} utterances ({summary.audio_seconds / 3600:.2f} h "
             f"audio, {summary.audio_seconds / max(summary.seconds, 1e-9):.1f}x realtime), {summary.empty} empty, "
             f"{len(summary.failures)} failed" + (":" if summary.failures else "")]
    lines += [f"  {f['id']}: {f['error']}" for f in summary.failures]
    print("\n".join(lines), file=sys.stderr)


def _transcribe_part(cfg, backend, chunk: list[Utterance], summary: TranscriptionSummary, bar) -> list[dict]:
    records, audios, owners = [], [], []
    for utt in chunk:
        try:
            audio = load(utt).samples
        except NoSoundError as err:  # silent or no samples: an empty transcript, without running the model
            records.append({"id": utt.id, "text": "", "avg_logprob": None, "no_speech_prob": None,
                            "n_tokens": 0, "note": str(err)})
            summary.empty += 1
            continue
        except AudioError as err:  # unusable although the pre-check passed (the file changed since)
            if cfg.on_error == "stop":
                raise
            summary.failures.append(failure_record(utt, err))
            continue
        audios.append(audio)
        owners.append(utt)
    for start in range(0, len(audios), cfg.batch_size):
        batch = audios[start:start + cfg.batch_size]
        for utt, result in zip(owners[start:start + cfg.batch_size], backend.transcribe(batch)):
            records.append({"id": utt.id, **result})
            summary.empty += not result["text"]
        summary.transcribed += len(batch)
        summary.audio_seconds += sum(len(a) for a in batch) / SAMPLE_RATE
        bar.update(len(batch))
    return records

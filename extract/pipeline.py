"""The extraction run: plan on rank 0, decode in background workers, encode, commit parts in a
background writer thread, so the encoder never waits on disk or on audio decoding."""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from sercache import __version__
from sercache.cache import CacheError, FeatureSetWriter, Store, UtteranceRecord
from sercache.cache.layout import disk_full_is_input_error
from sercache.cache.writer import PartSummary
from sercache.dataclass_cli import apply_threads
from sercache.errors import SercacheError

from .audio import SAMPLE_RATE, AudioError, load
from .config import ExtractConfig
from .distributed import init as init_distributed
from .encoders import AudioEncoder, default_set_name, load_encoder
from .layers import LayerSpec, parse_layers
from .manifest import load_manifest
from .plan import Pending, bad_input_message, batches, failure_record, make_parts, merge_plan, probe_all, triage
from .text_features import is_text_model, run_text_extraction


class ExtractionError(SercacheError):
    pass


@dataclass
class ExtractionSummary:
    name: str
    extracted: int = 0
    already_done: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    clipped: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0
    parts: int = 0


def feature_set_name(cfg: ExtractConfig) -> str:
    return cfg.name or f"{default_set_name(cfg.model)}/{parse_layers(cfg.layers or '-1').tag}"


def run_extraction(cfg: ExtractConfig):
    """Audio encoders over a manifest, or (with --text / a text model) a text encoder over a text set."""
    apply_threads(cfg.threads)
    if not cfg.store:
        raise ExtractionError("--store is required")
    if cfg.text or is_text_model(cfg.model):
        if not cfg.text:
            raise ExtractionError(f"{cfg.model} is a text encoder: pass --text with a text set of the store "
                                  "(see transcribe / import-transcripts)")
        return run_text_extraction(cfg)
    if not cfg.input:
        raise ExtractionError("--input (a manifest or an audio directory) is required for audio encoders")
    return _run_audio(cfg)


def _run_audio(cfg: ExtractConfig) -> ExtractionSummary:
    ctx, device = init_distributed(cfg.device)
    started = time.perf_counter()
    layers = parse_layers(cfg.layers or "-1")
    name = feature_set_name(cfg)
    utterances = {u.id: u for u in load_manifest(cfg.input, cfg.data_root)}
    if ctx.is_main:
        Store.create(cfg.store, cfg.backend)
    ctx.barrier()
    store = Store(cfg.store)
    writer = FeatureSetWriter(store, name, cfg.storage())
    summary = ExtractionSummary(name)
    existing = store[name] if name in store else None
    sorted_out = triage(list(utterances.values()), existing, cfg.retry_failed)
    summary.already_done = sorted_out.done
    if not sorted_out.todo:
        summary.failures = existing.failures if existing is not None else []  # as a run that extracts reports
        _say(ctx, f"{name}: nothing to do; {sorted_out.done} utterances already extracted"
             + (f", {len(sorted_out.failed_before)} failed earlier (--retry-failed to retry)"
                if sorted_out.failed_before else ""))
        return summary
    encoder = load_encoder(cfg.model, device, cfg.precision, cfg.whisper_mode)
    encoder.check_layers(layers)
    frame_shape = _frame_shape(encoder, layers)
    outcome = _plan(ctx, cfg, writer, encoder, layers, frame_shape, sorted_out) if ctx.is_main else None
    outcome = ctx.broadcast(outcome)
    if isinstance(outcome, str):
        raise ExtractionError(outcome)
    plan_parts, samples = outcome
    mine = [p for i, p in enumerate(plan_parts) if i % ctx.world == ctx.rank]
    local = _run_parts(ctx, cfg, writer, encoder, layers, frame_shape, mine, samples, utterances)
    ctx.barrier()
    for other in ctx.gather(local):
        summary.extracted += other.extracted
        summary.clipped += other.clipped
        summary.audio_seconds += other.audio_seconds
        summary.parts += other.parts
    summary.failures = store[name].failures
    summary.seconds = time.perf_counter() - started
    if ctx.is_main:
        _report(summary, store)
    return summary


def _say(ctx, message: str) -> None:
    if ctx.is_main:
        print(message, file=sys.stderr)


def _frame_shape(encoder: AudioEncoder, layers: LayerSpec) -> list[int]:
    count = len(layers.resolve(encoder.n_hidden))
    return [count, encoder.dim] if layers.stacked else [encoder.dim]


def _layer_indices(encoder: AudioEncoder, layers: LayerSpec) -> list[int]:
    """Hidden-state indices for featureset.json: absolute where the encoder knows its depth; an encoder
    that does not (CTranslate2) says itself what it stores."""
    own = getattr(encoder, "layer_indices", None)
    return own(layers) if callable(own) else layers.resolve(encoder.n_hidden)


def _plan(ctx, cfg: ExtractConfig, writer: FeatureSetWriter, encoder: AudioEncoder, layers: LayerSpec,
          frame_shape: list[int], sorted_out) -> tuple[list[dict[str, Any]], dict[str, int]] | str:
    """Rank 0 only. Returns the parts to run and each utterance's length, or an error message."""
    # model_name: what the user typed (a bundled or short name), so `predict` can find the model again
    # on a machine where the resolved path differs
    provenance = {**encoder.provenance(), "model_name": cfg.model, "layers": layers.text,
                  "layer_indices": _layer_indices(encoder, layers), "reduction": layers.reduce,
                  "frame_shape": frame_shape, "whisper_mode": getattr(encoder, "mode", None),
                  "toolkit": "sercache", "toolkit_version": __version__}
    try:
        with disk_full_is_input_error(writer.store.root):
            writer.ensure_metadata(provenance)
    except CacheError as err:
        return str(err)
    writer.remove_temporaries()
    pending, failures = probe_all(sorted_out.todo, encoder.num_frames, encoder.min_samples, cfg.progress)
    if failures and cfg.on_error == "stop":
        return bad_input_message(failures)
    committed = set(writer.committed())
    kept, next_number = merge_plan(writer.read_plan(), committed, {p.utt.id for p in pending})
    covered = {uid for part in kept for uid in part["ids"]}
    row_bytes = cfg.storage().row_bytes(frame_shape)
    new_pending = [p for p in pending if p.utt.id not in covered]
    new = make_parts(new_pending, row_bytes, cfg.part_megabytes, next_number)
    if failures:  # skip mode: header failures are recorded with the first part of this run
        if not new:
            new = [{"part": next_number, "ids": [], "failures": []}]
        new[0]["failures"] = failures
    problem = _check_disk(cfg, writer, pending, row_bytes)
    if problem:
        return problem
    try:
        with disk_full_is_input_error(writer.store.root):
            writer.write_plan({"parts": kept + new})
    except CacheError as err:
        return str(err)
    return kept + new, {p.utt.id: p.samples for p in pending}


def _check_disk(cfg: ExtractConfig, writer: FeatureSetWriter, pending: list[Pending], row_bytes: int) -> str | None:
    needed = sum(p.frames for p in pending) * row_bytes
    hours = sum(p.samples for p in pending) / SAMPLE_RATE / 3600
    free = shutil.disk_usage(writer.store.root).free
    per_100h = needed / max(hours, 1e-9) * 100 / 1e9
    print(f"{writer.name}: {len(pending)} utterances, {hours:.2f} h of audio; projected size "
          f"{needed / 1e9:.2f} GB uncompressed ({per_100h:.1f} GB per 100 h); free disk {free / 1e9:.1f} GB",
          file=sys.stderr)
    if needed * 1.05 > free and not cfg.force:
        return (f"{writer.store.root}: projected {needed / 1e9:.2f} GB does not fit in {free / 1e9:.2f} GB free; "
                "free space, pick fewer layers or a smaller dtype, or pass --force")
    return None


class _AudioBatches(torch.utils.data.Dataset):
    """Decodes one batch of audio per item; runs in DataLoader worker processes."""

    def __init__(self, jobs: list[tuple[int, list[Pending]]]):
        self.jobs = jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int):
        part, items = self.jobs[index]
        loaded = []
        for item in items:
            try:
                loaded.append((item, load(item.utt)))
            except AudioError as err:
                loaded.append((item, str(err)))
        return part, loaded


def _die_with_parent(_worker: int) -> None:
    """Decoding workers must not outlive a killed extractor (kill -9 skips every cleanup)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _run_parts(ctx, cfg: ExtractConfig, writer: FeatureSetWriter, encoder: AudioEncoder, layers: LayerSpec,
               frame_shape: list[int], parts: list[dict[str, Any]], samples: dict[str, int],
               utterances: dict) -> ExtractionSummary:
    summary = ExtractionSummary(writer.name)
    jobs: list[tuple[int, list[Pending]]] = []
    for part in parts:
        pending = [Pending(utterances[u], samples[u], 0) for u in part["ids"]]
        jobs += [(part["part"], b) for b in batches(pending, encoder.cost, int(cfg.batch_seconds * SAMPLE_RATE),
                                                    cfg.max_batch)]
    open_batches = Counter(number for number, _ in jobs)
    records: dict[int, list[UtteranceRecord]] = {p["part"]: [] for p in parts}
    failures: dict[int, list[dict[str, Any]]] = {p["part"]: list(p["failures"]) for p in parts}
    for part in parts:  # parts whose every utterance failed in the header check
        if part["part"] not in open_batches:
            open_batches[part["part"]] = 0
    loader = torch.utils.data.DataLoader(_AudioBatches(jobs), batch_size=None, num_workers=cfg.workers,
                                         prefetch_factor=4 if cfg.workers else None,
                                         worker_init_fn=_die_with_parent)
    total = sum(len(b) for _, b in jobs)
    bar = tqdm(total=total, unit="utt", desc=writer.name, disable=not (cfg.progress and ctx.is_main),
               dynamic_ncols=True)
    pool = ThreadPoolExecutor(max_workers=1)
    futures: list[Future] = []
    started = time.perf_counter()

    def commit(number: int) -> None:
        futures.append(pool.submit(_commit_part, writer, number, records.pop(number), frame_shape,
                                   failures.pop(number), {"rank": ctx.rank}))
        summary.parts += 1

    try:
        for number in [n for n, count in open_batches.items() if count == 0]:
            commit(number)
        for number, loaded in loader:
            _encode_batch(cfg, encoder, layers, loaded, records[number], failures[number], summary)
            open_batches[number] -= 1
            if open_batches[number] == 0:
                commit(number)
            _raise_writer_errors(futures)
            bar.update(len(loaded))
            hours = summary.audio_seconds / 3600
            elapsed = max(time.perf_counter() - started, 1e-9)
            bar.set_postfix_str(f"{hours / elapsed:.3g} audio-h/s ({summary.audio_seconds / elapsed:.1f}x realtime)")
    finally:
        bar.close()
        pool.shutdown(wait=True)
    for future in futures:
        summary.clipped += future.result().clipped
    return summary


def _commit_part(writer: FeatureSetWriter, *args: Any) -> PartSummary:
    """Commit one part (in the writer thread); a full disk stops the run with a message saying that the parts
    committed so far are kept and the same command resumes."""
    with disk_full_is_input_error(writer.store.root):
        return writer.commit_part(*args)


def _raise_writer_errors(futures: list[Future]) -> None:
    for future in futures:
        if future.done() and future.exception() is not None:
            raise future.exception()


def _encode_batch(cfg: ExtractConfig, encoder: AudioEncoder, layers: LayerSpec, loaded: list,
                  records: list[UtteranceRecord], failures: list[dict[str, Any]], summary: ExtractionSummary) -> None:
    good = []
    for item, audio in loaded:
        if isinstance(audio, str):
            _fail(cfg, item, AudioError(audio), failures)
        elif len(audio.samples) < encoder.min_samples:
            _fail(cfg, item, AudioError(f"{item.utt.path}: too short after decoding ({len(audio.samples)} samples; "
                                        f"needs {encoder.min_samples}) (utterance {item.utt.id!r})"), failures)
        else:
            good.append((item, audio))
    if not good:
        return
    outputs = encoder.encode([audio.samples for _, audio in good], layers)
    for (item, audio), frames in zip(good, outputs):
        expected = encoder.num_frames(len(audio.samples))
        if frames.shape[0] != expected:
            # the encoder's output length disagrees with its own num_frames: a bug, not bad input
            raise RuntimeError(f"{item.utt.id}: encoder returned {frames.shape[0]} frames, "
                               f"num_frames({len(audio.samples)}) = {expected}")
        if not torch.isfinite(frames).all():
            _fail(cfg, item, ExtractionError(f"{item.utt.path}: encoder output has NaN/inf (utterance "
                                             f"{item.utt.id!r}); try --precision fp32"), failures)
            continue
        records.append(UtteranceRecord(item.utt.id, frames.numpy(), audio.fingerprint, item.utt.source, audio.stat))
        summary.extracted += 1
        summary.audio_seconds += len(audio.samples) / SAMPLE_RATE


def _fail(cfg: ExtractConfig, item: Pending, err: Exception, failures: list[dict[str, Any]]) -> None:
    if cfg.on_error == "stop":
        raise ExtractionError(f"{err}\nStopped; every part committed so far is intact, the part in progress was "
                              "discarded. Fix the file, or pass --on-error skip.")
    failures.append(failure_record(item.utt, err))


def _report(summary: ExtractionSummary, store: Store) -> None:
    size = sum(p.stat().st_size for p in (store.root / summary.name).rglob("*") if p.is_file())
    lines = [
        f"{summary.name}: extracted {summary.extracted} utterances ({summary.audio_seconds / 3600:.2f} h) "
        f"in {summary.seconds:.1f} s into {summary.parts} part(s); {summary.already_done} were already there",
        f"  store: {store.root / summary.name} ({size / 1e6:.1f} MB on disk)",
    ]
    if summary.clipped:
        lines.append(f"  float16 guard: {summary.clipped} values beyond +-65504 were clipped "
                     "(--dtype bfloat16 keeps them)")
    if summary.failures:
        lines.append(f"  {len(summary.failures)} utterance(s) failed and were recorded in the store:")
        lines += [f"    {f['id']}: {f['error']}" for f in summary.failures[:20]]
    print("\n".join(lines), file=sys.stderr)

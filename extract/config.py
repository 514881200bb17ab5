"""The extraction configuration, shared by `extract-features` and `sercache.extract.run_extraction`."""

from __future__ import annotations

from dataclasses import dataclass, field

from sercache.cache.encoding import OVERFLOW_POLICIES, STORAGE_DTYPES
from sercache.cache.layout import BACKENDS
from sercache.cache.parts import COMPRESSIONS
from sercache.cache.writer import StorageConfig
from sercache.dataclass_cli import threads_field

from .encoders import PRECISIONS
from .manifest import DATA_ROOT_HELP
from .whisper import WHISPER_MODES

ON_ERROR = ("stop", "skip")  # what a run does with unusable audio (extract-features and transcribe)


@dataclass
class ExtractConfig:
    input: str = field(default="", metadata={
        "help": "manifest (.csv/.tsv/.jsonl with id,path[,start,end]) or audio directory "
                "(an MSP-Podcast root with Audios/ works as is); not used with --text"})
    data_root: str = field(default="", metadata={"help": DATA_ROOT_HELP})
    store: str = field(default="", metadata={"help": "store directory (created if missing)"})
    model: str = field(default="whisper-large-v3", metadata={
        "help": "short name (wavlm-large, hubert-xlarge, whisper-large-v3, ...), hub id, or local checkpoint "
                "directory"})
    layers: str = field(default="", metadata={
        "help": "hidden layers: -1, -3, -4..-1 (stacked), 3,6,9, all, mean(-4..-1) "
                "(default: -1 for audio, mean(-4..-1) for text encoders)"})
    text: str = field(default="", metadata={
        "help": "text encoders (roberta-large, ...): the store's text set to encode, e.g. asr/whisper-large-v2"})
    name: str = field(default="", metadata={
        "help": "feature-set name (default: MODEL/LAYER-TAG, e.g. wavlm-large/L-1)"})
    whisper_mode: str = field(default="padded", metadata={
        "help": "Whisper: padded = run 30-s input, keep valid frames; trimmed = run only the needed frames",
        "choices": WHISPER_MODES})
    backend: str = field(default="zarr", metadata={"help": "store backend", "choices": BACKENDS})
    dtype: str = field(default="float16", metadata={"help": "storage dtype", "choices": STORAGE_DTYPES})
    compression: str = field(default="none", metadata={
        "help": "chunk compression (fp16 features compress ~1.1x; see BENCHMARKS.md)", "choices": COMPRESSIONS})
    on_overflow: str = field(default="clip", metadata={
        "help": "float16 values beyond +-65504: clip and count, or error", "choices": OVERFLOW_POLICIES})
    on_error: str = field(default="stop", metadata={
        "help": "bad audio: stop before writing anything inconsistent, or skip it and record the failure",
        "choices": ON_ERROR})
    retry_failed: bool = field(default=False, metadata={"help": "retry utterances that failed in an earlier run"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N or auto (torchrun: cuda:LOCAL_RANK)"})
    precision: str = field(default="auto", metadata={
        "help": "compute precision (auto: bf16 on GPU, fp32 on CPU)", "choices": PRECISIONS})
    batch_seconds: float = field(default=240.0, metadata={
        "help": "audio per batch in seconds of compute (Whisper padded: 30 s per utterance)"})
    max_batch: int = field(default=64, metadata={"help": "utterances per batch at most"})
    workers: int = field(default=2, metadata={"help": "background audio-decoding processes (0 = decode inline)"})
    part_megabytes: float = field(default=256.0, metadata={"help": "features per committed part (unit of resume)"})
    chunk_frames: int = field(default=0, metadata={"help": "frames per chunk (0: about 1 MiB per chunk)"})
    shard_chunks: int = field(default=64, metadata={"help": "zarr: chunks per shard file (0: no sharding)"})
    force: bool = field(default=False, metadata={"help": "start even if the projected size exceeds free disk"})
    threads: int = threads_field()
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def storage(self) -> StorageConfig:
        return StorageConfig(backend=self.backend, dtype=self.dtype, compression=self.compression,
                             chunk_frames=self.chunk_frames, shard_chunks=self.shard_chunks,
                             part_megabytes=self.part_megabytes, on_overflow=self.on_overflow)

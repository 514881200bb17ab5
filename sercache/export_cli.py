"""`sercache export-head RUN --to DIR [--include-encoders]`: a trained head or ensemble as a directory that
`predict` loads anywhere (heads/after/export.py); with --include-encoders it also holds the encoders it runs
(sercache/bundle.py), which is why the command joins the stages."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from functools import partial

from sercache.heads.after.export import export_head
from sercache.heads.errors import HeadError

from .bundle import include_encoders
from .command import Command
from .dataclass_cli import add_dataclass_arguments, from_namespace
from .recorded_models import parse_model_paths


@dataclass
class ExportOptions:
    run: str = field(metadata={"positional": True, "help": "run directory of train-head or of ensemble"})
    to: str = field(metadata={"help": "new directory to write (must not exist or be empty)"})
    include_encoders: bool = field(default=False, metadata={
        "help": "also copy the encoders, ASR and AEC models the head runs into the export (hashes checked), so "
                "`sercache predict DIR audio.wav` needs no --model-path on another machine"})
    model_path: list[str] = field(default_factory=list, metadata={
        "help": "with --include-encoders: where a recorded model is, ROLE=PATH (roles audio, asr, aec, text) or "
                "RECORDED_NAME=PATH, when its recorded path is not on this machine"})
    onnx: bool = field(default=False, metadata={
        "help": "also write each head (each ensemble member) as head.onnx, an ONNX graph of the head alone on the "
                "cached features, checked against the torch head; `predict --engine onnx` runs it with onnxruntime "
                "and the model card says how to call it directly (needs the onnx package)"})


def _export(args: argparse.Namespace) -> None:
    o = from_namespace(ExportOptions, args)
    if o.model_path and not o.include_encoders:
        raise HeadError("--model-path applies with --include-encoders (it says which copy to bundle)")
    include = partial(include_encoders, overrides=parse_model_paths(o.model_path)) if o.include_encoders else None
    export_head(o.run, o.to, verbose=True, include=include, onnx=o.onnx)


EXPORT = Command(
    configure=lambda parser: add_dataclass_arguments(parser, ExportOptions),
    run=_export,
    description="Export a trained head or ensemble as a self-describing directory: safetensors weights, config, "
                "classes, provenance (encoders, weights hashes, layers, Whisper mode, ASR, AEC, text encoder), "
                "dev/test metrics and a model card (README.md); `predict` loads it with no run directory or "
                "store around. --include-encoders bundles the encoders' weights too; --onnx adds each head as an "
                "ONNX graph.",
    epilog="example:\n  sercache export-head runs/focal --to models/focal --include-encoders\n"
           "  sercache predict models/focal recording.wav\n"
           "  sercache export-head runs/focal --to models/focal-onnx --onnx\n"
           "  sercache predict models/focal-onnx --store cache/ --out preds/ --engine onnx",
)

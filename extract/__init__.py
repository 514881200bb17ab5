"""Stage 1: run frozen encoders once over a corpus and write frame-level features to a store."""

from .config import ExtractConfig
from .encoders import load_encoder
from .layers import parse_layers
from .manifest import Utterance, load_manifest
from .pipeline import ExtractionError, ExtractionSummary, run_extraction

__all__ = ["ExtractConfig", "ExtractionError", "ExtractionSummary", "Utterance", "load_encoder",
           "load_manifest", "parse_layers", "run_extraction"]

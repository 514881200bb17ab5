"""Token-level text features (RoBERTa-large in the paper): mean of the last 4 hidden layers per token.

Input is a text set of the store (human, ASR or corrected transcripts); the feature set records
which, so the trainer can refuse a train/test mismatch. Every utterance stores one row per token
including the special tokens (`<s> ... </s>`), plus the token ids. A text longer than the model's
maximum length is cut into consecutive windows, each encoded with its own special tokens; the
inner windows' special-token rows are dropped, so rows still equal tokens + 2 and no text is lost.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sercache import __version__
from sercache.cache import FeatureSetWriter, Store, UtteranceRecord
from sercache.cache.layout import disk_full_is_input_error
from sercache.cache.texts import TextSet, text_chain

from .bundled import resolve_bundled
from .encoders import default_set_name, pick_dtype, resolve_name, weights_digest
from .layers import LayerSpec, parse_layers
from .manifest import Utterance
from .plan import Pending, batches, make_parts, merge_plan

TEXT_TYPES = ("roberta", "xlm-roberta", "bert", "deberta", "deberta-v2", "electra", "camembert", "mpnet",
              "distilbert", "albert", "modernbert")
SHORT_NAMES = {"roberta-large": "FacebookAI/roberta-large", "roberta-base": "FacebookAI/roberta-base"}
DEFAULT_TEXT_LAYERS = "mean(-4..-1)"


def _resolve(model: str) -> str:
    return resolve_bundled(model) or SHORT_NAMES.get(model, resolve_name(model))


def is_text_model(model: str) -> bool:
    from transformers import AutoConfig

    if model in ("whisper-base-ct2", "whisper-base-openai", "whisper-base-hf"):
        return False
    name = _resolve(model)
    try:
        return AutoConfig.from_pretrained(name).model_type in TEXT_TYPES
    except Exception:
        return model in SHORT_NAMES


class TextEncoder:
    def __init__(self, model: str, device: torch.device, precision: str):
        from transformers import AutoModel, AutoTokenizer

        self.name = _resolve(model)
        self.device = device
        self.dtype = pick_dtype(precision, device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.name)
        self.model = AutoModel.from_pretrained(self.name, dtype=self.dtype).to(device).eval()
        cfg = self.model.config
        self.n_hidden = cfg.num_hidden_layers + 1
        self.dim = cfg.hidden_size
        limit = getattr(self.tokenizer, "model_max_length", 512)
        positions = getattr(cfg, "max_position_embeddings", 512) - (2 if cfg.model_type == "roberta" else 0)
        self.max_length = int(min(limit if limit < 100000 else positions, positions))
        self.prefix, self.suffix = self._special_tokens()

    def _special_tokens(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer puts before and after a text (<s> / </s> for RoBERTa, [CLS] / [SEP] for BERT)."""
        with_special = self.tokenizer("a")["input_ids"]
        plain = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        for start in range(len(with_special) - len(plain) + 1):
            if with_special[start:start + len(plain)] == plain:
                return with_special[:start], with_special[start + len(plain):]
        raise ValueError(f"{self.name}: cannot tell which special tokens the tokenizer adds")

    def tokens(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def windows(self, ids: list[int]) -> list[list[int]]:
        """Token windows with special tokens; an empty text still gives one window (<s></s>)."""
        room = self.max_length - len(self.prefix) - len(self.suffix)
        pieces = [ids[i:i + room] for i in range(0, len(ids), room)] or [[]]
        return [self.prefix + p + self.suffix for p in pieces]

    @property
    def n_special(self) -> int:
        return len(self.prefix) + len(self.suffix)

    @torch.inference_mode()
    def encode(self, token_lists: list[list[int]], layers: LayerSpec) -> list[tuple[torch.Tensor, np.ndarray]]:
        """Rows and token ids per text, from its token ids without special tokens (see tokens())."""
        owners, windows = [], []
        for i, tokens in enumerate(token_lists):
            for window in self.windows(tokens):
                owners.append(i)
                windows.append(window)
        width = max(len(w) for w in windows)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(windows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(windows), width), dtype=torch.long)
        for row, window in enumerate(windows):
            ids[row, :len(window)] = torch.tensor(window)
            mask[row, :len(window)] = 1
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), output_hidden_states=True)
        selected = layers.select((*out.hidden_states[:-1], out.last_hidden_state)).float().cpu()
        return self._stitch(len(token_lists), owners, windows, selected)

    def _stitch(self, n_texts: int, owners, windows, selected) -> list[tuple[torch.Tensor, np.ndarray]]:
        rows: list[list[torch.Tensor]] = [[] for _ in range(n_texts)]
        tokens: list[list[int]] = [[] for _ in range(n_texts)]
        counts = np.bincount(owners, minlength=n_texts)
        seen = [0] * n_texts
        for row, (owner, window) in enumerate(zip(owners, windows)):
            first, last = seen[owner] == 0, seen[owner] == counts[owner] - 1
            lo = 0 if first else len(self.prefix)
            hi = len(window) if last else len(window) - len(self.suffix)
            rows[owner].append(selected[row, lo:hi])
            tokens[owner] += window[lo:hi]
            seen[owner] += 1
        return [(torch.cat(r), np.asarray(t, dtype=np.int32)) for r, t in zip(rows, tokens)]


def text_fingerprint(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def text_feature_set_name(model: str, text_set: str, layers: LayerSpec, name: str = "") -> str:
    return name or f"{default_set_name(model)}/{text_set}/{layers.tag}"


@dataclass
class TextExtractionSummary:
    name: str
    extracted: int = 0
    already_done: int = 0
    windowed: int = 0
    seconds: float = 0.0


def run_text_extraction(cfg) -> TextExtractionSummary:
    """`extract-features --model roberta-large --text asr/whisper-large-v2` (cfg: ExtractConfig)."""
    started = time.perf_counter()
    layers = parse_layers(cfg.layers or DEFAULT_TEXT_LAYERS)
    store = Store.create(cfg.store, cfg.backend)
    source = TextSet(store, cfg.text)
    name = text_feature_set_name(cfg.model, cfg.text, layers, cfg.name)
    existing = store[name] if name in store else None
    todo = [u for u in sorted(source.records) if existing is None or u not in existing
            or existing.entry(u).fingerprint != text_fingerprint(source.text(u))]
    summary = TextExtractionSummary(name, already_done=len(source) - len(todo))
    if not todo:
        print(f"{name}: nothing to do; {summary.already_done} utterances already extracted", file=sys.stderr)
        return summary
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    encoder = TextEncoder(cfg.model, device, cfg.precision)
    frame_shape = [len(layers.resolve(encoder.n_hidden)), encoder.dim] if layers.stacked else [encoder.dim]
    writer = FeatureSetWriter(store, name, cfg.storage())
    writer.ensure_metadata({**_provenance(encoder, layers, frame_shape, source), "model_name": cfg.model,
                            "text_chain": text_chain(store, cfg.text)})
    writer.remove_temporaries()
    tokens = {u: encoder.tokens(source.text(u)) for u in todo}  # tokenised once: planning and encoding
    pending = [Pending(Utterance(u, ""), len(tokens[u]), len(tokens[u]) + encoder.n_special) for u in todo]
    kept, next_number = merge_plan(writer.read_plan(), set(writer.committed()), set(todo))
    covered = {u for part in kept for u in part["ids"]}
    plan = kept + make_parts([p for p in pending if p.utt.id not in covered],
                             cfg.storage().row_bytes(frame_shape), cfg.part_megabytes, next_number)
    writer.write_plan({"parts": plan})
    by_id = {p.utt.id: p for p in pending}
    bar = tqdm(total=len(todo), unit="utt", desc=name, disable=not cfg.progress)
    for part in plan:
        records = []
        for group in batches([by_id[u] for u in part["ids"]], lambda n: n + encoder.n_special, cfg.max_batch * 64,
                             cfg.max_batch):
            outputs = encoder.encode([tokens[p.utt.id] for p in group], layers)
            for item, (rows, ids) in zip(group, outputs):
                records.append(UtteranceRecord(item.utt.id, rows.numpy(), text_fingerprint(source.text(item.utt.id)),
                                               f"text:{cfg.text}", "", token_ids=ids))
                summary.windowed += int(item.samples > encoder.max_length - encoder.n_special)
            bar.update(len(group))
        with disk_full_is_input_error(store.root):
            writer.commit_part(part["part"], records, frame_shape)
        summary.extracted += len(records)
    bar.close()
    summary.seconds = time.perf_counter() - started
    note = f", {summary.windowed} longer than {encoder.max_length} tokens were windowed" if summary.windowed else ""
    print(f"{name}: extracted {summary.extracted} utterances in {summary.seconds:.1f} s{note}", file=sys.stderr)
    return summary


def _provenance(encoder: TextEncoder, layers: LayerSpec, frame_shape: list[int], source: TextSet) -> dict[str, Any]:
    import transformers

    return {
        "kind": "text", "model": encoder.name, "model_type": encoder.model.config.model_type,
        "model_revision": getattr(encoder.model.config, "_commit_hash", None),
        "weights_sha256": weights_digest(encoder.name), "layers": layers.text,
        "layer_indices": layers.resolve(encoder.n_hidden), "reduction": layers.reduce,
        "n_hidden_states": encoder.n_hidden, "frame_shape": frame_shape, "frame_rate": None, "sample_rate": None,
        "whisper_mode": None, "max_length": encoder.max_length,
        "compute_dtype": str(encoder.dtype).replace("torch.", ""),
        "text_source": {"name": source.name, "kind": source.kind, "model": source.meta.get("model"),
                        "source": source.meta.get("source"), "asr_model": source.meta.get("asr_model")},
        "toolkit": "sercache", "toolkit_version": __version__, "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }

"""Best checkpoints as safetensors (never pickle), with everything needed to trust them on reload.

The metadata records the class order, the model spec, the resolved config and the provenance of
every feature set, so that loading a head against a different class order or a cache with other
dims fails loudly instead of producing silently permuted predictions.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from sercache.cache.store import canonical_provenance

from ..errors import HeadError
from .model import FusionHead, HeadSpec

FORMAT = "sercache-head/1"
PROVENANCE_KEYS = ("model", "kind", "layers", "layer_indices", "frame_rate", "frame_shape", "reduction",
                   "weights_sha256", "whisper_mode", "dtype", "text_source")  # text_source: which transcripts


def save_head(path: str | Path, model: FusionHead, info: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "spec": json.dumps(asdict(model.spec)), "info": json.dumps(info, sort_keys=True)}
    save_file(tensors, str(path), metadata=meta)


def load_head(path: str | Path, classes: Sequence[str] | None = None,
              features: dict[str, list[dict]] | None = None, device: str = "cpu") -> tuple[FusionHead, dict]:
    """Rebuild a head; if `classes` / `features` (modality -> provenance dicts) are given they must match."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta.get("head") == "probe":
        raise HeadError(f"{path}: a logistic-regression probe (--head probe), not a neural head; load it with "
                        "load_checkpoint")
    spec = HeadSpec(**json.loads(meta["spec"]))
    info = json.loads(meta["info"])
    check_info(path, info, classes, features)
    model = FusionHead(spec)
    model.load_state_dict(load_file(str(path), device=device))
    return model.to(device).eval(), info


def read_metadata(path: str | Path) -> dict[str, str]:
    """A checkpoint's safetensors metadata, refusing files that are not sercache head checkpoints."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise HeadError(f"{path}: checkpoint not found")
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    if meta.get("format") != FORMAT:
        raise HeadError(f"{path}: not a sercache head checkpoint (format {meta.get('format')!r})")
    return meta


def check_info(path: str | Path, info: dict[str, Any], classes: Sequence[str] | None = None,
               features: dict[str, list[dict]] | None = None) -> None:
    """The class order and every feature set's provenance must be those the checkpoint was trained on."""
    if classes is not None and list(classes) != info["classes"]["letters"]:
        raise HeadError(f"{path}: class order {info['classes']['letters']} differs from the expected {list(classes)}")
    if features is not None:
        for modality, provenance in features.items():
            stored = info["features"].get(modality)
            if stored is None:
                raise HeadError(f"{path}: head has no {modality} input")
            for want, have in zip(provenance, stored):
                # heads trained on CTranslate2 sets of earlier versions recorded layer_indices [0] for the last layer
                want, have = canonical_provenance(want), canonical_provenance(have)
                clash = [k for k in PROVENANCE_KEYS if k in have and want.get(k) != have.get(k)]
                if clash or len(provenance) != len(stored):
                    raise HeadError(f"{path}: {modality} features differ from the training cache in "
                                    f"{', '.join(clash) or 'number of sets'}")


def provenance(meta: dict) -> dict:
    """What a checkpoint records of a feature set: the keys compared on load, and for text features the chain
    of transcripts behind them (ASR -> AEC settings), so `predict` can rerun it without the store."""
    out = {k: meta.get(k) for k in ("name", *PROVENANCE_KEYS)}
    if meta.get("text_chain"):
        out["text_chain"] = meta["text_chain"]
    return out

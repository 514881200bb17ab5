"""What made each feature set a head reads: the recipe that prediction from audio replays (encoder, layers, the
text chain ASR -> AEC -> text encoder), from the store, an export's provenance.json, or the checkpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sercache.cache import CacheError, open_store
from sercache.cache.texts import text_chain

from ..errors import HeadError
from ..fit.checkpoint import read_metadata

PROVENANCE_FILE = "provenance.json"


@dataclass
class FeatureRecipe:
    """How one feature set of a head was made: its featureset.json, and for text features the text sets
    it encodes, the encoded one first, down to the ASR transcripts (their textset.json)."""

    name: str
    meta: dict[str, Any]
    texts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"meta": self.meta, "texts": self.texts}


def head_recipes(run_dir: Path) -> dict[str, FeatureRecipe]:
    """Recipes of every feature set of one head directory (a train-head run or an exported head)."""
    config = json.loads((run_dir / "config.json").read_text())
    names = [*config.get("features", []), *config.get("text_features", [])]
    exported = run_dir / PROVENANCE_FILE
    if exported.is_file():
        recorded = json.loads(exported.read_text())
        missing = [n for n in names if n not in recorded]
        if missing:
            raise HeadError(f"{exported}: no provenance for feature set(s) {', '.join(missing)}")
        return {n: FeatureRecipe(n, recorded[n]["meta"], recorded[n].get("texts", [])) for n in names}
    recipes: dict[str, FeatureRecipe] = {}
    store = None
    try:
        store = open_store(config["store"]) if config.get("store") else None
    except CacheError:
        store = None
    if store is not None:
        for n in names:
            if n in store:
                meta = dict(store[n].meta)
                texts = meta.get("text_chain") or []
                if meta.get("kind") == "text" and not texts:
                    texts = text_chain(store, (meta.get("text_source") or {}).get("name", ""))
                recipes[n] = FeatureRecipe(n, meta, texts)
    if len(recipes) < len(names):  # the checkpoint's provenance: enough for audio features
        info = json.loads(read_metadata(run_dir / "best.safetensors")["info"])
        stored = {p.get("name"): p for ps in info.get("features", {}).values() for p in ps}
        for n in names:
            if n not in recipes and n in stored:
                recipes[n] = FeatureRecipe(n, dict(stored[n]), list(stored[n].get("text_chain") or []))
    missing = [n for n in names if n not in recipes]
    if missing:
        raise HeadError(f"{run_dir}: no provenance for feature set(s) {', '.join(missing)} (neither in the store "
                        f"{config.get('store')!r} nor in the checkpoint)")
    return recipes

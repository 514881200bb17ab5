"""The models a head's feature recipes name (audio encoder, ASR, AEC, text encoder), and where each is on this
machine: `--model-path`, an export's bundled copy, its recorded path, a bundled name or a hub id, in that order;
its weights must hash to the value recorded when the features were made, or the head would read features of
other weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from sercache.extract.bundled import resolve_bundled
from sercache.extract.encoders import model_digest
from sercache.heads.after.recipes import FeatureRecipe
from sercache.heads.errors import HeadError

MODEL_ROLES = ("audio", "asr", "aec", "text")  # the role names of --model-path, in pipeline order


def parse_model_paths(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise HeadError(f"--model-path {item!r}: expected NAME=PATH (NAME: {', '.join(MODEL_ROLES)} or the "
                            "recorded model)")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class ModelNeed:
    """One recorded model: its --model-path role, what it is (for messages), the names it was recorded under
    (path first) and its weights' digest."""

    role: str
    what: str
    names: tuple[str, ...]
    digest: str | None

    @property
    def key(self) -> str:
        """How an export's bundled copy is found: by its weights, so that two models recorded under one name
        (Whisper as audio encoder and as ASR) stay apart."""
        return f"sha256:{self.digest}" if self.digest else f"{self.role}:{self.names[0] if self.names else ''}"

    def resolve(self, overrides: Mapping[str, str]) -> str:
        """A local path (or hub id) for this model whose weights hash to the recorded digest; `overrides` maps
        roles and recorded names (--model-path) and bundle keys (an export's copies) to paths."""
        chosen = next((overrides[k] for k in (self.role, *self.names, self.key) if k in overrides), None)
        chosen = chosen or next((c for c in self.names if Path(c).exists()), None) or self._bundled()
        chosen = chosen or next((c for c in self.names if not Path(c).is_absolute() and c.count("/") == 1), None)
        hint = f"pass --model-path {self.role}=PATH"
        if chosen is None:
            raise HeadError(f"the {self.what} recorded as {' / '.join(map(repr, self.names)) or 'nothing'} is not "
                            f"available on this machine; {hint}")
        if self.digest:
            have = model_digest(chosen)
            if have is None:
                raise HeadError(f"the {self.what} {chosen!r} is not available (no weights found); {hint}")
            if have != self.digest:
                raise HeadError(f"the {self.what} {chosen!r} has weights sha256 {have[:12]}..., but the head was "
                                f"trained on features of weights {self.digest[:12]}...; {hint} with the recorded "
                                "weights")
        return chosen

    def _bundled(self) -> str | None:
        for name in self.names:
            try:
                return str(resolve_bundled(name))
            except FileNotFoundError:
                continue
        return None


def _names(*values: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(v) for v in values if v))


def encoder_need(recipe: FeatureRecipe) -> ModelNeed:
    """The audio or text encoder that made a feature set."""
    meta = recipe.meta
    role, what = ("text", "text encoder") if meta.get("kind") == "text" else ("audio", "audio encoder")
    return ModelNeed(role, f"{what} of {recipe.name!r}", _names(meta.get("model"), meta.get("model_name")),
                     meta.get("weights_sha256"))


def text_model_need(meta: Mapping[str, Any]) -> ModelNeed:
    """The ASR model of an ASR text set, or the AEC model of a corrected one."""
    if meta.get("kind") == "corrected":
        return ModelNeed("aec", f"AEC model of text set {meta.get('name')!r}",
                         _names(meta.get("model_path"), meta.get("model")), meta.get("aec_weights_sha256"))
    return ModelNeed("asr", f"ASR model of text set {meta.get('name')!r}",
                     _names(meta.get("model_path"), meta.get("model")), meta.get("weights_sha256"))


def recipe_needs(recipes: Mapping[str, FeatureRecipe]) -> Iterator[ModelNeed]:
    """Every model the recipes run, in pipeline order per recipe (duplicates included)."""
    for recipe in recipes.values():
        if recipe.meta.get("kind") == "text":
            for meta in reversed(recipe.texts):
                if meta.get("kind") in ("asr", "corrected"):
                    yield text_model_need(meta)
        yield encoder_need(recipe)

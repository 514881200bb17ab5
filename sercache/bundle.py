"""`export-head --include-encoders`: the models a head's features need, copied into its export, so that
`sercache predict EXPORT audio.wav` runs on a machine that has none of them.

The copies live under `encoders/` and are listed in `encoders.json` with the weights digest each was recorded
with; `predict` finds a model there by that digest and checks the copy's hash before it loads it, as it does
for any other path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping

from huggingface_hub import snapshot_download

from sercache.extract.encoders import model_digest
from sercache.heads.after.recipes import FeatureRecipe
from sercache.heads.errors import HeadError

from .recorded_models import ModelNeed, recipe_needs

BUNDLE_DIR = "encoders"
BUNDLE_FILE = "encoders.json"


def include_encoders(to: Path, recipes: Mapping[str, FeatureRecipe], overrides: Mapping[str, str]
                     ) -> list[dict[str, Any]]:
    """Copy every model the recipes run into `to/encoders/` (each once), check the copies' hashes, write
    encoders.json; returns its entries."""
    entries: dict[str, dict[str, Any]] = {}
    for need in recipe_needs(recipes):
        if need.key in entries:  # one copy per weights (Whisper as audio encoder and as ASR)
            entries[need.key]["roles"] = list(dict.fromkeys([*entries[need.key]["roles"], need.role]))
            continue
        source = _local(need.resolve(overrides), need)
        rel = f"{BUNDLE_DIR}/{len(entries):02d}-{source.name}"
        target = to / rel
        if source.is_dir():
            shutil.copytree(source, target)  # symlinks (a hub cache's blobs) are copied as files
        else:
            target.mkdir(parents=True)
            shutil.copyfile(source, target / source.name)
            rel, target = f"{rel}/{source.name}", target / source.name
        if need.digest and model_digest(str(target)) != need.digest:
            raise HeadError(f"{target}: the copy of the {need.what} does not hash to the recorded weights")
        entries[need.key] = {"roles": [need.role], "what": need.what, "names": list(need.names), "path": rel,
                             "weights_sha256": need.digest, "bytes": _size(target)}
    (to / BUNDLE_FILE).write_text(json.dumps({"models": list(entries.values())}, indent=2) + "\n")
    return list(entries.values())


def bundled_models(model_dir: Path) -> dict[str, str]:
    """Bundle key -> path of the copies an export holds (none for a run or an export without encoders)."""
    manifest = model_dir / BUNDLE_FILE
    if not manifest.is_file():
        return {}
    models = json.loads(manifest.read_text())["models"]
    return {ModelNeed(m["roles"][0], m["what"], tuple(m["names"]), m["weights_sha256"]).key:
            str(model_dir / m["path"]) for m in models}


def _local(path: str, need: ModelNeed) -> Path:
    """A resolved model as files on this disk (a hub id: its cached snapshot)."""
    if Path(path).exists():
        return Path(path).resolve()
    try:
        return Path(snapshot_download(path, local_files_only=True))
    except Exception as err:
        raise HeadError(f"the {need.what} {path!r} is not on this disk ({err}); pass --model-path "
                        f"{need.role}=PATH") from None


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

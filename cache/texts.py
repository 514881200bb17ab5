"""Text sets: transcripts (human, ASR, corrected) stored beside the feature sets.

`STORE/texts/<name>/textset.json` says where the text came from; `parts/pNNNNNN.jsonl` hold
one JSON object per utterance (`id`, `text`, plus backend-specific fields such as
`avg_logprob` and `no_speech_prob`). A part is written whole under a `.tmp-` name, then
hard-linked to the next free part number: the link appears atomically and never replaces a
committed part, so transcription resumes after a kill, never shows a torn file, and concurrent
writers each keep their parts. A later part wins when an id appears twice.
"""

from __future__ import annotations

import csv
import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .layout import (
    PARTS_DIR,
    SCHEMA_VERSION,
    TMP_PREFIX,
    CacheError,
    check_featureset_name,
    fsync_tree,
    read_json,
    write_json_atomic,
)
from .store import Store, committed_parts

TEXTS_DIR = "texts"
TEXTSET_FILE = "textset.json"
TEXT_KINDS = ("human", "asr", "corrected")


def text_sets(store: Store) -> list[str]:
    root = store.root / TEXTS_DIR
    if not root.is_dir():
        return []
    return sorted(p.parent.relative_to(root).as_posix() for p in root.rglob(TEXTSET_FILE))


class TextSet:
    """Read-only view of one text set."""

    def __init__(self, store: Store, name: str):
        self.name = check_featureset_name(name)
        self.path = store.root / TEXTS_DIR / name
        if not (self.path / TEXTSET_FILE).is_file():
            available = ", ".join(text_sets(store)) or "none"
            raise CacheError(f"{store.root}: no text set {name!r} (available: {available})")
        self.meta: dict[str, Any] = read_json(self.path / TEXTSET_FILE)
        self.records: dict[str, dict[str, Any]] = {}
        for _, path in sorted(committed_parts(self.path, ("jsonl",)).items()):
            with open(path) as handle:
                for number, line in enumerate(handle, 1):
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        raise CacheError(f"{path}:{number}: not valid JSON") from None
                    self.records[record["id"]] = record

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, uid: str) -> bool:
        return uid in self.records

    def text(self, uid: str) -> str:
        try:
            return self.records[uid]["text"]
        except KeyError:
            raise KeyError(f"utterance {uid!r} has no text in text set {self.name!r}") from None

    def export(self, path: str | Path) -> None:
        """Write CSV (.csv) or JSONL (anything else) with every field of every record."""
        path = Path(path)
        rows = [self.records[u] for u in sorted(self.records)]
        if path.suffix.lower() == ".csv":
            fields = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("id", "text"), k))
            with open(path, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)
        else:
            with open(path, "w") as handle:
                handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


class TextSetWriter:
    def __init__(self, store: Store, name: str):
        self.store = store
        self.name = check_featureset_name(name)
        self.path = store.root / TEXTS_DIR / name

    def ensure_metadata(self, provenance: dict[str, Any], identity: Iterable[str] = ("kind", "model", "source")
                        ) -> dict[str, Any]:
        if provenance.get("kind") not in TEXT_KINDS:
            raise CacheError(f"text set kind must be one of {TEXT_KINDS}, got {provenance.get('kind')!r}")
        meta_path = self.path / TEXTSET_FILE
        meta = dict(provenance, name=self.name, schema_version=SCHEMA_VERSION)
        if meta_path.exists():
            existing = read_json(meta_path)
            clash = [k for k in identity if existing.get(k) != meta.get(k)]
            if clash:
                raise CacheError(f"{self.path}: text set exists with different "
                                 + ", ".join(f"{k} ({existing.get(k)!r} vs {meta.get(k)!r})" for k in clash)
                                 + "; choose another --name")
            return existing
        meta["created"] = datetime.now(timezone.utc).isoformat()
        write_json_atomic(meta_path, meta)
        return meta

    def done(self) -> set[str]:
        return set(TextSet(self.store, self.name).records) if (self.path / TEXTSET_FILE).exists() else set()

    def commit(self, records: list[dict[str, Any]]) -> Path:
        """Append one part holding these records; visible to readers only when complete."""
        for record in records:
            if not isinstance(record.get("id"), str) or not isinstance(record.get("text"), str):
                raise CacheError(f"text record needs string 'id' and 'text': {record!r}")
        parts = self.path / PARTS_DIR
        parts.mkdir(parents=True, exist_ok=True)
        tmp = parts / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"  # one per writer, even threads
        try:
            with open(tmp, "x") as handle:
                handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            fsync_tree(tmp)
            return self._link_next(tmp, parts)
        finally:
            tmp.unlink(missing_ok=True)

    def _link_next(self, tmp: Path, parts: Path) -> Path:
        """Commit `tmp` under the next free part number. A hard link never replaces an existing file
        (os.rename would), so a concurrent writer that took the same number makes this one take the
        next number instead of silently overwriting a committed part."""
        number = max(committed_parts(self.path, ("jsonl",)), default=-1) + 1
        while True:
            final = parts / f"p{number:06d}.jsonl"
            try:
                os.link(tmp, final)
                return final
            except FileExistsError:
                number += 1


def text_chain(store: Store, name: str) -> list[dict[str, Any]]:
    """The metadata of a text set and of the sets it was made from (corrected -> ASR), top first: how
    `predict` reproduces the text of new audio (ASR model and decoding, AEC model, hash and decoding)."""
    chain: list[dict[str, Any]] = []
    while name and all(m.get("name") != name for m in chain):
        path = store.root / TEXTS_DIR / name / TEXTSET_FILE
        if not path.is_file():
            break
        meta = read_json(path)
        chain.append(meta)
        name = meta.get("source") if meta.get("kind") == "corrected" else None
    return chain

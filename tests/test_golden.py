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

import numpy as np
import pytest
import torch

from sercache.cli import main
from sercache.heads import HeadConfig, train
from sercache.testing import make_synthetic_corpus

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


def write_iemocap(root: Path) -> tuple[Path, Path]:
    """An IEMOCAP-format release (5 sessions of EmoEvaluation files) and a store of its utterances."""
    from sercache.cache import FeatureSetWriter, StorageConfig, Store, UtteranceRecord

    rng = np.random.default_rng(3)
    codes = ["ang", "hap", "exc", "sad", "neu", "fru"]
    direction = {"ang": 0, "hap": 1, "exc": 1, "sad": 2, "neu": 3, "fru": 4}
    records = []
    for s in range(1, 6):
        folder = root / "IEMOCAP" / f"Session{s}" / "dialog" / "EmoEvaluation"
        folder.mkdir(parents=True)
        lines = []
        for i in range(30):
            code = codes[i % len(codes)]
            uid = f"Ses0{s}F_impro0{i % 3 + 1}_{'FM'[i % 2]}{i:03d}"
            lines.append(f"[{i}.0 - {i + 1}.5]\t{uid}\t{code}\t[2.5000, 3.0000, 3.5000]")
            x = rng.normal(size=(int(rng.integers(6, 20)), 6)).astype(np.float32)
            x[:, direction[code]] += 1.0
            records.append(UtteranceRecord(f"{uid}.wav", x, "f", "s", ""))
        (folder / f"Ses0{s}F_impro01.txt").write_text("% header\n\n" + "\n\n".join(lines) + "\n")
    store = Store.create(root / "store")
    writer = FeatureSetWriter(store, "syn/L-1", StorageConfig())
    writer.ensure_metadata({"model": "syn", "kind": "audio", "frame_rate": 50.0, "sample_rate": 16000,
                            "frame_shape": [6], "layers": "-1", "layer_indices": [-1], "reduction": "none",
                            "whisper_mode": None, "weights_sha256": None})
    writer.commit_part(0, records, frame_shape=[6])
    return root / "IEMOCAP", root / "store"


def test_iemocap_fold_gives_the_golden_outputs(tmp_path):
    release, store = write_iemocap(tmp_path)
    out = tmp_path / "fold1"
    train(HeadConfig(store=str(store), features=["syn/L-1"], corpus="iemocap", labels=str(release), fold="1",
                     out=str(out), **{**TINY, "hidden": 8, "d_model": 8, "ff_dim": 16, "batch_size": 16}),
          verbose=False)
    compare(out, "iemocap_fold1")

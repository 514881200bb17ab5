"""`sercache bench` on three corpus-shaped draws (MSP-Podcast, IEMOCAP, EmoBox layouts) with a tiny encoder:
every cell of the train x test matrix is filled from the runs it names, the diagonal by each corpus's own
protocol, and a rerun trains nothing again."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sercache.bench import class_key
from sercache.benchcorpus import BenchSizes, EmoboxSizes, IemocapSizes, synthesize_bench_corpus
from sercache.cli import main

FOUR = {"A": 1.0, "H": 1.0, "N": 1.0, "S": 1.0}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    synthesize_bench_corpus(root / "msp", BenchSizes(train=64, dev=24, test1=24, test2=0, test3=0, class_shares=FOUR),
                            jobs=2)
    synthesize_bench_corpus(root / "iemo", IemocapSizes(utterances=150, per_dialog=10), jobs=2)
    synthesize_bench_corpus(root / "ebox", EmoboxSizes(utterances=96, speakers=8, name="acted", class_shares=FOUR),
                            jobs=2)
    return root


def test_class_keys_match_names_across_corpora():
    assert {class_key(n) for n in ("Angry", "anger", "ang", "ANG")} == {"ang"}
    assert class_key("Happy+Excited") == class_key("happiness") == "hap"


def test_bench_fills_the_matrix_and_reuses_finished_runs(corpora, tiny_models, capsys):
    out = corpora / "out"
    argv = ["bench", "--corpora", f"msp={corpora / 'msp'}", f"iemocap={corpora / 'iemo'}",
            f"emobox:acted={corpora / 'ebox' / 'data' / 'acted'}", "--model", tiny_models["wavlm"],
            "--heads", "probe", "baseline", "--seeds", "0", "1", "--max-epochs", "2", "--device", "cpu",
            "--threads", "1", "--out", str(out)]
    with pytest.warns(UserWarning):
        assert main(argv) == 0
    result = json.loads((out / "bench.json").read_text())
    names = ["msp", "iemocap", "acted"]
    assert result["corpora"]["iemocap"]["classes"] == ["A", "H", "N", "S"]
    assert result["corpora"]["acted"]["classes"] == ["Angry", "Happy", "Neutral", "Sad"]
    for head in ("probe", "baseline"):
        for r in names:
            for c in names:
                cell = result["cells"][head][r][c]["macro_f1"]
                assert len(cell["values"]) == 2 and 0 <= cell["mean"] <= 1, (head, r, c)
    # the diagonal is the protocol's: IEMOCAP's 5 folds per seed, averaged; EmoBox's 2 speaker folds
    iemocap = out / "runs" / "iemocap" / "probe"
    per_seed = []
    for seed in (0, 1):
        folds = [json.loads((iemocap / f"seed{seed}" / f"fold{k}" / "metrics.json").read_text())["splits"]["test"]
                 for k in range(1, 6)]
        per_seed.append(np.mean([f["macro_f1"] for f in folds]))
    assert result["cells"]["probe"]["iemocap"]["iemocap"]["macro_f1"]["values"] == pytest.approx(per_seed)
    assert sorted(p.name for p in (out / "runs" / "acted" / "probe" / "seed0").glob("fold*") if p.is_dir()) == [
        "fold1", "fold2"]
    # off the diagonal: a model trained on all of the row's corpus but its dev part
    whole = json.loads((out / "runs" / "msp" / "whole" / "probe" / "seed0" / "config.json").read_text())
    assert whole["fold"] == "whole" and whole["resolved"]["rows"]["predict_dev"] > 0
    table = (out / "bench.md").read_text()
    assert "| train \\ test | msp | iemocap | acted |" in table
    assert all((out / f"bench_{h}.png").stat().st_size > 0 for h in ("probe", "baseline"))

    stamp = (iemocap / "seed0" / "fold1" / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    assert (iemocap / "seed0" / "fold1" / "metrics.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "bench.json").read_text())["cells"] == result["cells"]

"""CLI built from the config dataclass, sweeps over one loaded copy, IEMOCAP folds, generic CSV corpora."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from sercache.cli import build_parser
from sercache.dataclass_cli import from_namespace
from sercache.heads import HeadConfig, train
from sercache.heads import sweep as run_sweep
from sercache.heads.cli import main
from sercache.heads.errors import HeadError
from sercache.heads.fit.plan import ineffective
from sercache.heads.fit.sweep import expand
from sercache.testing import make_synthetic_corpus, write_iemocap_corpus

torch.set_num_threads(1)
FLAGS = ["--hidden", "8", "--d-model", "8", "--ff-dim", "16", "--batch-size", "32", "--max-epochs", "1",
         "--no-progress"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_synthetic_corpus(tmp_path_factory.mktemp("cli"), n_train=120, n_dev=48, n_test=16, audio_dim=8,
                                 text_dim=4, mean_seconds=0.3, std_seconds=0.1, seed=11)


def base_flags(corpus, out):
    return ["--store", str(corpus.store), "--features", corpus.audio, "--text-features", corpus.text,
            "--labels", str(corpus.consensus), "--detailed", str(corpus.detailed), "--out", str(out), *FLAGS]


def test_parser_is_generated_from_the_dataclass():
    args = build_parser("train").parse_args(["--features", "a/L-1,a/L-3", "b/L-2", "--loss", "focal", "--gamma",
                                             "2.5", "--include-ox", "--no-progress", "--soft-labels", "S"])
    cfg = from_namespace(HeadConfig, args)
    assert cfg.features == ["a/L-1", "a/L-3", "b/L-2"]
    assert (cfg.loss, cfg.gamma, cfg.include_ox, cfg.progress, cfg.soft_labels) == ("focal", 2.5, True, False, "S")
    assert cfg.lr == 1e-4 and cfg.batch_size == 128 and cfg.max_epochs == 20 and cfg.heads == 1  # paper defaults
    with pytest.raises(SystemExit):
        build_parser("train").parse_args(["--weights", "inverse"])


def test_cli_run_prints_summary_and_config_roundtrip(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(base_flags(corpus, out) + ["--loss", "focal", "--gamma", "2", "--weights", "prior"]) == 0
    printed = capsys.readouterr().out
    assert "Macro-F1" in printed and "WA = " in printed and "per-class F1 (dev)" in printed
    first = json.loads((out / "metrics.json").read_text())["splits"]["dev"]
    # a run's config.json can be fed back; explicit flags win
    assert main(["--config", str(out / "config.json"), "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())["splits"]["dev"]
    assert again == first
    assert json.loads((tmp_path / "again" / "config.json").read_text())["loss"] == "focal"
    capsys.readouterr()
    assert main(["--config", str(out / "config.json"), "--gamma", "3", "--print-config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["gamma"] == 3.0 and shown["loss"] == "focal"


def test_expand_grid_preset_and_file(tmp_path):
    grid = expand("loss=ce,focal;gamma=2,2.5;include_ox=true")
    assert len(grid) == 4 and grid[3] == {"loss": "focal", "gamma": 2.5, "include_ox": True}
    assert expand("features=a/L-1+a/L-3")[0]["features"] == ["a/L-1", "a/L-3"]
    seven = expand("sheffield7")
    assert len(seven) == 7 and seven[6] == {"loss": "focal", "gamma": 3.0, "weights": "prior",
                                           "features": ["hubert-xlarge/L-1"]}  # text: from the command line
    path = tmp_path / "configs.json"
    path.write_text(json.dumps({"base": {"loss": "focal"}, "configs": [{"gamma": 2.0}, {"gamma": 3.0}]}))
    assert expand(str(path)) == [{"loss": "focal", "gamma": 2.0}, {"loss": "focal", "gamma": 3.0}]
    with pytest.raises(HeadError, match="unknown config key 'gama'"):
        expand("gama=2")


def test_sweep_one_table_and_rank_sharding(corpus, tmp_path, monkeypatch):
    base = HeadConfig(store=str(corpus.store), features=[corpus.audio], labels=str(corpus.consensus),
                      out=str(tmp_path / "sweep"), hidden=8, d_model=8, ff_dim=16, batch_size=32, max_epochs=1,
                      progress=False)
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "barrier", lambda: None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert run_sweep(base, "loss=ce,focal;weights=prior", verbose=False) == []  # rank 1: config 1 only
    assert sorted(p.name for p in (tmp_path / "sweep" / "results").iterdir()) == ["001.json"]
    monkeypatch.setenv("RANK", "0")
    rows = run_sweep(base, "loss=ce,focal;weights=prior", verbose=False)
    assert [r["index"] for r in rows] == [0, 1]
    for row in rows:
        run = json.loads((tmp_path / "sweep" / "runs" / row["name"] / "metrics.json").read_text())
        assert row["dev_macro_f1"] == run["splits"]["dev"]["macro_f1"]
    table = list(csv.DictReader(open(tmp_path / "sweep" / "results.csv")))
    assert len(table) == 2 and (tmp_path / "sweep" / "results.md").read_text().startswith("| index")


def test_generic_csv_corpus(corpus, tmp_path):
    rows = list(csv.DictReader(open(corpus.consensus)))
    path = tmp_path / "generic.csv"
    names = {"A": "angry", "S": "sad", "H": "happy", "N": "neutral"}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "split", "speaker", "gender", "arousal"])
        for r in rows:
            if r["EmoClass"] in names:
                split = {"Train": "train", "Development": "dev", "Test1": "test"}[r["Split_Set"]]
                writer.writerow([r["FileName"], names[r["EmoClass"]], split, r["SpkrID"], r["Gender"], r["EmoAct"]])
    cfg = HeadConfig(store=str(corpus.store), features=[corpus.audio], corpus="csv", labels=str(path),
                     classes=["neutral", "happy", "angry", "sad"], out=str(tmp_path / "g"), hidden=8, d_model=8,
                     ff_dim=16, batch_size=32, max_epochs=1, progress=False)
    result = train(cfg, verbose=False)
    assert list(result.summary["splits"]["dev"]["per_class_f1"]) == ["neutral", "happy", "angry", "sad"]
    assert "test" in result.summary["splits"]


def test_iemocap_leave_one_session_out(tmp_path):
    write_iemocap_corpus(tmp_path, 24, lambda rng: 12, shift=3.0, seed=0)
    cfg = HeadConfig(store=str(tmp_path / "store"), features=["syn/L-1"], corpus="iemocap",
                     labels=str(tmp_path / "IEMOCAP"), fold="all", out=str(tmp_path / "folds"), hidden=8,
                     d_model=8, ff_dim=16, batch_size=16, max_epochs=2, progress=False, lr=3e-3)
    result = train(cfg, verbose=False)
    summary = json.loads((tmp_path / "folds" / "folds.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == [1, 2, 3, 4, 5]
    assert all(f["n"] == 20 for f in summary["folds"])  # 24 per session minus 4 'fru'
    assert summary["UA_mean"] == pytest.approx(np.mean([f["UA"] for f in summary["folds"]]))
    assert result.summary["WA_mean"] == summary["WA_mean"]
    fold1 = json.loads((tmp_path / "folds" / "fold1" / "config.json").read_text())["resolved"]["rows"]
    assert fold1["train"] == 60 and fold1["dev"] == 20  # sessions 3-5 train, session 2 dev


def test_package_train_stays_the_function_after_use():
    import sercache.heads as heads
    import sercache.heads.fit.train  # noqa: F401  (importing a submodule must not shadow the function)
    assert callable(heads.train) and heads.train.__module__ == "sercache.heads.api"


def test_preset_sits_under_config_file_and_typed_flags(tmp_path, capsys):
    from sercache.heads.fit.config import PRESETS

    small = PRESETS["small-data"]
    main(["--preset", "small-data", "--features", "a", "--print-config"])
    printed = json.loads(capsys.readouterr().out)
    assert {k: printed[k] for k in small} == small and printed["preset"] == "small-data"
    main(["--preset", "small-data", "--lr", "1e-4", "--features", "a", "--print-config"])  # typed = the default
    assert json.loads(capsys.readouterr().out)["lr"] == 1e-4
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"preset": "small-data", "d_model": 64}))
    main(["--config", str(cfg), "--features", "a", "--print-config"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["d_model"] == 64 and printed["hidden"] == small["hidden"]
    assert HeadConfig.from_values({"preset": "small-data", "batch_size": 8}).batch_size == 8
    with pytest.raises(HeadError, match="unknown"):
        HeadConfig.from_values({"preset": "huge-data"})


def test_settings_that_change_nothing_are_warned_about(corpus, tmp_path, monkeypatch):
    import sercache.heads.api as api

    trained = []
    monkeypatch.setattr(api, "train", lambda cfg: trained.append(cfg))
    audio_only = base_flags(corpus, tmp_path / "a")
    audio_only = audio_only[:4] + audio_only[6:]  # no --text-features
    with pytest.warns(UserWarning) as caught:
        assert main(audio_only + ["--lockstep", "--unimodal-weight", "0.5", "--modality-dropout", "0.2"]) == 0
    said = " ".join(str(w.message) for w in caught)
    assert "--lockstep" in said and "--unimodal-weight" in said and "--modality-dropout" in said and len(trained) == 1
    cfg = HeadConfig(features=["a/L-1"], text_features=["t"], seeds=[0, 1], lockstep=True, unimodal_weight=0.5,
                     modality_dropout=0.2)
    assert ineffective(cfg) == [] and ineffective(HeadConfig(features=["a"], lockstep=True), sweep=True) == []
    said = [ineffective(cfg.replace(seeds=[0])), ineffective(cfg.replace(head="probe")),
            ineffective(cfg.replace(loss="ccc", task="avd"))]
    assert [len(s) for s in said] == [1, 1, 1]
    assert "fewer than two --seeds" in said[0][0] and "probe" in said[1][0] and "--task avd" in said[2][0]

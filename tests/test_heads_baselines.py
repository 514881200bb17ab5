"""Baselines (--head probe / baseline), seeds (--seeds) and seed statistics on tiny synthetic caches."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from sercache.heads import HeadConfig, train
from sercache.heads.after.ensemble import build_ensemble
from sercache.heads.after.outputs import find_runs, load_run
from sercache.heads.after.predict import predict, read_submission
from sercache.heads.after.report import build_report
from sercache.heads.after.seedstats import group_runs, mean_std, paired_difference
from sercache.heads.errors import HeadError
from sercache.heads.fit.checkpoint import load_head
from sercache.heads.fit.model import AttentiveStatsPool
from sercache.heads.fit.plan import check, parse_seeds
from sercache.heads.fit.probe import GRID, ProbeHead, load_checkpoint
from sercache.heads.inputs.corpora.msp import MSP_CLASSES
from sercache.testing import make_synthetic_corpus

torch.set_num_threads(1)
TINY = dict(hidden=8, d_model=8, ff_dim=16, batch_size=32, max_epochs=1, progress=False, lr=3e-3,
            eval_batch_size=64)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_synthetic_corpus(tmp_path_factory.mktemp("base"), n_train=160, n_dev=64, n_test=40, audio_dim=12,
                                 text_dim=6, mean_seconds=0.4, std_seconds=0.15, signal=0.25, text_signal=0.25, seed=11)


def config(corpus, out, **changes):
    base = dict(store=str(corpus.store), features=[corpus.audio], text_features=[corpus.text],
                labels=str(corpus.consensus), out=str(out), **TINY)
    base.update(changes)
    return HeadConfig(**base)


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def probs_of(rows):
    return np.array([[float(r[f"prob_{c}"]) for c in MSP_CLASSES] for r in rows])


@pytest.fixture(scope="module")
def probe_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("probe") / "fused"
    train(config(corpus, out, head="probe", weights="prior"), verbose=False)
    return out


@pytest.fixture(scope="module")
def paper_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("paper") / "paper"
    train(config(corpus, out, seed=3), verbose=False)
    return out


# ----------------------------------------------------------------------------------- probe
def _pooled_by_hand(corpus, modalities):
    """Mean over frames of every utterance, straight from the store (float64), concatenated."""
    from sercache.cache import open_store

    store = open_store(corpus.store)
    names = {"audio": corpus.audio, "text": corpus.text}
    sets = [store[names[m]] for m in modalities]
    return lambda uid: np.concatenate([np.asarray(s.get(uid), np.float64).mean(0) for s in sets])


@pytest.mark.parametrize("modalities", [("audio",), ("text",), ("audio", "text")])
def test_probe_equals_sklearn_on_mean_pooled_standardised_features(corpus, tmp_path, modalities):
    out = tmp_path / "probe"
    weights = "prior" if len(modalities) == 2 else "uniform"
    train(config(corpus, out, head="probe", weights=weights,
                 features=[corpus.audio] if "audio" in modalities else [],
                 text_features=[corpus.text] if "text" in modalities else []), verbose=False)
    labels = read_csv(corpus.consensus)
    pool = _pooled_by_hand(corpus, modalities)

    def split(name):
        rows = [r for r in labels if r["Split_Set"] == name and r["EmoClass"] in MSP_CLASSES]
        return (np.stack([pool(r["FileName"]) for r in rows]),
                np.array([MSP_CLASSES.index(r["EmoClass"]) for r in rows]))

    X, y = split("Train")
    Xd, yd = split("Development")
    mean, std = X.mean(0), X.std(0)
    fits = []
    for C in GRID:  # an independent fit per C, selected on dev Macro-F1 (first best wins)
        lr = LogisticRegression(C=C, max_iter=1000, class_weight="balanced" if weights == "prior" else None)
        lr.fit((X - mean) / std, y)
        fits.append((f1_score(yd, lr.predict((Xd - mean) / std), labels=range(8), average="macro",
                              zero_division=0), C, lr))
    best_f1, best_C, lr = max(fits, key=lambda f: (f[0], -f[1]))
    assert len({round(f[0], 9) for f in fits}) > 1  # weak signal: the choice of C matters
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["probe"]["C"] == best_C
    assert [g["C"] for g in metrics["probe"]["grid"]] == list(GRID)
    assert metrics["selection"]["value"] == pytest.approx(best_f1)
    assert metrics["splits"]["dev"]["macro_f1"] == pytest.approx(best_f1)
    # predictions of every test1 row (O/X included) equal sklearn's predict_proba
    rows = read_csv(out / "predictions_test1.csv")
    want = lr.predict_proba((np.stack([pool(r["FileName"]) for r in rows]) - mean) / std)
    np.testing.assert_allclose(probs_of(rows), want, atol=2e-6)
    labelled = [i for i, r in enumerate(rows) if r["EmoClass"] in MSP_CLASSES]
    truth = [MSP_CLASSES.index(rows[i]["EmoClass"]) for i in labelled]
    assert metrics["splits"]["test1"]["macro_f1"] == pytest.approx(
        f1_score(truth, want[labelled].argmax(1), labels=range(8), average="macro", zero_division=0))
    # the checkpoint is plain tensors (no pickle) holding the training standardisation
    from safetensors.numpy import load_file

    tensors = load_file(str(out / "best.safetensors"))
    assert sorted(tensors) == ["coef", "intercept", "mean", "std"]
    np.testing.assert_allclose(tensors["mean"], mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tensors["coef"], lr.coef_)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["head"] == "probe" and list(cfg["resolved"]["features"]) == list(modalities)


def test_probe_run_is_an_ordinary_run_directory(probe_run, paper_run, corpus, tmp_path):
    for name in ("config.json", "metrics.json", "epochs.json", "epochs.csv", "best.safetensors",
                 "predictions_dev.csv", "predictions_test1.csv"):
        assert (probe_run / name).is_file(), name
    head, info = load_checkpoint(probe_run / "best.safetensors", classes=MSP_CLASSES)
    assert isinstance(head, ProbeHead) and head.modalities == ["audio", "text"] and info["classes"]["letters"] == list(
        MSP_CLASSES)
    with pytest.raises(HeadError, match="probe"):
        load_head(probe_run / "best.safetensors")
    with pytest.raises(HeadError, match="class order"):
        load_checkpoint(probe_run / "best.safetensors", classes=sorted(MSP_CLASSES))
    # predict-head rebuilds the probe from its checkpoint and reproduces predictions_test1.csv
    result = predict(probe_run, tmp_path / "pred", labels=str(corpus.consensus), split="test1", verbose=False)
    trained = read_csv(probe_run / "predictions_test1.csv")
    got = read_csv(tmp_path / "pred" / "probabilities.csv")
    assert [r["FileName"] for r in got] == [r["FileName"] for r in trained]
    np.testing.assert_allclose(probs_of(got), probs_of(trained), atol=1.5e-6)
    assert read_submission(tmp_path / "pred" / "submission_categorical.csv") == {
        r["FileName"]: r["Prediction"] for r in trained}
    metrics = json.loads((probe_run / "metrics.json").read_text())
    assert result["metrics"]["macro_f1"] == pytest.approx(metrics["splits"]["test1"]["macro_f1"])
    # ensembles take it as a member, and predict-head runs the mixed ensemble from the checkpoints
    ens = tmp_path / "ens"
    summary = build_ensemble([probe_run, paper_run], ens, method="mean", verbose=False)
    assert [m["name"] for m in summary["members"]] == ["fused", "paper"]
    ens_pred = predict(ens, tmp_path / "ens_pred", labels=str(corpus.consensus), split="test1", verbose=False)
    assert ens_pred["metrics"]["macro_f1"] == pytest.approx(summary["splits"]["test1"]["macro_f1"])
    # and reports show it with its numbers
    report = build_report([probe_run, paper_run, ens], tmp_path / "rep", html_page=False, verbose=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "head **probe** (logistic regression, C = " in md
    assert f"{100 * metrics['splits']['dev']['macro_f1']:.2f}" in md
    assert any(label.endswith("fused") for label, _ in report["leaderboard"]["macro_f1"])


def test_probe_refuses_what_it_cannot_do(corpus, tmp_path):
    for changes, message in ((dict(task="avd", loss="ccc"), "classifier"), (dict(task="both"), "classifier"),
                             (dict(soft_labels="P", detailed=str(corpus.detailed)), "soft-labels"),
                             (dict(aux="gender"), "aux"), (dict(fusion="late"), "early fusion")):
        with pytest.raises(HeadError, match=message):
            check(config(corpus, tmp_path / "x", head="probe", **changes))
    with pytest.raises(HeadError, match="--head"):
        check(config(corpus, tmp_path / "x", head="linear"))


# ----------------------------------------------------------------------------------- baseline
def test_baseline_head_has_no_transformer_and_attentive_pooling(corpus, tmp_path):
    out = tmp_path / "baseline"
    result = train(config(corpus, out, head="baseline", max_epochs=2), verbose=False)
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["head"], cfg["layers"], cfg["pooling"]) == ("baseline", 0, "attentive")
    model, info = load_head(out / "best.safetensors", classes=MSP_CLASSES)
    assert model.spec.layers == 0 and model.spec.pooling == "attentive"
    for encoder in model.encoders.values():
        assert encoder.encoder is None and isinstance(encoder.pool, AttentiveStatsPool)
    assert not any("encoder.layers" in k for k in model.state_dict())
    assert np.isfinite(result.dev["macro_f1"]) and (out / "predictions_test1.csv").is_file()
    epochs = json.loads((out / "epochs.json").read_text())
    assert len(epochs) == 2 and epochs[1]["train_loss"] < epochs[0]["train_loss"]  # it trains
    # the default head keeps its transformer (the setting is what differs)
    paper = HeadConfig(features=["a"])
    assert (paper.head, paper.layers, paper.pooling) == ("paper", 2, "mean")
    with pytest.raises(HeadError, match="no transformer"):
        check(config(corpus, tmp_path / "x", head="baseline", fusion="deep"))


# ----------------------------------------------------------------------------------- seeds
def test_seeds_share_one_data_load_and_summarise(corpus, tmp_path, monkeypatch):
    import sercache.heads.inputs.corpora.msp as msp
    import sercache.heads.inputs.features as data

    loads, reads = [], []
    real_load, real_read = data.FeaturePool._load, msp.read_msp_consensus
    monkeypatch.setattr(data.FeaturePool, "_load",
                        lambda self, name, ids, *rest: loads.append(name) or real_load(self, name, ids, *rest))
    monkeypatch.setattr(msp, "read_msp_consensus", lambda *a, **k: reads.append(a) or real_read(*a, **k))
    out = tmp_path / "seeds"
    result = train(config(corpus, out, seeds=["0", "1", "2"], max_epochs=2), verbose=False)
    assert sorted(loads) == sorted([corpus.audio, corpus.text]) and len(reads) == 1  # one load for all seeds
    runs = [out / f"seed{k}" for k in range(3)]
    per_seed = [json.loads((r / "metrics.json").read_text()) for r in runs]
    for k, r in enumerate(runs):
        cfg = json.loads((r / "config.json").read_text())
        assert cfg["seed"] == k and cfg["seeds"] == [] and cfg["out"] == str(r)
    probs = [probs_of(read_csv(r / "predictions_dev.csv")) for r in runs]
    assert not np.allclose(probs[0], probs[1]) and not np.allclose(probs[1], probs[2])  # different models
    summary = json.loads((out / "seeds.json").read_text())
    assert summary["seeds"] == [0, 1, 2] and result.summary["seeds"] == [0, 1, 2]
    for split in ("dev", "test1"):
        for key in ("macro_f1", "balanced_accuracy", "accuracy"):
            values = np.array([m["splits"][split][key] for m in per_seed])
            stat = summary["stats"][split][key]
            assert stat["values"] == pytest.approx(values.tolist())
            assert stat["mean"] == pytest.approx(np.mean(values))
            assert stat["std"] == pytest.approx(np.std(values, ddof=1))
            assert summary["splits"][split][key] == pytest.approx(np.mean(values))
    dev = summary["stats"]["dev"]["macro_f1"]
    assert f"{100 * dev['mean']:.2f} ± {100 * dev['std']:.2f}" in (out / "seeds.md").read_text()
    assert result.dev["macro_f1"] == pytest.approx(dev["mean"])
    # the seed runs are ordinary runs: found under <out>, grouped as one configuration by the report
    assert sorted(p.name for p in find_runs([out])) == ["seed0", "seed1", "seed2"]
    report = build_report([out], tmp_path / "rep", html_page=False, curves=False, verbose=False)
    rows = [g for g in report["seeds"]["groups"] if g["split"] == "dev"]
    assert len(rows) == 1 and rows[0]["seeds"] == [0, 1, 2]
    assert rows[0]["stats"]["macro_f1"]["mean"] == pytest.approx(dev["mean"])


def test_head_and_seeds_flags(capsys):
    from sercache.heads.cli import main

    assert main(["--features", "a", "--seeds", "0,1,2", "--head", "baseline", "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert parse_seeds(cfg["seeds"]) == [0, 1, 2] and cfg["head"] == "baseline"
    assert parse_seeds([3, "4"]) == [3, 4]
    with pytest.raises(HeadError, match="given twice"):
        check(HeadConfig(features=["a"], seeds=["1", "1"]))
    with pytest.raises(HeadError, match="not an integer"):
        check(HeadConfig(features=["a"], seeds=["x"]))


# ----------------------------------------------------------------------------------- seed statistics
def _fake_run(path, seed, dev, test, **config):
    """A run directory as report-heads reads it: config.json + metrics.json (macro_f1, UA, WA)."""
    path.mkdir(parents=True)
    base = {"loss": "ce", "weights": "uniform", "features": ["a"], "text_features": [], "corpus": "msp",
            "dev_split": "dev", "threads": 0, "seed": seed, "out": str(path), "seeds": [],
            "resolved": {"classes": {"letters": ["A", "N"], "names": ["Angry", "Neutral"]}, "task": "class",
                         "notes": [f"seed {seed}"]}}
    base.update(config)
    (path / "config.json").write_text(json.dumps(base))

    def split(values):
        return dict(zip(("macro_f1", "balanced_accuracy", "accuracy"), values), n=10)

    metrics = {"dev_split": "dev", "best_epoch": 1, "epochs_run": 1, "selection": {"metric": "macro_f1",
                                                                                   "value": dev[0]},
               "splits": {"dev": split(dev), "test1": split(test)}, "classes": ["A", "N"]}
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def test_seedstats_groups_by_config_and_pairs_by_seed(tmp_path):
    focal = dict(loss="focal", weights="prior")
    dirs = [
        _fake_run(tmp_path / "focal" / "s0", 0, (0.50, 0.60, 0.70), (0.40, 0.41, 0.42), **focal),
        _fake_run(tmp_path / "focal" / "s1", 1, (0.54, 0.62, 0.72), (0.44, 0.45, 0.46), **focal),
        _fake_run(tmp_path / "focal" / "s2", 2, (0.46, 0.58, 0.68), (0.42, 0.43, 0.44), **{**focal, "threads": 2}),
        _fake_run(tmp_path / "ce" / "s0", 0, (0.45, 0.50, 0.80), (0.30, 0.31, 0.32)),
        _fake_run(tmp_path / "ce" / "s1", 1, (0.50, 0.51, 0.81), (0.36, 0.37, 0.38)),
        _fake_run(tmp_path / "ce" / "s3", 3, (0.60, 0.70, 0.90), (0.50, 0.51, 0.52)),
        _fake_run(tmp_path / "other" / "s0", 0, (0.1, 0.1, 0.1), (0.1, 0.1, 0.1), loss="focal", weights="uniform"),
    ]
    runs = [load_run(d, read_splits=False) for d in dirs]
    labels = [f"{d.parent.name}/{d.name}" for d in dirs]
    groups = group_runs(runs, labels)
    assert [(g.label, sorted(g.seeds)) for g in groups] == [("focal", [0, 1, 2]), ("ce", [0, 1, 3])]  # 'other': 1 seed
    focal_g, ce_g = groups
    s = focal_g.stats("dev", "macro_f1")
    assert s["mean"] == pytest.approx(0.50) and s["std"] == pytest.approx(0.04) and s["n"] == 3
    assert focal_g.stats("dev", "accuracy")["std"] == pytest.approx(0.02)
    # A - B over the shared seeds 0 and 1 only: dev Macro-F1 differences 0.05 and 0.04
    d = paired_difference(focal_g, ce_g, "dev", "macro_f1")
    assert d["seeds"] == [0, 1] and d["mean"] == pytest.approx(0.045) and d["std"] == pytest.approx(0.005 * 2 ** 0.5)
    d = paired_difference(focal_g, ce_g, "dev", "accuracy")
    assert d["mean"] == pytest.approx(-0.095) and d["std"] == pytest.approx(0.005 * 2 ** 0.5)  # -0.10, -0.09
    d = paired_difference(focal_g, ce_g, "dev", "balanced_accuracy")
    assert d["mean"] == pytest.approx(0.105) and d["std"] == pytest.approx(0.005 * 2 ** 0.5)  # 0.10, 0.11
    assert paired_difference(focal_g, ce_g, "test1", "macro_f1")["mean"] == pytest.approx(0.09)
    assert mean_std([0.3])["std"] is None
    # the report shows the groups and the paired differences with these numbers
    report = build_report(dirs, tmp_path / "rep", html_page=False, curves=False, verbose=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    section = md.split("## Seeds: mean ± std")[1].split("\n## ")[0]
    assert "| focal | loss=focal, weights=prior | 0 1 2 | dev | 50.00 ± 4.00 | 60.00 ± 2.00 | 70.00 ± 2.00 |" in section
    assert "| focal | ce | 0 1 | dev | +4.50 ± 0.71 | +10.50 ± 0.71 | -9.50 ± 0.71 |" in section
    assert len(report["seeds"]["pairs"]) == 2  # dev and test1 of the one comparable pair

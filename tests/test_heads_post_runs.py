"""Ensembles, decisions, predictions and reports on real run directories of tiny synthetic heads."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from sercache.heads import HeadConfig, train
from sercache.heads.after.cli import ensemble_main, report_main, tune_main
from sercache.heads.after.decision import Decision
from sercache.heads.after.ensemble import build_ensemble
from sercache.heads.after.outputs import load_run
from sercache.heads.after.predict import predict, read_submission
from sercache.heads.after.report import FIGURES_PER_WORKER, build_report
from sercache.heads.errors import HeadError
from sercache.heads.inputs.corpora.msp import MSP_CLASSES
from sercache.predict_cli import predict_main
from sercache.testing import make_synthetic_corpus

torch.set_num_threads(1)
TINY = dict(hidden=16, d_model=16, ff_dim=32, batch_size=32, max_epochs=2, progress=False, lr=3e-3,
            eval_batch_size=64)
FLAGS = ["--hidden", "8", "--d-model", "8", "--ff-dim", "16", "--batch-size", "32", "--max-epochs", "1",
         "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_synthetic_corpus(tmp_path_factory.mktemp("post"), n_train=200, n_dev=80, n_test=40, audio_dim=16,
                                 text_dim=8, mean_seconds=0.5, std_seconds=0.2, signal=2.5, seed=5)


def config(corpus, out, **changes):
    base = dict(store=str(corpus.store), features=[corpus.audio], text_features=[corpus.text],
                labels=str(corpus.consensus), out=str(out), **TINY)
    base.update(changes)
    return HeadConfig(**base)


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    specs = {"focal": dict(loss="focal", weights="prior", task="both"),
             "ce": dict(loss="ce", weights="uniform", tune_bias=True, seed=1),
             "audio": dict(loss="ce", weights="prior", text_features=[], seed=2)}
    for name, spec in specs.items():
        train(config(corpus, root / name, **spec), verbose=False)
    return {name: root / name for name in specs}


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def dev_f1(path):
    rows = [r for r in read_csv(path) if r["EmoClass"] in MSP_CLASSES]
    return f1_score([r["EmoClass"] for r in rows], [r["Prediction"] for r in rows], labels=list(MSP_CLASSES),
                    average="macro", zero_division=0)


# ----------------------------------------------------------------------------------- ensembles
def test_ensemble_of_identical_members_equals_the_member(runs, tmp_path):
    copies = []
    for i in range(3):
        shutil.copytree(runs["focal"], tmp_path / f"copy{i}")
        copies.append(tmp_path / f"copy{i}")
    member = json.loads((runs["focal"] / "metrics.json").read_text())["splits"]
    for method in ("vote", "mean", "logmean"):
        summary = build_ensemble(copies, tmp_path / f"ens_{method}", method=method, verbose=False)
        for split in ("dev", "test1"):
            got, want = summary["splits"][split], member[split]
            assert got["confusion"] == want["confusion"], (method, split)
            for key in ("macro_f1", "accuracy", "balanced_accuracy", "per_class_f1"):
                assert got[key] == pytest.approx(want[key]), (method, split, key)
            assert got["ccc_mean"] == pytest.approx(want["ccc_mean"], abs=1e-3)  # A/V/D read back at 4 decimals
        a = read_csv(runs["focal"] / "predictions_test1.csv")
        b = read_csv(tmp_path / f"ens_{method}" / "predictions_test1.csv")
        assert [r["Prediction"] for r in a] == [r["Prediction"] for r in b]
        assert [r["prob_N"] for r in a] == [r["prob_N"] for r in b]


def test_vote_ensemble_directory_and_metrics(runs, tmp_path, capsys):
    out = tmp_path / "vote"
    assert ensemble_main([str(runs["focal"]), str(runs["ce"]), str(runs["audio"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "vote of 3 member(s), tie rule prob" in printed and "Macro-F1" in printed
    spec = json.loads((out / "ensemble.json").read_text())
    assert spec["method"] == "vote" and spec["tie_rule"] == "prob"
    assert "summed over all members" in spec["tie_rule_text"]
    assert [m["name"] for m in spec["members"]] == ["focal", "ce", "audio"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["splits"]["dev"]["macro_f1"] == pytest.approx(dev_f1(out / "predictions_dev.csv"))
    # the written vote counts and the decision agree with a recount of the members' own predictions
    members = [read_csv(runs[n] / "predictions_dev.csv") for n in ("focal", "ce", "audio")]
    rows = read_csv(out / "predictions_dev.csv")
    for i, row in enumerate(rows):
        votes = [m[i]["Prediction"] for m in members]
        assert all(int(row[f"votes_{c}"]) == votes.count(c) for c in MSP_CLASSES)
        top = max(votes.count(c) for c in MSP_CLASSES)
        assert votes.count(row["Prediction"]) == top
        assert row["tie"] == str(int(sum(votes.count(c) == top for c in MSP_CLASSES) > 1))
    # A/V/D: the only member with A/V/D outputs is averaged alone
    focal = json.loads((runs["focal"] / "metrics.json").read_text())["splits"]["dev"]["ccc_mean"]
    assert metrics["splits"]["dev"]["ccc_mean"] == pytest.approx(focal, abs=2e-3)  # read back at 4 decimals


def test_members_that_differ_are_refused(runs, corpus, tmp_path):
    bad = tmp_path / "fewer"
    shutil.copytree(runs["ce"], bad)
    lines = (bad / "predictions_test1.csv").read_text().splitlines()
    (bad / "predictions_test1.csv").write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(HeadError, match="other utterances.*--common-ids"):
        build_ensemble([runs["focal"], bad], tmp_path / "e1", verbose=False)
    summary = build_ensemble([runs["focal"], bad], tmp_path / "e2", common_ids=True, verbose=False)
    assert summary["splits"]["test1"]["n"] <= 40 and any("--common-ids" in n for n in summary["notes"])
    four = tmp_path / "four"
    train(config(corpus, four, classes=["A", "S", "H", "N"]), verbose=False)
    with pytest.raises(HeadError, match="class order differs"):
        build_ensemble([runs["focal"], four], tmp_path / "e3", verbose=False)
    relabel = tmp_path / "relabel"
    shutil.copytree(runs["ce"], relabel)
    text = (relabel / "predictions_dev.csv").read_text().splitlines()
    first = text[1].split(",")
    first[1] = "A" if first[1] != "A" else "S"
    (relabel / "predictions_dev.csv").write_text("\n".join([text[0], ",".join(first), *text[2:]]) + "\n")
    with pytest.raises(HeadError, match="different labels"):
        build_ensemble([runs["focal"], relabel], tmp_path / "e4", verbose=False)
    with pytest.raises(HeadError, match="a vote has counts"):
        build_ensemble([runs["focal"], runs["ce"]], tmp_path / "e5", decision="bias", verbose=False)


def test_stacking_and_decisions_reproduced_by_predict(runs, corpus, tmp_path):
    members = [runs["focal"], runs["ce"], runs["audio"]]
    for method, decision in (("stack", ""), ("mean", "prior+bias")):
        out = tmp_path / method
        summary = build_ensemble(members, out, method=method, decision=decision, folds=4, verbose=False)
        spec = json.loads((out / "ensemble.json").read_text())
        if method == "stack":
            assert spec["stacker"]["folds"] == 4 and any("out-of-fold" in n for n in summary["notes"])
        else:
            assert spec["decision"]["method"] == "prior+bias" and (out / "decision.json").is_file()
            # dev never lower than without the decision's tuning start (prior correction) and reported
            assert summary["before_decision"]["dev"]["macro_f1"] >= 0
        # predicting from the checkpoints reproduces the ensemble's own test1 decisions and metrics
        result = predict(out, tmp_path / f"pred_{method}", labels=str(corpus.consensus), split="test1",
                         verbose=False)
        assert result["metrics"]["macro_f1"] == pytest.approx(summary["splits"]["test1"]["macro_f1"])
        want = {r["FileName"]: r["Prediction"] for r in read_csv(out / "predictions_test1.csv")}
        got = read_submission(tmp_path / f"pred_{method}" / "submission_categorical.csv")
        assert got == want


# ----------------------------------------------------------------------------------- decisions
def test_train_head_tune_bias_and_tune_decision(runs, capsys):
    d = Decision.load(runs["ce"] / "decision.json", MSP_CLASSES)  # written by train(tune_bias=True)
    dev = d.report["splits"]["dev"]
    assert dev["after"]["macro_f1"] >= dev["before"]["macro_f1"]
    assert dev["after"]["macro_f1"] == pytest.approx(d.report["tuning"]["dev_macro_f1_tuned"])
    run = load_run(runs["ce"])
    test = run.splits["test1"]
    known = test.label >= 0
    assert d.report["splits"]["test1"]["after"]["macro_f1"] == pytest.approx(
        f1_score(test.label[known], d.apply(test.probs)[known], labels=range(8), average="macro", zero_division=0))
    assert tune_main([str(runs["audio"]), "--method", "prior"]) == 0
    printed = capsys.readouterr().out
    assert "decision prior" in printed and "over-correct" in printed  # audio was trained with prior weights
    prior = Decision.load(runs["audio"] / "decision.json")
    counts = np.array(prior.prior_counts)
    np.testing.assert_allclose(prior.bias, -np.log(counts / counts.sum()))
    (runs["audio"] / "decision.json").unlink()


# ----------------------------------------------------------------------------------- predict-head
def test_predict_submission_roundtrip_and_formats(runs, corpus, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(corpus.ids["test1"]) + "\n")
    out = tmp_path / "p"
    assert predict_main([str(runs["focal"]), "--out", str(out), "--ids", str(ids)]) == 0
    probs = read_csv(out / "probabilities.csv")
    letters = read_submission(out / "submission_categorical.csv")
    assert list(letters) == corpus.ids["test1"]
    assert letters == {r["FileName"]: r["Prediction"] for r in probs}
    attrs = read_submission(out / "submission_attributes.csv")
    for r in probs:
        expected = [float(r[f"pred_{a}"]) for a in ("EmoAct", "EmoVal", "EmoDom")]
        np.testing.assert_allclose(attrs[r["FileName"]], expected, atol=1e-4)
    # unlabelled ids: predictions equal the trainer's for the same utterances
    trained = {r["FileName"]: r for r in read_csv(runs["focal"] / "predictions_test1.csv")}
    for r in probs:
        assert r["Prediction"] == trained[r["FileName"]]["Prediction"]
        np.testing.assert_allclose([float(r[f"prob_{c}"]) for c in MSP_CLASSES],
                                   [float(trained[r["FileName"]][f"prob_{c}"]) for c in MSP_CLASSES], atol=2e-6)
    assert json.loads((out / "predict.json").read_text())["metrics"] is None
    # baseline format: 8 scores in the baseline class order, argmax = the decision
    assert predict_main([str(runs["focal"]), "--out", str(tmp_path / "b"), "--ids", str(ids), "--format",
                         "baseline"]) == 0
    header = (tmp_path / "b" / "submission_categorical.csv").read_text().splitlines()[0]
    assert header == "Filename,Prediction"
    scores = read_submission(tmp_path / "b" / "submission_categorical.csv")
    assert {u: MSP_CLASSES[int(np.argmax(v))] for u, v in scores.items()} == letters


def test_predict_applies_the_saved_decision(runs, corpus, tmp_path):
    result = predict(runs["ce"], tmp_path / "tuned", labels=str(corpus.consensus), split="test1", verbose=False)
    d = Decision.load(runs["ce"] / "decision.json")
    assert result["decision"]["method"] == "bias"
    assert result["metrics"]["macro_f1"] == pytest.approx(d.report["splits"]["test1"]["after"]["macro_f1"], abs=0.02)
    plain = predict(runs["ce"], tmp_path / "plain", labels=str(corpus.consensus), split="test1", decision="none",
                    verbose=False)
    assert plain["metrics"]["macro_f1"] == pytest.approx(
        json.loads((runs["ce"] / "metrics.json").read_text())["splits"]["test1"]["macro_f1"])


def test_predict_refuses_features_of_another_provenance(runs, corpus, tmp_path, capsys):
    from sercache.cache import FeatureSetWriter, StorageConfig, UtteranceRecord, open_store

    store = open_store(corpus.store)
    src = store[corpus.audio]
    meta = {k: src.meta.get(k) for k in ("kind", "frame_rate", "sample_rate", "frame_shape", "layers",
                                         "layer_indices", "reduction", "whisper_mode", "weights_sha256")}
    writer = FeatureSetWriter(store, "other-encoder/L-1", StorageConfig(dtype="float16"))
    writer.ensure_metadata({**meta, "model": "another-encoder"})
    writer.commit_part(0, [UtteranceRecord(u, src.get(u), "f", "s", "") for u in corpus.ids["test1"]],
                       frame_shape=list(src.frame_shape))
    code = predict_main([str(runs["audio"]), "--out", str(tmp_path / "x"), "--features", "other-encoder/L-1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "predict-head: error:" in err and "differ from the training cache in model" in err
    code = predict_main([str(runs["audio"]), "--out", str(tmp_path / "y"), "--text-features", corpus.text])
    assert code == 2 and "trained without text" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- recipe
def test_sheffield7_recipe_on_one_feature_set_trains_and_votes(corpus, tmp_path, capsys):
    out = tmp_path / "s7"
    assert ensemble_main(["--recipe", "sheffield7", "--store", str(corpus.store), "--labels", str(corpus.consensus),
                          "--text-features", corpus.text, "--recipe-features", corpus.audio, "--out", str(out),
                          *FLAGS]) == 0
    spec = json.loads((out / "ensemble.json").read_text())
    assert len(spec["members"]) == 7 and spec["method"] == "vote"
    configs = [json.loads((out / m["relpath"] / "config.json").read_text()) for m in spec["members"]]
    assert [(c["loss"], c["gamma"] if c["loss"] == "focal" else None, c["weights"]) for c in configs] == [
        ("focal", 2.0, "prior"), ("focal", 2.5, "prior"), ("ce", None, "prior"), ("focal", 2.0, "uniform"),
        ("ce", None, "uniform"), ("focal", 2.0, "prior"), ("focal", 3.0, "prior")]
    assert all(c["features"] == [corpus.audio] and c["text_features"] == [corpus.text] for c in configs)
    assert configs[5]["seed"] == 5 and configs[0]["seed"] == 0  # the duplicate of model 1 is another model
    assert "vote of 7 member(s)" in capsys.readouterr().out
    code = ensemble_main(["--recipe", "sheffield7", "--store", str(corpus.store), "--labels", str(corpus.consensus),
                          "--out", str(tmp_path / "s7b"), *FLAGS])
    assert code == 2 and "--recipe-features" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- report
def test_report_renders_with_the_runs_numbers(runs, tmp_path):
    ens = tmp_path / "ens"
    build_ensemble([runs["focal"], runs["ce"], runs["audio"]], ens, method="mean", verbose=False)
    assert report_main([str(runs["focal"]), str(runs["ce"]), str(runs["audio"]), str(ens), "--out",
                        str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    html = (tmp_path / "rep" / "report.html").read_text()
    values = {}
    for name, path in (*runs.items(), ("ens", ens)):
        m = json.loads((path / "metrics.json").read_text())["splits"]
        values[name] = m["dev"]["macro_f1"]
        for split in ("dev", "test1"):
            for key in ("macro_f1", "balanced_accuracy", "accuracy"):
                assert f"{100 * m[split][key]:.2f}" in md, (name, split, key)
        cm = np.array(m["dev"]["confusion"])
        recall = np.diag(cm) / np.maximum(cm.sum(1), 1)
        assert all(f"{100 * r:.2f}" in md for r in recall)
    # the leaderboard is sorted by dev Macro-F1, best first
    board = md.split("## Leaderboard")[1].split("\n## ")[0]
    order = [line.split("|")[2].strip().split(" ")[0].split("/")[-1] for line in board.splitlines()
             if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert order == sorted(values, key=lambda n: -values[n])
    focal_ccc = json.loads((runs["focal"] / "metrics.json").read_text())["splits"]["dev"]["ccc_mean"]
    assert f"{focal_ccc:.4f}" in md
    pngs = sorted((tmp_path / "rep" / "figures").glob("*.png"))
    names = {p.name for p in pngs}
    for want in ("focal_confusion_dev.png", "focal_confusion_test1.png", "focal_curves.png", "ens_confusion_dev.png",
                 "leaderboard_macro_f1.png"):
        assert any(n.endswith(want) for n in names), want
    assert not any(n.endswith("ens_curves.png") for n in names)  # ensembles have no epochs
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
        assert f"figures/{p.name}" in md
    assert html.count("data:image/png;base64,") == len(pngs) and "<table>" in html


def test_report_figures_drawn_in_worker_processes_equal_the_serial_ones(runs, tmp_path, monkeypatch):
    import joblib

    dirs = [str(runs[name]) for name in ("focal", "ce", "audio")]
    serial = build_report(dirs, tmp_path / "serial", html_page=False, verbose=False, jobs=1)
    pools, parallel_cls = [], joblib.Parallel
    monkeypatch.setattr(joblib, "Parallel", lambda **kw: pools.append(kw) or parallel_cls(**kw))
    parallel = build_report(dirs, tmp_path / "parallel", html_page=False, verbose=False, jobs=2)
    assert len(serial["images"]) >= 2 * FIGURES_PER_WORKER and pools == [{"n_jobs": 2, "backend": "loky"}]
    assert [Path(p).name for p in parallel["images"]] == [Path(p).name for p in serial["images"]]
    for a, b in zip(serial["images"], parallel["images"]):
        assert Path(a).read_bytes() == Path(b).read_bytes(), Path(a).name
    assert (tmp_path / "serial" / "report.md").read_text().replace("serial", "parallel") == \
        (tmp_path / "parallel" / "report.md").read_text()

"""End-to-end training on tiny synthetic MSP-shaped caches: run directory, reproducibility, variants."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from sercache.heads import HeadConfig, train
from sercache.heads.errors import HeadError
from sercache.heads.fit.checkpoint import load_head
from sercache.heads.inputs.corpora.msp import MSP_CLASSES
from sercache.heads.inputs.features import FeaturePool
from sercache.testing import make_synthetic_corpus

torch.set_num_threads(1)  # tiny models: threads only add contention on a shared 2-core machine

TINY = dict(hidden=16, d_model=16, ff_dim=32, batch_size=32, max_epochs=2, progress=False, lr=3e-3,
            eval_batch_size=64)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_synthetic_corpus(tmp_path_factory.mktemp("syn"), n_train=240, n_dev=80, n_test=48, audio_dim=24,
                                 text_dim=12, mean_seconds=0.6, std_seconds=0.25, signal=2.5, seed=3)


def config(corpus, out, **changes):
    base = dict(store=str(corpus.store), features=[corpus.audio], text_features=[corpus.text],
                labels=str(corpus.consensus), detailed=str(corpus.detailed), out=str(out), **TINY)
    base.update(changes)
    return HeadConfig(**base)


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_run_directory_and_metrics_match_predictions(corpus, tmp_path):
    result = train(config(corpus, tmp_path / "run", loss="focal", gamma=2.0, weights="prior"), verbose=False)
    out = tmp_path / "run"
    for name in ("config.json", "epochs.json", "epochs.csv", "best.safetensors", "predictions_dev.csv",
                 "predictions_test1.csv", "metrics.json"):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["loss"] == "focal" and cfg["resolved"]["classes"]["letters"] == list(MSP_CLASSES)
    assert len(read_csv(out / "epochs.csv")) == len(json.loads((out / "epochs.json").read_text())) == 2
    rows = read_csv(out / "predictions_dev.csv")
    probs = np.array([[float(r[f"prob_{c}"]) for c in MSP_CLASSES] for r in rows])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    labelled = [r for r in rows if r["EmoClass"] in MSP_CLASSES]
    assert len(rows) > len(labelled)  # O/X dev rows are predicted, but not scored
    y = [MSP_CLASSES.index(r["EmoClass"]) for r in labelled]
    p = [MSP_CLASSES.index(r["Prediction"]) for r in labelled]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["splits"]["dev"]["macro_f1"] == pytest.approx(
        f1_score(y, p, labels=range(8), average="macro", zero_division=0))
    assert result.dev["macro_f1"] == metrics["splits"]["dev"]["macro_f1"]
    # best checkpoint = selected epoch
    best = max(json.loads((out / "epochs.json").read_text()), key=lambda e: e["selection"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["splits"]["dev"]["macro_f1"] == pytest.approx(best["dev_macro_f1"])
    # weights recorded: prior N / N_j on train
    table_counts = np.bincount([MSP_CLASSES.index(r["EmoClass"]) for r in read_csv(corpus.consensus)
                                if r["Split_Set"] == "Train" and r["EmoClass"] in MSP_CLASSES], minlength=8)
    np.testing.assert_allclose(metrics["class_weights"], table_counts.sum() / table_counts, rtol=1e-5)
    # the checkpoint reloads (class order checked) and reproduces the written dev probabilities
    model, info = load_head(out / "best.safetensors", classes=MSP_CLASSES)
    with pytest.raises(HeadError, match="class order"):
        load_head(out / "best.safetensors", classes=sorted(MSP_CLASSES))
    from sercache.heads.fit.prepare import prepare
    from sercache.heads.fit.scoring import infer

    prep = prepare(config(corpus, tmp_path / "x"), _table(corpus), FeaturePool(corpus.store, torch.device("cpu")),
                   torch.device("cpu"))
    pred, _ = infer(model, prep, prep.predict["dev"])
    np.testing.assert_allclose(pred["probs"], probs, atol=2e-6)


def _table(corpus):
    from sercache.heads.inputs.corpora.msp import attach_detailed, read_msp_consensus, read_msp_detailed

    return attach_detailed(read_msp_consensus(corpus.consensus), read_msp_detailed(corpus.detailed))


def test_same_seed_same_numbers(corpus, tmp_path):
    runs = []
    for i, seed in enumerate((5, 5, 6)):
        train(config(corpus, tmp_path / f"r{i}", seed=seed, mixup_p=0.5, dropout=0.2), verbose=False)
        epochs = json.loads((tmp_path / f"r{i}" / "epochs.json").read_text())
        runs.append([(e["train_loss"], e["dev_loss"], e["dev_macro_f1"]) for e in epochs])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    a = (tmp_path / "r0" / "predictions_test1.csv").read_text()
    assert a == (tmp_path / "r1" / "predictions_test1.csv").read_text()


def test_head_learns_the_synthetic_signal(corpus, tmp_path):
    result = train(config(corpus, tmp_path / "learn", max_epochs=12, batch_size=16, weights="prior", lr=2e-3,
                          patience=0), verbose=False)
    assert result.dev["macro_f1"] > 0.5  # chance is about 0.125
    assert result.summary["splits"]["test1"]["balanced_accuracy"] > 0.5


VARIANTS = {
    "wbce-S": dict(loss="wbce", soft_labels="S", weights="prior"),
    "kld-P-balanced": dict(loss="kld", soft_labels="P", sampler="balanced", annotation_dropout=0.3),
    "amsoftmax": dict(loss="amsoftmax", weights="prior", loss_norm="weight-sum"),
    "ccc-avd-ox": dict(loss="ccc", include_ox=True, select="balanced", aux="gender"),
    "both-late": dict(task="both", fusion="late", avd_loss="mse", avd_weight=0.4, weight_power=0.5,
                      weight_norm="classes", weights="prior"),
    "deep-attentive": dict(fusion="deep", pooling="attentive", mixup_p=1.0),
    "medusa-two-stage": dict(two_stage_epoch=2, weights="prior", sampler="shuffle"),
    "undersample-audio-only": dict(sampler="undersample", text_features=[], max_seconds=0.3),
    "text-only-agreement": dict(features=[], min_agreement=0.6, weights_from="dev", weights="prior"),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_train_and_score(corpus, tmp_path, name):
    result = train(config(corpus, tmp_path / name, **VARIANTS[name]), verbose=False)
    dev = result.dev
    task = config(corpus, tmp_path, **VARIANTS[name]).resolved_task()
    if task in ("class", "both"):
        assert 0.0 <= dev["macro_f1"] <= 1.0
    if task in ("avd", "both"):
        assert np.isfinite(dev["ccc_mean"])
        rows = read_csv(tmp_path / name / "predictions_dev.csv")
        values = np.array([[float(r[f"pred_{k}"]) for k in ("EmoAct", "EmoVal", "EmoDom")] for r in rows])
        assert values.min() >= 1.0 - 1e-4 and values.max() <= 7.0 + 1e-4
    epochs = json.loads((tmp_path / name / "epochs.json").read_text())
    assert all(np.isfinite(e["train_loss"]) for e in epochs)
    if name == "medusa-two-stage":
        assert [e["sampler"] for e in epochs] == ["shuffle", "undersample"]
        assert epochs[1]["lr"] == pytest.approx(epochs[0]["lr"] * 0.1)
    if name == "ccc-avd-ox":
        assert "gender_accuracy" in dev
    if name == "undersample-audio-only":
        assert json.loads((tmp_path / name / "config.json").read_text())["resolved"]["features"].keys() == {"audio"}


def test_multi_layer_cache_learns_layer_weights(tmp_path):
    c = make_synthetic_corpus(tmp_path / "ml", n_train=120, n_dev=48, n_test=16, audio_dim=16, audio_layers=3,
                              mean_seconds=0.4, std_seconds=0.1, with_text=False, seed=1)
    cfg = HeadConfig(store=str(c.store), features=[c.audio], labels=str(c.consensus), out=str(tmp_path / "r"),
                     **{**TINY, "max_epochs": 2})
    result = train(cfg, verbose=False)
    info = json.loads((tmp_path / "r" / "config.json").read_text())["resolved"]
    assert info["features"]["audio"][0]["frame_shape"] == [3, 16]
    model, info = load_head(tmp_path / "r" / "best.safetensors")
    weights = model.layer_weights()["audio"]
    assert len(weights) == 3 and weights != pytest.approx([1 / 3] * 3)
    assert result.dev["n"] > 0


def test_small_data_training_options_run_and_are_recorded(corpus, tmp_path):
    """cosine schedule with warm-up, weight average, strided audio, modality dropout and unimodal losses."""
    cfg = config(corpus, tmp_path / "run", max_epochs=3, schedule="cosine", warmup_epochs=1, ema_epochs=1,
                 frame_stride=2, modality_dropout=0.3, unimodal_weight=0.5, patience=0)
    result = train(cfg, verbose=False)
    rows = read_csv(tmp_path / "run" / "epochs.csv")
    steps = int(rows[0]["batches"])
    total, last = 3 * steps, [e * steps - 1 for e in (1, 2, 3)]  # the epochs' last steps; warm-up until `steps`
    expected = [3e-3 * min(1, (s + 1) / (steps + 1)) * 0.5 * (1 + np.cos(np.pi * s / total)) for s in last]
    np.testing.assert_allclose([float(r["lr"]) for r in rows], expected, rtol=1e-6)  # the last step's rate
    model, info = load_head(tmp_path / "run" / "best.safetensors")
    assert model.spec.frame_stride == 2 and model.spec.unimodal_classifiers and hasattr(model, "unimodal")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["schedule"], saved["ema_epochs"], saved["modality_dropout"]) == ("cosine", 1, 0.3)
    # the checkpoint is the weight average that was scored on dev: re-scored, it gives the selected value
    assert result.summary["selection"]["metric"] == "macro_f1"
    assert result.dev["macro_f1"] == pytest.approx(result.summary["selection"]["value"], abs=1e-12)


def test_unimodal_losses_add_each_modalitys_own_loss():
    from sercache.heads.fit.losses import Objective, Targets
    from sercache.heads.fit.model import FusionHead, HeadSpec

    for fusion in ("early", "late"):
        spec = HeadSpec(inputs={"audio": [6], "text": [4]}, n_classes=3, fusion=fusion, hidden=8, d_model=8,
                        ff_dim=8, dropout=0.0, unimodal_classifiers=True)
        torch.manual_seed(0)
        model = FusionHead(spec).train()
        x = {"audio": (torch.randn(5, 7, 6), torch.ones(5, 7, dtype=torch.bool)),
             "text": (torch.randn(5, 3, 4), torch.ones(5, 3, dtype=torch.bool))}
        out = model(x)
        assert out["unimodal_logits"].shape == (2, 5, 3)
        t = Targets(torch.tensor([0, 1, 2, 1, 0]), None, None, None)
        w = torch.tensor([1.0, 2.0, 0.5])
        plain = Objective("focal", w, "class", gamma=2.0)
        blended = Objective("focal", w, "class", gamma=2.0, unimodal_weight=0.3)
        want = plain(out, t) + 0.3 * sum(plain({"logits": u}, t) for u in out["unimodal_logits"])
        torch.testing.assert_close(blended(out, t), want)
        if fusion == "late":  # a late head's unimodal outputs are its branches, averaged into the prediction
            torch.testing.assert_close(out["unimodal_logits"].mean(0), out["logits"])
        model.eval()
        assert "unimodal_logits" not in model(x)
    cosine = FusionHead(HeadSpec(inputs={"audio": [6], "text": [4]}, n_classes=3, hidden=8, d_model=8, ff_dim=8,
                                 unimodal_classifiers=True, cosine=True))
    assert cosine(x)["unimodal_logits"].abs().max() <= 1 + 1e-6  # AM-Softmax scales cosines, not raw logits

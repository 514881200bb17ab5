"""K heads in lockstep on shared batches give exactly what each gives alone with the same batch order."""

from __future__ import annotations

import json

import pytest
import torch

from sercache.heads import HeadConfig, train
from sercache.heads.errors import HeadError
from sercache.heads.fit.train import train_together
from sercache.testing import make_synthetic_corpus

torch.set_num_threads(1)

TINY = dict(hidden=16, d_model=16, ff_dim=32, batch_size=32, max_epochs=3, progress=False, lr=3e-3, eval_batch_size=64)
HEADS = [  # differ in loss, weights, seed, schedule, averaging, regularisation and stopping
    {"loss": "focal", "weights": "prior", "seed": 0},
    {"loss": "ce", "seed": 5, "schedule": "cosine", "ema_epochs": 1, "modality_dropout": 0.3, "unimodal_weight": 0.5},
    {"loss": "focal", "gamma": 3.0, "seed": 2, "mixup_p": 0.5, "max_epochs": 2, "fusion": "late"},
    {"loss": "ce", "seed": 1, "patience": 1, "lr": 1e-5, "dropout": 0.3, "frame_stride": 2},
    {"loss": "amsoftmax", "am_scale": 10.0, "seed": 3, "unimodal_weight": 0.5},  # its own probabilities
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_synthetic_corpus(tmp_path_factory.mktemp("syn"), n_train=200, n_dev=60, n_test=40, audio_dim=16,
                                 text_dim=8, mean_seconds=0.5, std_seconds=0.2, signal=2.0, seed=4)


def config(corpus, out, **changes):
    return HeadConfig(store=str(corpus.store), features=[corpus.audio], text_features=[corpus.text],
                      labels=str(corpus.consensus), out=str(out), **{**TINY, **changes})


def _outcome(run):
    epochs = json.loads((run / "epochs.json").read_text())
    keep = ("train_loss", "dev_loss", "lr", "selection", "batches", "padding_waste")
    return ([{k: e[k] for k in keep} for e in epochs], json.loads((run / "metrics.json").read_text())["splits"],
            (run / "predictions_test1.csv").read_text())


def test_lockstep_heads_equal_the_same_heads_trained_alone(corpus, tmp_path):
    cfgs = [config(corpus, tmp_path / "lock" / str(i), data_seed=7, **h) for i, h in enumerate(HEADS)]
    results = train_together(cfgs, verbose=False)
    assert [r.summary["epochs_run"] for r in results][2] == 2  # the heads stop on their own schedules
    for i, cfg in enumerate(cfgs):
        alone = train(cfg.replace(out=str(tmp_path / "alone" / str(i))), verbose=False)
        assert _outcome(tmp_path / "lock" / str(i)) == _outcome(alone.out), HEADS[i]
        assert json.loads((alone.out / "config.json").read_text())["resolved"]["data_seed"] == 7


def test_seeds_in_lockstep_share_the_first_seeds_batch_order(corpus, tmp_path):
    cfg = config(corpus, tmp_path / "seeds", seeds=[3, 4], lockstep=True, max_epochs=2)
    result = train(cfg, verbose=False)
    assert set(result.summary["stats"]) >= {"dev", "test1"}
    saved = json.loads((tmp_path / "seeds" / "seed4" / "config.json").read_text())
    assert (saved["seed"], saved["data_seed"]) == (4, 3)
    again = train(HeadConfig.from_dict({k: v for k, v in saved.items() if k != "resolved"})
                  .replace(out=str(tmp_path / "again")), verbose=False)
    assert _outcome(again.out) == _outcome(tmp_path / "seeds" / "seed4")


def test_seeds_with_lockstep_train_a_probe_one_seed_after_the_other(corpus, tmp_path):
    result = train(config(corpus, tmp_path / "probe", head="probe", seeds=[0, 1], lockstep=True), verbose=False)
    assert result.summary["stats"]["test1"]["macro_f1"]["n"] == 2


def test_lockstep_refuses_heads_with_other_batches(corpus, tmp_path):
    with pytest.raises(HeadError, match="batch_size"):
        train_together([config(corpus, tmp_path / "a"), config(corpus, tmp_path / "b", batch_size=16)])
    with pytest.raises(HeadError, match="data_seed / seed"):
        train_together([config(corpus, tmp_path / "a"), config(corpus, tmp_path / "b", seed=1)])


def test_sweep_in_lockstep_gives_the_sequential_results(corpus, tmp_path):
    from sercache.heads import sweep as run_sweep

    spec = "loss=ce,focal;weights=uniform,prior"
    rows = {}
    for lockstep in (False, True):
        base = config(corpus, tmp_path / f"sweep-{lockstep}", lockstep=lockstep, max_epochs=2)
        rows[lockstep] = [{k: v for k, v in r.items() if not k.endswith("_s")} for r in run_sweep(base, spec, False)]
    assert len(rows[True]) == 4 and rows[True] == rows[False]


def test_a_diverged_head_stops_alone_and_its_group_finishes(corpus, tmp_path, monkeypatch):
    from sercache.heads.fit import loop

    end_epoch = loop.HeadRun.end_epoch

    def diverge_seed_1(self, epoch, *args):
        if self.cfg.seed == 1 and epoch == 2:
            self.loss_sum = torch.tensor(float("nan"))
        return end_epoch(self, epoch, *args)

    monkeypatch.setattr(loop.HeadRun, "end_epoch", diverge_seed_1)
    cfgs = [config(corpus, tmp_path / str(seed), seed=seed, data_seed=0) for seed in (0, 1, 2)]
    with pytest.raises(HeadError, match=r"1: epoch 2: training loss is nan.*other 2 head\(s\)"):
        train_together(cfgs, verbose=False)
    for seed in (0, 2):  # the others trained every epoch and wrote their run directories
        assert json.loads((tmp_path / str(seed) / "metrics.json").read_text())["epochs_run"] == TINY["max_epochs"]
    assert not (tmp_path / "1" / "metrics.json").exists()
    from sercache.heads import sweep as run_sweep  # a lockstep sweep records the configs that finished, then stops

    with pytest.raises(HeadError, match="training loss is nan"):
        run_sweep(config(corpus, tmp_path / "sweep", lockstep=True, data_seed=0), "seed=0,1,2", False)
    assert sorted(p.name for p in (tmp_path / "sweep" / "results").iterdir()) == ["000.json", "002.json"]

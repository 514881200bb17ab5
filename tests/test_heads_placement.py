"""Where the features live and when batches are built never changes the numbers: host placement with and
without background prefetching, and features streamed from the store, give the same epochs."""

from __future__ import annotations

import json

import pytest
import torch

from sercache.heads import HeadConfig, train
from sercache.heads.prefetch import prefetched
from sercache.heads.synthetic import make_synthetic_corpus

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_synthetic_corpus(tmp_path_factory.mktemp("syn"), n_train=160, n_dev=48, n_test=32, audio_dim=16,
                                 text_dim=8, mean_seconds=0.5, std_seconds=0.2, signal=2.0, seed=5)


def _epochs(run):
    return [(e["train_loss"], e["dev_loss"], e["selection"]) for e in json.loads((run / "epochs.json").read_text())]


@pytest.mark.parametrize("placement,prefetch", [("host", 2), ("stream", 0), ("stream", 2)])
def test_placements_and_prefetching_give_the_same_epochs(corpus, tmp_path, placement, prefetch):
    base = HeadConfig(store=str(corpus.store), features=[corpus.audio], text_features=[corpus.text],
                      labels=str(corpus.consensus), hidden=16, d_model=16, ff_dim=32, batch_size=16, max_epochs=2,
                      lr=3e-3, dropout=0.2, progress=False, out=str(tmp_path / "ref"), placement="host", prefetch=0)
    ref = train(base, verbose=False)
    other = train(base.replace(placement=placement, prefetch=prefetch, out=str(tmp_path / "other")), verbose=False)
    assert json.loads((other.out / "config.json").read_text())["resolved"]["placement"] == placement
    assert _epochs(other.out) == _epochs(ref.out)
    assert (other.out / "predictions_test1.csv").read_text() == (ref.out / "predictions_test1.csv").read_text()


def test_prefetching_keeps_order_and_raises_the_builders_error():
    built = list(prefetched(list(range(20)), lambda i: i * i, 3, torch.device("cpu")))
    assert built == [(i, i * i) for i in range(20)]

    def fails(i):
        if i == 5:
            raise ValueError("utterance 5 is broken")
        return i

    seen = []
    with pytest.raises(ValueError, match="utterance 5"):
        for item, _ in prefetched(list(range(10)), fails, 2, torch.device("cpu")):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]
    stream = prefetched(list(range(100)), lambda i: i, 2, torch.device("cpu"))
    assert next(stream) == (0, 0)
    stream.close()  # a consumer that stops early leaves no thread behind

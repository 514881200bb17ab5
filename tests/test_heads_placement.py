"""Where the features live and when batches are built never changes the numbers: host placement with and
without background prefetching, and features streamed from the store, give the same epochs."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from sercache.heads import HeadConfig, train
from sercache.heads.inputs.prefetch import prefetched
from sercache.testing import make_synthetic_corpus

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
    other = train(base.replace(placement=placement, prefetch=prefetch, batch_order="random",
                               out=str(tmp_path / "other")), verbose=False)
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
    for thread in threading.enumerate():
        if thread.name == "sercache-prefetch":
            thread.join(timeout=5)
            assert not thread.is_alive()


def test_streaming_in_store_order_equals_host_placement_and_reads_sequentially(corpus, tmp_path):
    """With --batch-order blocks the batches come from store blocks through a shuffle buffer; streamed from the
    store (a budget far below the cache's size) they give the same epochs as the resident features, and the
    store is read in a few slices per window instead of once per utterance."""
    from sercache.heads.inputs.features import FeaturePool

    base = HeadConfig(store=str(corpus.store), features=[corpus.audio], text_features=[corpus.text],
                      labels=str(corpus.consensus), hidden=16, d_model=16, ff_dim=32, batch_size=16, max_epochs=2,
                      lr=3e-3, progress=False, out=str(tmp_path / "host"), placement="host", batch_order="blocks",
                      max_host_gb=1e-4, prefetch=0)
    host = train(base, verbose=False)
    pool = FeaturePool.for_config(base.replace(placement="auto"))
    streamed = train(base.replace(placement="auto", prefetch=2, out=str(tmp_path / "stream")), pool=pool,
                     verbose=False)
    assert pool.placement == "stream"  # the budget is far below the cache's size
    assert _epochs(streamed.out) == _epochs(host.out)
    random_order = train(base.replace(batch_order="random", out=str(tmp_path / "random")), verbose=False)
    assert _epochs(random_order.out) != _epochs(host.out)
    reads = pool.sets[corpus.audio].fs.range_reads  # training windows, channel statistics, dev and test batches
    rows = json.loads((streamed.out / "config.json").read_text())["resolved"]["rows"]
    utterances = 2 * (rows["train"] + rows["dev"]) + rows["train"] + sum(v for k, v in rows.items() if "predict" in k)
    assert 0 < reads < utterances / 20, (reads, utterances)  # instead of one read per utterance


def test_block_batches_visit_every_row_once_window_by_window():
    import numpy as np

    from sercache.heads.inputs.sampling import block_batches, store_blocks

    rng = np.random.default_rng(0)
    rows = np.arange(100, 400)
    positions = [(int(r) % 3, int(r) * 10) for r in rows]  # three parts
    blocks = store_blocks(rows, positions, 32)
    assert np.bincount(blocks).max() == 32 and len(np.unique(blocks)) == 10
    lengths = np.zeros(400, int)
    lengths[rows] = rng.integers(10, 500, len(rows))
    batches, windows = block_batches(rows, blocks, lengths, 8, 64, rng)
    assert sorted(np.concatenate(batches).tolist()) == rows.tolist()
    assert windows == sorted(windows) and len(set(windows)) == -(-len(rows) // 64)
    for w in set(windows):  # a window holds whole blocks only where it does not cut one
        inside = np.concatenate([b for b, k in zip(batches, windows) if k == w])
        assert len(np.unique(blocks[inside - 100])) <= 64 // 32 + 2

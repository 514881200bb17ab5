"""In-memory synthetic feature sets (bench-heads --full): no store on disk, same trainer path."""

from __future__ import annotations

import torch

from sercache.heads import HeadConfig, train
from sercache.testing import in_memory_pool, make_synthetic_corpus


def test_in_memory_pool_trains_without_a_store(tmp_path):
    torch.manual_seed(0)
    corpus = make_synthetic_corpus(tmp_path / "c", n_train=160, n_dev=64, n_test=16, audio_dim=16, text_dim=8,
                                   mean_seconds=0.4, std_seconds=0.1, ox_fraction=0.0, write_features=False)
    assert not list(corpus.store.rglob("featureset.json"))  # labels only: no features on disk
    pool = in_memory_pool(corpus, torch.device("cpu"), 16, 8, signal=2.0, mean_frames=20)
    audio = pool.featureset(corpus.audio)
    packed = audio.load(audio.ids[:5])
    assert packed.frames.dtype == torch.float16 and packed.frames.shape == (int(audio.lengths(audio.ids[:5]).sum()), 16)
    assert torch.equal(audio.load(audio.ids[:5]).frames, packed.frames)  # deterministic
    cfg = HeadConfig(store=str(corpus.store), features=[corpus.audio], text_features=[corpus.text],
                     labels=str(corpus.consensus), out=str(tmp_path / "run"), hidden=16, d_model=16, ff_dim=32,
                     batch_size=32, lr=3e-3, max_epochs=10, patience=10, progress=False)
    result = train(cfg, pool=pool, verbose=False)
    assert result.summary["splits"]["dev"]["macro_f1"] > 0.3  # 8 classes: chance is about 0.125

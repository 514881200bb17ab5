"""Input standardisation: train statistics equal numpy's, and a head with it is blind to per-channel
affine changes of its inputs (what makes cached features of any encoder start on an equal footing)."""

from __future__ import annotations

import numpy as np
import torch

from sercache.heads.fit.model import FusionHead, HeadSpec
from sercache.heads.inputs.corpora.msp import read_msp_consensus
from sercache.heads.inputs.features import FeaturePool, build_modalities
from sercache.testing import InMemoryFeatureSet

torch.set_num_threads(1)


def _modality(tmp_path, scale: float = 1.0):
    from sercache.testing import make_synthetic_corpus

    corpus = make_synthetic_corpus(tmp_path, n_train=40, n_dev=16, n_test=8, audio_dim=6, text_dim=4,
                                   write_features=False)
    table = read_msp_consensus(corpus.consensus)
    fs = InMemoryFeatureSet(corpus.audio, "audio", table.ids, [str(x) for x in table.letter], 6, 20.0, 8.0, 40, 3)
    pool = FeaturePool({corpus.audio: fs}, torch.device("cpu"), "host")
    mods = build_modalities(pool, [corpus.audio], [], table, np.arange(len(table)))
    return mods["audio"], fs, table


def test_channel_stats_equal_numpy_over_valid_frames(tmp_path):
    modality, fs, table = _modality(tmp_path)
    rows = np.arange(0, len(table), 3)
    mean, std = modality.channel_stats(rows, batch=5)  # several batches of unequal lengths
    packed = fs.load(table.ids)  # what the pool loaded (in-memory frames depend on the ids loaded together)
    off = packed.offsets.numpy()
    frames = np.concatenate([packed.frames[off[i]:off[i + 1]].double().numpy() for i in rows])
    np.testing.assert_allclose(mean.numpy(), frames.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std.numpy(), frames.std(0), rtol=1e-5, atol=1e-6)


def test_head_with_input_norm_ignores_per_channel_affine_changes():
    spec = HeadSpec(inputs={"audio": [5], "text": [3]}, n_classes=4, hidden=16, d_model=16, ff_dim=32,
                    dropout=0.0, input_norm=True)
    torch.manual_seed(0)
    model = FusionHead(spec).eval()
    g = torch.Generator().manual_seed(1)
    xa, xt = torch.randn(3, 7, 5, generator=g), torch.randn(3, 4, 3, generator=g)
    ma = torch.arange(7)[None] < torch.tensor([7, 5, 2])[:, None]
    mt = torch.arange(4)[None] < torch.tensor([4, 1, 3])[:, None]
    scale_a, shift_a = torch.tensor([1e-3, 1.0, 50.0, 300.0, 2.0]), torch.tensor([0.0, 5.0, -40.0, 1e3, 1.0])

    def run(xa_, xt_):
        for name, x, m in (("audio", xa_, ma), ("text", xt_, mt)):
            valid = x[m]
            model.encoders[name].norm.set_statistics(valid.mean(0), valid.std(0, unbiased=False))
        return model({"audio": (xa_, ma), "text": (xt_, mt)})["logits"]

    torch.testing.assert_close(run(xa * scale_a + shift_a, xt), run(xa, xt), rtol=1e-4, atol=1e-4)
    # and without it the same change does move the outputs (the test can fail)
    plain = FusionHead(HeadSpec(inputs={"audio": [5]}, n_classes=4, hidden=16, d_model=16, ff_dim=32,
                                dropout=0.0)).eval()
    assert not torch.allclose(plain({"audio": (xa * scale_a + shift_a, ma)})["logits"],
                              plain({"audio": (xa, ma)})["logits"], atol=1e-3)
